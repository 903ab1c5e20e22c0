"""The regression gate end to end, on the bundled demo model and its early / final checkpoints.

These are real evals (the trained demo weights on the bundled demo data), not stored numbers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "pytest_omnilmm" / "demo"
EARLY = DEMO / "checkpoints" / "early.safetensors"
FINAL = DEMO / "checkpoints" / "final.safetensors"
# A quick slice of the demo evals: enough samples for the early checkpoint's drop to be significant.
SLICE = ["test_vqa.py::test_demo_vqa", "test_ocr.py::test_demo_ocr"]


@pytest.fixture
def demo_project(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(
        REPO / "evals", pytester.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    pytester.makeini("[pytest]\nfilterwarnings = ignore::pytest.PytestAssertRewriteWarning\n")
    return pytester


def _summary(project: pytest.Pytester) -> dict:
    run = sorted((project.path / ".omnilmm-results").iterdir())[-1]
    return json.loads((run / "summary.json").read_text())


def test_final_checkpoint_beats_early_and_gate_catches_it(demo_project: pytest.Pytester) -> None:
    save = demo_project.runpytest_subprocess(*SLICE, "--ckpt", str(FINAL), "--save-baseline", "final.json")
    assert save.ret == pytest.ExitCode.OK
    assert (demo_project.path / "final.json").is_file()
    final_rows = {r["dataset"]: r for r in _summary(demo_project)["results"]}

    same = demo_project.runpytest_subprocess(*SLICE, "--ckpt", str(FINAL), "--baseline", "final.json")
    assert same.ret == pytest.ExitCode.OK
    same.stdout.fnmatch_lines(["*demo_vqa*pass*"])

    worse = demo_project.runpytest_subprocess(*SLICE, "--ckpt", str(EARLY), "--baseline", "final.json")
    assert worse.ret == pytest.ExitCode.TESTS_FAILED
    early_rows = {r["dataset"]: r for r in _summary(demo_project)["results"]}
    out = worse.stdout.str()
    assert "FAIL  ckpt0 / demo_vqa / exact_match" in out
    worse.stdout.fnmatch_lines(["*worse than the baseline in ckpt0 / demo_vqa*", "*1 -> 0*baseline*now*"])
    # the final checkpoint is better, and not by noise: the CIs do not even overlap
    assert final_rows["demo_vqa"]["mean"] > early_rows["demo_vqa"]["mean"]
    assert final_rows["demo_vqa"]["ci_low"] > early_rows["demo_vqa"]["ci_high"]
    assert final_rows["demo_ocr"]["mean"] > early_rows["demo_ocr"]["mean"]


def _report_verdict(project: pytest.Pytester) -> str:
    run = sorted((project.path / ".omnilmm-results").iterdir())[-1]
    return (run / "report.md").read_text().splitlines()[2]


def test_quickstart_gate_against_the_base_model_baseline(demo_project: pytest.Pytester) -> None:
    """The README's quickstart on a slice: baseline = the base model; early fails, final passes, and
    report.md's verdict line states the exit status each run ends with."""
    assert demo_project.runpytest_subprocess(*SLICE, "--save-baseline", "baseline.json").ret == 0
    final = demo_project.runpytest_subprocess(*SLICE, "--ckpt", str(FINAL), "--baseline", "baseline.json")
    assert final.ret == pytest.ExitCode.OK
    assert _report_verdict(demo_project) == "**Verdict: ✅ passed (exit status 0)**"
    early = demo_project.runpytest_subprocess(*SLICE, "--ckpt", str(EARLY), "--baseline", "baseline.json")
    assert early.ret == pytest.ExitCode.TESTS_FAILED
    early.stdout.fnmatch_lines(["*FAIL  ckpt0 / demo_vqa / exact_match: dropped*"])
    assert _report_verdict(demo_project) == "**Verdict: ❌ FAILED (exit status 1)**"


def test_a_limited_run_fails_the_gate_on_coverage(demo_project: pytest.Pytester) -> None:
    assert demo_project.runpytest_subprocess(*SLICE[:1], "--save-baseline", "b.json").ret == 0
    part = demo_project.runpytest_subprocess(*SLICE[:1], "--limit", "8", "--baseline", "b.json")
    assert part.ret == pytest.ExitCode.TESTS_FAILED
    part.stdout.fnmatch_lines(["*demo_vqa*8/140 baseline samples present*--gate-allow-partial*"])
    ok = demo_project.runpytest_subprocess(
        *SLICE[:1], "--limit", "8", "--baseline", "b.json", "--gate-allow-partial"
    )
    assert ok.ret == pytest.ExitCode.OK
    ok.stdout.fnmatch_lines(["*8/140 (partial)*"])


def test_empty_or_mismatched_baseline_fails_closed(demo_project: pytest.Pytester) -> None:
    (demo_project.path / "empty.json").write_text("")
    empty = demo_project.runpytest_subprocess(*SLICE[:1], "--limit", "8", "--baseline", "empty.json")
    assert empty.ret == pytest.ExitCode.TESTS_FAILED
    empty.stdout.fnmatch_lines(["omnilmm gate: FAILED: *empty.json*"])
    # every eval item passed, the gate did not: report.md must say FAILED, as the exit status does
    assert _report_verdict(demo_project) == "**Verdict: ❌ FAILED (exit status 1)**"

    demo_project.runpytest_subprocess(*SLICE[:1], "--limit", "8", "--save-baseline", "b.json")
    other = demo_project.runpytest_subprocess(
        *SLICE[:1], "--limit", "8", "--baseline", "b.json", "--metric-flavor", "omnilmm"
    )
    assert other.ret == pytest.ExitCode.TESTS_FAILED
    other.stdout.fnmatch_lines(["*flavour*vlmevalkit*omnilmm*"])
    changed = demo_project.runpytest_subprocess(
        *SLICE[:1], "--limit", "8", "--baseline", "b.json", "--max-new-tokens", "5"
    )
    assert changed.ret == pytest.ExitCode.TESTS_FAILED
    changed.stdout.fnmatch_lines(["*max_new_tokens*"])
