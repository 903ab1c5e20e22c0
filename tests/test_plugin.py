"""End-to-end runs of the plugin through pytester, on a tiny random-weight MiniCPM-V 4.6.

Random weights answer garbage, so these tests assert on records, counts, files and exit codes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_omnilmm.records import read_records

from .conftest import EVAL_MODULE, write_jsonl_dataset


def run_dir(project: pytest.Pytester) -> Path:
    runs = sorted((project.path / ".omnilmm-results").iterdir())
    assert runs, "no run directory was written"
    return runs[-1]


def records_of(project: pytest.Pytester) -> list:
    return list(read_records(run_dir(project) / "records.jsonl"))


def test_help_lists_options() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in (
        "--model_path",
        "--model-path",
        "--ckpt",
        "--generate_method",
        "--device",
        "--dtype",
        "--batch-size",
        "--max-new-tokens",
        "--num-beams",
        "--limit",
        "--results-dir",
        "--trust-remote-code",
        "--baseline",
        "--save-baseline",
        "--gpus",
        "--shard",
    ):
        assert flag in out, flag
    assert "images first, then text" in out


def test_plugin_import_does_not_import_torch() -> None:
    code = (
        "import sys, pytest_omnilmm.plugin, pytest_omnilmm.config, pytest_omnilmm.controller.core\n"
        "heavy = [m for m in ('torch', 'transformers', 'PIL', 'numpy') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_run_writes_records_summary_and_table(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    result = eval_project.runpytest("--model_path", str(tiny_model), "--max-new-tokens", "4")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*omnilmm [[]base[]]*", "*tiny*exact_match*vlmevalkit*6*", "*perf: load*"])
    records = records_of(eval_project)
    assert sorted(r.sample_id for r in records) == [f"s{i}" for i in range(6)]
    for r in records:
        assert r.error is None and r.prediction is not None
        assert r.latency_s > 0 and r.generated_tokens > 0 and r.prompt_tokens > 0
        assert r.batch_size == 6 and r.scores.keys() == {"exact_match"}
    summary = json.loads((run_dir(eval_project) / "summary.json").read_text())
    (row,) = summary["results"]
    assert row["dataset"] == "tiny" and row["n"] == 6 and row["errors"] == 0
    assert summary["run_info"]["perf"]["base"]["samples"] == 6
    answers = json.loads((run_dir(eval_project) / "answers" / "base" / "tiny.json").read_text())
    assert [a["question_id"] for a in answers] == [f"s{i}" for i in range(6)]


def test_empty_ckpt_is_no_ckpt_and_old_is_chat(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    base = ["--model_path", str(tiny_model), "--max-new-tokens", "4", "--no-resume"]
    eval_project.runpytest(*base).assert_outcomes(passed=6)
    plain = {r.sample_id: (r.prediction, r.key) for r in records_of(eval_project)}
    eval_project.runpytest(*base, "--ckpt", "").assert_outcomes(passed=6)
    empty = {r.sample_id: (r.prediction, r.key) for r in records_of(eval_project)}
    eval_project.runpytest(*base, "--generate_method", "old").assert_outcomes(passed=6)
    old = {r.sample_id: (r.prediction, r.key) for r in records_of(eval_project)}
    assert plain == empty == old


def test_sweep_loads_each_checkpoint_once(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(str(tiny_model / "model.safetensors"))
    paths = []
    for i in range(3):
        path = eval_project.path / f"step{i}.safetensors"
        save_file({k: (v + 0.01 * i if v.is_floating_point() else v) for k, v in weights.items()}, str(path))
        paths.append(path)
    args = ["--model_path", str(tiny_model), "--max-new-tokens", "3", "-v"]
    for path in paths:
        args += ["--ckpt", str(path)]
    result = eval_project.runpytest(*args)
    result.assert_outcomes(passed=18)
    result.stdout.fnmatch_lines(["*test_tiny?ckpt0-s0?*PASSED*", "*test_tiny?ckpt2-s5?*PASSED*"])
    result.stdout.fnmatch_lines(["omnilmm [[]ckpt1[]] *step1.safetensors*replaced 84/84 tensors*"])
    records = records_of(eval_project)
    by_label: dict[str, list] = {}
    for r in records:
        by_label.setdefault(r.checkpoint, []).append(r)
    assert set(by_label) == {"ckpt0", "ckpt1", "ckpt2"}
    for recs in by_label.values():
        assert {r.extra["model_loads"] for r in recs} == {1}
    assert len({recs[0].fingerprint for recs in by_label.values()}) == 3
    # a sweep draws metric vs checkpoint (with CI bands) next to report.md
    run = run_dir(eval_project)
    assert (run / "metric_vs_checkpoint.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ckpt2" in (run / "report.md").read_text()


def test_ckpt_base_puts_the_base_model_in_a_sweep(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(str(tiny_model / "model.safetensors"))
    tuned = eval_project.path / "tuned.safetensors"
    save_file({k: (v + 0.01 if v.is_floating_point() else v) for k, v in weights.items()}, str(tuned))
    base = ["--model_path", str(tiny_model), "--max-new-tokens", "3", "--no-resume"]
    eval_project.runpytest(*base).assert_outcomes(passed=6)
    alone = {r.sample_id: (r.prediction, r.fingerprint) for r in records_of(eval_project)}
    result = eval_project.runpytest(*base, "--ckpt", "base", "--ckpt", str(tuned), "-v")
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines(["*test_tiny?base-s0?*PASSED*", "*test_tiny?ckpt0-s0?*PASSED*"])
    by_label: dict[str, dict] = {}
    for r in records_of(eval_project):
        by_label.setdefault(r.checkpoint, {})[r.sample_id] = (r.prediction, r.fingerprint)
    assert set(by_label) == {"base", "ckpt0"}
    assert by_label["base"] == alone  # the same model as a run without --ckpt
    assert by_label["ckpt0"] != alone
    # One predictions table per checkpoint and dataset: the sweep's two models do not overwrite each other.
    import csv

    import openpyxl

    run = run_dir(eval_project)
    for label, expected in by_label.items():
        with (run / "predictions" / label / "tiny.csv").open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert [row["id"] for row in rows] == [f"s{i}" for i in range(6)]
        assert {row["id"]: row["prediction"] for row in rows} == {k: v[0] for k, v in expected.items()}
        assert {row["checkpoint"] for row in rows} == {label}
        assert all(row["question"] and row["answers"].startswith("[") and row["score"] for row in rows)
        sheet = openpyxl.load_workbook(run / "predictions" / label / "tiny.xlsx").active
        assert [c.value for c in sheet[1]][:6] == [
            "id",
            "dataset",
            "question",
            "answers",
            "prediction",
            "score",
        ]
        assert sheet.max_row == 7
    twice = eval_project.runpytest(*base, "--ckpt", "base", "--ckpt", "base")
    assert twice.ret == pytest.ExitCode.USAGE_ERROR
    twice.stderr.fnmatch_lines(["ERROR: --ckpt base is given 2 times; give it once"])


def test_k_selects_one_sample(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    result = eval_project.runpytest("--model_path", str(tiny_model), "--max-new-tokens", "2", "-k", "s3")
    result.assert_outcomes(passed=1, deselected=5)
    assert [r.sample_id for r in records_of(eval_project)] == ["s3"]


def test_limit_is_a_stable_seeded_subset(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    args = ["--model_path", str(tiny_model), "--max-new-tokens", "2", "--limit", "3", "--collect-only", "-q"]
    first = eval_project.runpytest(*args).stdout.lines
    second = eval_project.runpytest(*args).stdout.lines
    ids = [line for line in first if "::" in line]
    assert len(ids) == 3 and ids == [line for line in second if "::" in line]
    assert ids != [f"test_tiny_eval.py::test_tiny[base-s{i}]" for i in range(3)]  # not "the first N"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ckpt", "missing.safetensors"], "*--ckpt missing.safetensors*"),
        (["--generate_method", "sideways"], "*--generate_method*sideways*chat*interleave*"),
        (["--dtype", "float8"], "*--dtype*float8*"),
        (["--batch-size", "zero"], "*--batch-size*zero*"),
        (["--data", "nonsense"], "*--data*NAME=PATH*"),
    ],
)
def test_bad_options_are_usage_errors(
    eval_project: pytest.Pytester, tiny_model: Path, args: list[str], message: str
) -> None:
    result = eval_project.runpytest_subprocess("--model_path", str(tiny_model), *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str()


def test_empty_ckpt_directory_is_a_usage_error(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    (eval_project.path / "empty").mkdir()
    result = eval_project.runpytest_subprocess("--model_path", str(tiny_model), "--ckpt", "empty")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --ckpt empty*empty directory*"])


def test_hub_id_offline_fails_fast(eval_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(eval_project.path / "hf-home"))
    result = eval_project.runpytest_subprocess("--model_path", "openbmb/MiniCPM-V-4_6")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --model_path openbmb/MiniCPM-V-4_6*offline*"])


def test_pickle_with_code_is_refused_and_not_run(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    marker = eval_project.path / "pwned"
    evil = eval_project.path / "evil.pt"
    code = (
        "import os, torch\n"
        "class Evil:\n"
        "    def __reduce__(self):\n"
        f"        return (os.system, ('touch {marker}',))\n"
        f"torch.save({{'state_dict': Evil()}}, {str(evil)!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    result = eval_project.runpytest_subprocess(
        "--model_path", str(tiny_model), "--max-new-tokens", "2", "--ckpt", str(evil)
    )
    assert not marker.exists()
    assert result.ret != 0
    output = result.stdout.str() + result.stderr.str()
    assert "safetensors" in output and "code" in output


def test_broken_image_fails_only_its_sample_and_lf_reruns_it(
    eval_project: pytest.Pytester, tiny_model: Path
) -> None:
    (eval_project.path / "images" / "2.png").write_bytes(b"not a png at all")
    args = ["--model_path", str(tiny_model), "--max-new-tokens", "2"]
    result = eval_project.runpytest(*args)
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(["*_ test_tiny[[]base-s2[]] _*", "image */images/2.png cannot be decoded*"])
    records = {r.sample_id: r for r in records_of(eval_project)}
    assert records["s2"].error is not None and "cannot be decoded" in records["s2"].error
    rerun = eval_project.runpytest(*args, "--lf")
    rerun.assert_outcomes(failed=1)  # only the failed sample ran again


def test_text_only_sample_batches_with_image_samples(pytester: pytest.Pytester, tiny_model: Path) -> None:
    path = write_jsonl_dataset(pytester.path, n=3)
    path.write_text(
        path.read_text() + json.dumps({"id": "t0", "question": "one plus one?", "answers": ["2"]}) + "\n"
    )
    pytester.makepyfile(test_tiny_eval=EVAL_MODULE)
    pytester.makeini("[pytest]\nfilterwarnings = ignore::pytest.PytestAssertRewriteWarning\n")
    pytester.runpytest("--model_path", str(tiny_model), "--max-new-tokens", "2").assert_outcomes(passed=4)
    records = {r.sample_id: r for r in records_of(pytester)}
    assert records["t0"].batch_size == 4 and records["t0"].error is None


def test_prompt_function_and_unknown_prompt(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    eval_project.makepyfile(
        test_tiny_eval="""
