"""The progress line (samples done / total, samples/s, ETA): plain lines in a log, one live line on a
terminal, nothing with -qq or --no-progress, never inside a failure's captured output."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_omnilmm.controller.progress import format_eta, progress_text

from .conftest import write_jsonl_dataset

SLOW_EVAL = """
import time

import pytest

@pytest.mark.dataset("tiny", path="tiny.jsonl", metric="exact_match")
def test_tiny(sample, generate, score):
    score(generate(sample))
    time.sleep(0.25)  # a slow eval: the run lasts long enough for progress to show
    if sample.id == "s3":
        print("output of the failing sample")
        assert False, "golden check"
"""


@pytest.fixture
def slow_project(pytester: pytest.Pytester) -> pytest.Pytester:
    write_jsonl_dataset(pytester.path, n=12)
    pytester.makepyfile(test_slow_eval=SLOW_EVAL)
    pytester.makeini("[pytest]\nfilterwarnings = ignore::pytest.PytestAssertRewriteWarning\n")
    return pytester


def test_progress_text_and_eta() -> None:
    assert progress_text(40, 160, 0, 10.0) == "omnilmm: 40/160 samples (25%), 10.0 samples/s, ETA 12s"
    assert progress_text(1, 4, 1, 1.0).endswith(", 1 failed")
    assert progress_text(1, 4, 0, 0.0).endswith("ETA ?")
    assert format_eta(75) == "1m15s" and format_eta(3 * 3600 + 60) == "3h01m"


def test_plain_lines_in_a_log_and_never_in_captured_output(
    slow_project: pytest.Pytester, tiny_model: Path
) -> None:
    base = ["--model_path", str(tiny_model), "--max-new-tokens", "2", "--no-resume"]
    result = slow_project.runpytest(*base)
    result.assert_outcomes(passed=11, failed=1)
    result.stdout.fnmatch_lines(["omnilmm: */12 samples (*%), * samples/s, ETA *"])
    out = result.stdout.str()
    captured = out[out.index("Captured stdout call") :].split("omnilmm [base]")[0]
    assert "output of the failing sample" in captured
    assert "ETA" not in captured


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--no-progress"], {}), (["-qq"], {}), ([], {"OMNILMM_NO_PROGRESS": "1"})],
)
def test_progress_can_be_turned_off(
    slow_project: pytest.Pytester,
    tiny_model: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = slow_project.runpytest("--model_path", str(tiny_model), "--max-new-tokens", "2", *args)
    assert result.ret == 1
    assert "samples/s, ETA" not in result.stdout.str()


def test_ini_turns_progress_off(slow_project: pytest.Pytester, tiny_model: Path) -> None:
    slow_project.makepyprojecttoml("[tool.pytest.ini_options]\nomnilmm_no_progress = true\n")
    # --model_path=PATH in one argument: a bare path argument would move the rootdir (and the ini) above it
    result = slow_project.runpytest(f"--model_path={tiny_model}", "--max-new-tokens", "2")
    assert "samples/s, ETA" not in result.stdout.str()


def test_one_live_line_on_a_terminal(slow_project: pytest.Pytester, tiny_model: Path) -> None:
    """Run in a real pseudo-terminal: the line is rewritten in place with a carriage return."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--model_path",
            str(tiny_model),
            "--max-new-tokens",
            "2",
            "--no-resume",
        ],
        cwd=slow_project.path,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(master)
    out = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 1, out
    assert "\romnilmm: " in out and "/12 samples (" in out, out
    assert "1 failed, 11 passed" in out


def test_one_line_for_the_whole_run_under_xdist(slow_project: pytest.Pytester, tiny_model: Path) -> None:
    """The controller counts the workers' reports: one count over all 12 samples, each line on its own."""
    result = slow_project.runpytest_subprocess(
        f"--model_path={tiny_model}", "--max-new-tokens", "2", "--no-resume", "-n", "2"
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(["omnilmm: */12 samples (*%), * samples/s, ETA *"])
    assert "/6 samples" not in result.stdout.str()  # not one count per worker
