"""Parallel and distributed runs: xdist workers, GPU pinning, crashes, shards and their merge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_omnilmm.records import read_records

from .conftest import write_jsonl_dataset


def latest_run(project: pytest.Pytester) -> Path:
    return sorted((project.path / ".omnilmm-results").iterdir())[-1]


def predictions(run: Path) -> dict[tuple[str, str], str | None]:
    return {(r.checkpoint, r.sample_id): r.prediction for r in read_records(run / "records.jsonl")}


def metric_rows(run: Path) -> list[dict]:
    rows = json.loads((run / "summary.json").read_text())["results"]
    return [
        {k: row[k] for k in ("checkpoint", "dataset", "n", "errors", "mean", "ci_low", "ci_high")}
        for row in rows
    ]


def test_two_workers_match_one_process(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    write_jsonl_dataset(eval_project.path, n=12)
    args = ["--model_path", str(tiny_model), "--max-new-tokens", "4", "--no-resume", "--batch-size", "4"]
    eval_project.runpytest_subprocess(*args).assert_outcomes(passed=12)
    single = latest_run(eval_project)
    eval_project.runpytest_subprocess(*args, "-n", "2").assert_outcomes(passed=12)
    double = latest_run(eval_project)
    assert predictions(single) == predictions(double)
    assert metric_rows(single) == metric_rows(double)
    records = list(read_records(double / "records.jsonl"))
    workers = {r.worker for r in records}
    assert workers == {"gw0", "gw1"}
    # each worker loaded the one checkpoint once, and batches were never split across workers
    assert {r.extra["model_loads"] for r in records} == {1}
    by_batch: dict[str, set[str]] = {}
    for r in records:
        by_batch.setdefault(r.batch_id, set()).add(r.worker)
    assert all(len(w) == 1 for w in by_batch.values())
    assert {r.batch_size for r in records} == {4}


def test_gpus_pin_one_gpu_per_worker(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(
        test_env="""
        import os, pytest
        @pytest.mark.parametrize("i", range(6))
        def test_env(i, worker_id, tmp_path_factory):
            out = tmp_path_factory.getbasetemp().parent / f"{worker_id}.env"
            out.write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
        """
    )
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake_smi(pytester, monkeypatch, 2)  # a machine with two GPUs, as nvidia-smi would list them
    result = pytester.runpytest_subprocess(
        "--gpus", "0,1", "-p", "no:cacheprovider", "--max-worker-restart=0", timeout=120
    )
    result.assert_outcomes(passed=6)
    seen = {p.stem: p.read_text() for p in pytester.path.parent.rglob("gw*.env")}
    assert sorted(seen.values()) == ["0", "1"]
    # an existing restriction is respected: --gpus indexes into the visible GPUs
    for p in pytester.path.parent.rglob("gw*.env"):
        p.unlink()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    pytester.runpytest_subprocess(
        "--gpus", "0,1", "-p", "no:cacheprovider", "--max-worker-restart=0", timeout=120
    ).assert_outcomes(passed=6)
    seen = {p.stem: p.read_text() for p in pytester.path.parent.rglob("gw*.env")}
    assert sorted(seen.values()) == ["3", "5"]


def fake_smi(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, gpus: int) -> None:
    """An ``nvidia-smi`` on PATH that lists ``gpus`` GPUs (or fails, for 0)."""
    import os

    bin_dir = pytester.path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    lines = "".join(f'echo "GPU {i}: NVIDIA Fake (UUID: GPU-fake{i})"\n' for i in range(gpus))
    script = bin_dir / "nvidia-smi"
    script.write_text("#!/bin/sh\n" + (lines if gpus else "exit 9\n"))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.parametrize("gpus", [0, 1])
def test_gpus_that_are_not_there_are_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, gpus: int
) -> None:
    pytester.makepyfile(test_plain="def test_a():\n    pass\n")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake_smi(pytester, monkeypatch, gpus)
    result = pytester.runpytest_subprocess("--gpus", "0,1", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    if gpus == 0:
        result.stderr.fnmatch_lines(["ERROR: --gpus 0,1: no GPU found on this machine (nvidia-smi*"])
    else:
        result.stderr.fnmatch_lines(
            [
                "ERROR: --gpus 0,1: GPU 1 is not on this machine; "
                "nvidia-smi lists 1 GPU(s): GPU 0: NVIDIA Fake*"
            ]
        )


def test_gpus_with_n_is_a_usage_error(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake_smi(pytester, monkeypatch, 2)
    result = pytester.runpytest_subprocess("--gpus", "0,1", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --gpus starts one worker per GPU*drop -n*"])


CRASHING_LOADER = """
import os
import pytest

@pytest.fixture(scope="session")
def omnilmm_load_model():
    from pytest_omnilmm.models import load_model

    def load(request):
        loaded = load_model(request)
        original = loaded.model.generate
        tokenizer = loaded.processor.tokenizer

        def generate(**kwargs):
            if any("crash now" in text for text in tokenizer.batch_decode(kwargs["input_ids"])):
                os._exit(3)  # what a segfault looks like to xdist: the worker vanishes mid-generation
            return original(**kwargs)

        loaded.model.generate = generate
        return loaded

    return load