import pytest
from pytest_omnilmm.sample import Text

def shout(sample):
    return (*sample.images, Text(sample.text.upper()))

@pytest.mark.dataset("tiny", path="tiny.jsonl", metric="exact_match", prompt=shout)
def test_tiny(sample, generate, score):
    score(generate(sample))
"""
    )
    eval_project.runpytest("--model_path", str(tiny_model), "--max-new-tokens", "2").assert_outcomes(passed=6)
    eval_project.makepyfile(test_tiny_eval=EVAL_MODULE.replace('metric="exact_match"', 'prompt="mqc"'))
    result = eval_project.runpytest_subprocess("--model_path", str(tiny_model))
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a broken eval definition is a collection error
    result.stdout.fnmatch_lines(["*test_tiny*prompt=...): unknown prompt 'mqc'*"])
    assert "Traceback" not in result.stdout.str()


def test_two_evals_of_one_dataset_are_refused(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    eval_project.makepyfile(test_other=EVAL_MODULE.replace("def test_tiny", "def test_tiny_again"))
    result = eval_project.runpytest_subprocess("--model_path", str(tiny_model))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*dataset 'tiny' is already evaluated by *; give this eval its own*"])
    assert "Traceback" not in result.stdout.str()


def test_evals_without_the_plugin_say_so_in_one_line(pytester: pytest.Pytester) -> None:
    evals = Path(__file__).resolve().parents[1] / "evals"
    result = pytester.runpytest_subprocess(str(evals), "-p", "no:omnilmm", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR")]
    assert errors == [
        "ERROR: the evals in evals/ need the pytest-omnilmm plugin, which is disabled or not installed; "
        "drop `-p no:omnilmm` (or `pip install -e .` in this repository)"
    ]
    assert "KeyError" not in result.stdout.str() + result.stderr.str()


GOLDEN_EVAL = """
import pytest

