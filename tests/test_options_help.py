"""``--help`` names values, defaults and every environment variable; a bad value names where it came from;
``--threads`` sets torch's intra-op threads and the perf line shows the real count."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_omnilmm.config import FLAGS, METAVARS, SETTINGS


def test_help_shows_value_names_defaults_and_envs(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    out = result.stdout.str()
    for usage in ("--max-drop=DROP", "--ckpt=PATH", "--model_path=PATH_OR_ID", "--threads=N", "--shard=I/N"):
        assert usage in out, usage
    assert "=OMNILMM_" not in out, "a metavar is an environment variable's name"
    flat = " ".join(out.split())  # argparse wraps the help text
    assert "(default: 0.01) [env OMNILMM_MAX_DROP, ini omnilmm_max_drop]" in flat
    assert "(default: 8) [env OMNILMM_BATCH_SIZE, ini omnilmm_batch_size]" in flat
    for s in SETTINGS:
        assert f"[env {s.env}, ini {s.ini}]" in flat, s.flag
    for name, _flag, env, _help in FLAGS:
        assert f"[env {env}=1, ini omnilmm_{name} = true]" in flat, name


def test_env_and_ini_names_follow_the_option() -> None:
    for s in SETTINGS:
        stem = s.flag.lstrip("-").replace("-", "_")
        if s.name != "lmudata":  # VLMEvalKit's own variable, kept as VLMEvalKit spells it
            assert s.env == f"OMNILMM_{stem.upper()}", s.flag
        assert s.ini == f"omnilmm_{stem}", s.flag
        assert s.name in METAVARS, s.flag
    for name, flag, env, _help in FLAGS:
        assert env == "OMNILMM_" + flag.lstrip("-").replace("-", "_").upper() and name == flag[2:].replace(
            "-", "_"
        )


def test_a_bad_env_value_names_the_env_var(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNILMM_MAX_DROP", "lots")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: OMNILMM_MAX_DROP (environment variable for --max-drop): 'lots' is not a number*"]
    )


def test_a_bad_ini_value_names_the_ini_key(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nomnilmm_max_drop_for = ["textvqa"]\n')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: omnilmm_max_drop_for (ini key for --max-drop-for): 'textvqa' is not NAME=NUMBER*"]
    )


def test_a_bad_option_still_names_the_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--max-drop", "lots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --max-drop: 'lots' is not a number; give e.g. --max-drop 0.01"])


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--threads", "0"], {}, "ERROR: --threads: 0 is too small; it must be at least 1"),
        (["--threads", "two"], {}, "ERROR: --threads: 'two' is not a whole number*"),
        (
            [],
            {"OMNILMM_THREADS": "-1"},
            "ERROR: OMNILMM_THREADS (environment variable for --threads): -1 is too*",
        ),
    ],
)
def test_bad_threads_are_usage_errors(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict, message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_threads_set_torch_threads_and_the_perf_line(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    import torch

    before = torch.get_num_threads()
    base = [f"--model_path={tiny_model}", "--max-new-tokens", "2", "--no-resume"]
    result = eval_project.runpytest_subprocess(*base, "--threads", "1")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*perf: load*cpu (*, 1 threads)*"])
    result = eval_project.runpytest_subprocess(*base, "--threads", "3")
    result.stdout.fnmatch_lines(["*perf: load*cpu (*, 3 threads)*"])
    assert torch.get_num_threads() == before


def test_default_threads_are_the_affinity_cores_per_worker() -> None:
    import os

    from pytest_omnilmm.worker.process_limits import default_threads

    cores = len(os.sched_getaffinity(0))
    assert default_threads({}) == cores
    assert default_threads({"PYTEST_XDIST_WORKER_COUNT": str(cores * 4)}) == 1
    assert default_threads({"PYTEST_XDIST_WORKER_COUNT": "2"}) == max(1, cores // 2)
    assert re.fullmatch(r"\d+", str(default_threads({"PYTEST_XDIST_WORKER_COUNT": ""})))