"""


def _crash_project(pytester: pytest.Pytester) -> None:
    path = write_jsonl_dataset(pytester.path, n=8)
    lines = path.read_text().splitlines()
    row = json.loads(lines[3])
    row["question"] = "crash now"
    lines[3] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    pytester.makeconftest(CRASHING_LOADER)


@pytest.mark.parametrize("batch_size", ["1", "4"])
def test_worker_crash_fails_only_that_sample(
    eval_project: pytest.Pytester, tiny_model: Path, batch_size: str
) -> None:
    _crash_project(eval_project)
    result = eval_project.runpytest_subprocess(
        "--model_path",
        str(tiny_model),
        "--max-new-tokens",
        "3",
        "-n",
        "2",
        "--batch-size",
        batch_size,
        timeout=240,
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = result.parseoutcomes()
    failed_lines = [line for line in result.stdout.lines if line.startswith("FAILED")]
    assert any("s3" in line for line in failed_lines)
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 8
    if batch_size == "1":
        assert outcomes["failed"] == 1
    else:
        # xdist blames the item whose batch was generating; the plugin then generates the rest of that
        # batch one by one, so only the real culprit fails beyond that one.
        assert outcomes["failed"] <= 2
    result.stdout.fnmatch_lines(["*worker*crashed*"])
    records = list(read_records(latest_run(eval_project) / "records.jsonl"))
    assert len(records) == 8
    crashed = [r for r in records if r.sample_id == "s3"]
    assert crashed[0].error is not None and "crashed" in crashed[0].error


def test_shards_partition_and_merge_equals_unsharded(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    write_jsonl_dataset(eval_project.path, n=16)
    base = ["--model_path", str(tiny_model), "--max-new-tokens", "3", "--no-resume"]
    shard_ids = []
    for i in range(4):
        lines = eval_project.runpytest(*base, "--shard", f"{i}/4", "--collect-only", "-q").stdout.lines
        shard_ids.append({line for line in lines if "::" in line})
    union = set().union(*shard_ids)
    assert len(union) == 16 and sum(len(s) for s in shard_ids) == 16 and all(shard_ids)

    eval_project.runpytest(*base, "--save-baseline", "whole.json").assert_outcomes(passed=16)
    whole = latest_run(eval_project)
    shard_dirs = []
    for i in range(4):
        out = eval_project.path / f"shard{i}"
        eval_project.runpytest(*base, "--shard", f"{i}/4", "--results-dir", str(out))
        shard_dirs.append(str(out))
    merged_out = eval_project.path / "merged"
    whole_json = str(eval_project.path / "whole.json")
    proc = _cli(eval_project.path, "merge", *shard_dirs, "--out", str(merged_out), "--baseline", whole_json)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert predictions(merged_out) == predictions(whole)
    assert metric_rows(merged_out) == metric_rows(whole)
    assert "pass" in proc.stdout

    # one of the four shards merged is an incomplete run: the gate fails it with the coverage
    m1 = str(eval_project.path / "m1")
    one = _cli(eval_project.path, "merge", shard_dirs[0], "--out", m1, "--baseline", whole_json)
    assert one.returncode == 1, one.stdout + one.stderr
    assert f"{len(shard_ids[0])}/16 baseline samples present" in one.stdout
    report = (eval_project.path / "m1" / "report.md").read_text()
    assert report.splitlines()[2] == "**Verdict: ❌ FAILED (exit status 1)**"


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pytest_omnilmm ARGS`` in ``cwd``, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "pytest_omnilmm", *args], capture_output=True, text=True, cwd=cwd
    )


def _gate_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _cli(cwd, "gate", *args)


def test_gate_command_judges_finished_runs(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    """`python -m pytest_omnilmm gate` on results folders: all shards pass, one shard fails on coverage,
    the opt-in gates on the intersection and says so; a results folder can be the baseline."""
    write_jsonl_dataset(eval_project.path, n=6)
    base = ["--model_path", str(tiny_model), "--max-new-tokens", "3", "--no-resume"]
    eval_project.runpytest(*base, "--save-baseline", "b.json", "--results-dir", "whole").assert_outcomes(
        passed=6
    )
    for i in range(2):
        eval_project.runpytest(*base, "--shard", f"{i}/2", "--results-dir", f"shard{i}")
    ok = _gate_cli(eval_project.path, "--baseline", "b.json", "shard0", "shard1")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "regression gate (significant) vs b.json: passed" in ok.stdout and "6/6" in ok.stdout
    half = _gate_cli(eval_project.path, "--baseline", "b.json", "shard0")
    assert half.returncode == 1 and "baseline samples present" in half.stdout
    allowed = _gate_cli(eval_project.path, "--baseline", "b.json", "shard0", "--gate-allow-partial", "--json")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    rows = [r for r in json.loads(allowed.stdout)["rows"] if r["check"] == "paired"]
    assert rows and all(r["partial_ok"] and "--gate-allow-partial" in r["reason"] for r in rows)
    from_dir = _gate_cli(eval_project.path, "--baseline", "whole", "shard0", "shard1")
    assert from_dir.returncode == 0, from_dir.stdout + from_dir.stderr
    bad = _gate_cli(eval_project.path, "--baseline", "missing.json", "shard0")
    assert bad.returncode == 4 and bad.stderr.count("\n") == 1 and "missing.json" in bad.stderr


def test_merge_of_nothing_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_omnilmm", "merge", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 4
    assert proc.stderr.count("\n") == 1 and "no such directory" in proc.stderr