@pytest.mark.dataset("tiny", path="tiny.jsonl", metric="exact_match")
def test_tiny(sample, generate, score):
    value = score(generate(sample))
    assert value == 1.0, f"golden sample {sample.id} must be answered right"
"""


def test_a_failing_golden_assert_is_a_failed_sample_not_an_error(
    eval_project: pytest.Pytester, tiny_model: Path
) -> None:
    eval_project.makepyfile(test_tiny_eval=GOLDEN_EVAL)
    result = eval_project.runpytest("--model_path", str(tiny_model), "--max-new-tokens", "2")
    records = records_of(eval_project)
    wrong = [r for r in records if r.scores["exact_match"] == 0.0]
    assert wrong, "the random-weight model answered every sample right: the test needs a wrong answer"
    result.assert_outcomes(failed=len(wrong), passed=6 - len(wrong))
    for r in records:
        assert r.error is None and r.prediction is not None
        if r in wrong:
            assert r.check_failed == f"AssertionError: golden sample {r.sample_id} must be answered right"
        else:
            assert r.check_failed is None
    (row,) = json.loads((run_dir(eval_project) / "summary.json").read_text())["results"]
    assert row["errors"] == 0 and row["failed_checks"] == len(wrong) and row["scored"] == 6


def test_junit_xml_gives_each_sample_its_time_prediction_and_score(
    eval_project: pytest.Pytester, tiny_model: Path
) -> None:
    import xml.etree.ElementTree as ET

    from _pytest.junitxml import bin_xml_escape

    xml = eval_project.path / "junit.xml"
    # 24 new tokens: a batch long enough that one item's own setup (~15 ms) is small beside its share
    result = eval_project.runpytest(
        "--model_path", str(tiny_model), "--max-new-tokens", "24", "--no-resume", f"--junitxml={xml}"
    )
    result.assert_outcomes(passed=6)
    records = {r.sample_id: r for r in records_of(eval_project)}
    cases = ET.parse(xml).getroot().findall(".//testcase")
    assert len(cases) == 6
    assert len({r.batch_id for r in records.values()}) == 1  # one batch of 6: one generate call
    share = next(iter(records.values())).latency_s / 6
    times = []
    for case in cases:
        sample_id = case.get("name").split("-")[-1].rstrip("]")
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        # junitxml writes control characters (random weights produce them) as #xNN: compare likewise.
        assert props["prediction"] == bin_xml_escape(records[sample_id].prediction)
        assert float(props["score"]) == records[sample_id].scores["exact_match"]
        times.append(float(case.get("time")))
    # Each item carries its share of the batch (plus its own setup/teardown, which grows on a loaded
    # machine), not 0 s and not the whole batch (6 shares): halfway between the two is the upper limit.
    assert all(share * 0.9 <= t <= share + 0.5 * (5 * share) + 0.01 for t in times), (times, share)


def test_git_commit_is_the_project_under_test(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    def git(*args: str, cwd: Path) -> str:
        return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout

    project = eval_project.path
    git("init", "-q", cwd=project)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "p", cwd=project)
    # Results far away from the project, inside another repository: its commit must not be reported.
    elsewhere = project.parent / f"{project.name}-results"
    elsewhere.mkdir()
    git("init", "-q", cwd=elsewhere)
    git(
        "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "r", cwd=elsewhere
    )
    result = eval_project.runpytest(
        "--model_path", str(tiny_model), "--max-new-tokens", "2", "--results-dir", str(elsewhere / "out")
    )
    result.assert_outcomes(passed=6)
    (run,) = (elsewhere / "out").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["run_info"]["git"]["commit"] == git("rev-parse", "HEAD", cwd=project).strip()


def test_a_run_stopped_by_maxfail_is_marked_partial(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    """-x after a failing sample: summary.json, the terminal and report.md say the run is partial."""
    import json

    with (eval_project.path / "tiny.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"id": "s-broken", "question": "q", "image": "images/missing.png", "answers": ["x"]}\n')
    result = eval_project.runpytest("--model_path", str(tiny_model), "--max-new-tokens", "2", "-x")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*omnilmm: PARTIAL run: stopped early*"])
    run = sorted((eval_project.path / ".omnilmm-results").iterdir())[-1]
    info = json.loads((run / "summary.json").read_text())["run_info"]
    assert info["partial"] is True and "stopped early" in info["partial_reason"]
    report = (run / "report.md").read_text()
    assert "**Verdict: ❌ FAILED (exit status 1)**" in report and "partial run: stopped early" in report
