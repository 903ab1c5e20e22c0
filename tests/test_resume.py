"""Crash-safe records and resume, end to end on the tiny random-weight MiniCPM-V 4.6.

A run writes each record as its sample finishes; a later run into the same ``--results-dir`` reuses every
finished record whose key (weights content, generation settings, prompt, sample content) matches, and
generates only the rest. These tests kill and interrupt real ``pytest`` processes, count the model's
generate calls through a conftest override of ``omnilmm_load_model``, and compare the summaries.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_omnilmm.records import Record, read_records

from .conftest import write_jsonl_dataset

# Generate calls are counted in a file (one line per call: its batch size), so a killed process leaves its
# count behind too. The delay keeps a run busy long enough for a signal to land mid-run.
COUNTING_CONFTEST = """
import os
import time

import pytest

from pytest_omnilmm.models import load_model


@pytest.fixture(scope="session")
def omnilmm_load_model():
    counter = os.environ["OMNILMM_TEST_COUNTER"]
    delay = float(os.environ.get("OMNILMM_TEST_DELAY", "0"))

    def load(request):
        loaded = load_model(request)
        real_generate = loaded.model.generate

        def counted(*args, **kwargs):
            with open(counter, "a") as fh:
                fh.write(f"{kwargs['input_ids'].shape[0]}\\n")
            time.sleep(delay)
            return real_generate(*args, **kwargs)

        loaded.model.generate = counted
        return loaded

    return load
"""

# Scores that depend on the answer (random weights never match a reference), so that equal means and CIs
# say something about the predictions behind them.
PARITY_EVAL = """
import pytest

@pytest.mark.dataset("tiny", path="tiny.jsonl", metric="exact_match")
def test_tiny(sample, generate, score):
    score(float(len(generate(sample)) % 2), metric="exact_match")
"""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A fresh hash cache per test, and no offline switch left behind by an in-process run."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "")  # remembers the original value, restored after the test
        monkeypatch.delenv(name)
    monkeypatch.setenv("PYTEST_OMNILMM_CACHE", str(tmp_path / "hash-cache"))
    monkeypatch.setenv("OMNILMM_TEST_COUNTER", str(tmp_path / "generate-calls.txt"))
    monkeypatch.setenv("OMNILMM_TEST_DELAY", "0")


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    write_jsonl_dataset(pytester.path, n=6)
    pytester.makepyfile(test_tiny_eval=PARITY_EVAL)
    pytester.makeconftest(COUNTING_CONFTEST)
    pytester.makeini("[pytest]\nfilterwarnings = ignore::pytest.PytestAssertRewriteWarning\n")
    return pytester


def take_generate_calls() -> list[int]:
    """Batch sizes of the generate calls since the last look (and start counting afresh)."""
    counter = Path(os.environ["OMNILMM_TEST_COUNTER"])
    if not counter.exists():
        return []
    calls = [int(line) for line in counter.read_text().split()]
    counter.unlink()
    return calls


def run_dirs(results: Path) -> set[Path]:
    return set(results.iterdir()) if results.is_dir() else set()


def only_new_run(results: Path, before: set[Path]) -> Path:
    (run,) = run_dirs(results) - before
    return run


def records_by_id(path: Path) -> dict[str, Record]:
    return {r.sample_id: r for r in read_records(path)}


def summary_rows(run: Path) -> list[dict[str, object]]:
    rows = json.loads((run / "summary.json").read_text())["results"]
    keys = ("checkpoint", "dataset", "metric", "n", "errors", "mean", "ci_low", "ci_high")
    return [{k: row[k] for k in keys} for row in rows]


def pytest_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]


def _default_sigint() -> None:
    # A process started from a non-interactive shell may inherit SIGINT ignored; Ctrl-C must reach pytest.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(project: pytest.Pytester, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            pytest_command(*args),
            cwd=project.path,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_default_sigint,
        )


def wait_for_records(results: Path, at_least: int, proc: subprocess.Popen[bytes], log: Path) -> Path:
    """The run's worker file once it holds ``at_least`` finished records (polled, the run goes on)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        for path in results.glob("*/records-main.jsonl"):
            if path.read_bytes().count(b"\n") >= at_least:
                return path
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc={proc.returncode}) before {at_least} records:\n{log.read_text()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no {at_least} records within 240 s:\n{log.read_text()}")


@pytest.fixture
def killed_later() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test started; killed if the test fails before it reaps them."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------------------------------------- kill -9
def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(
    project: pytest.Pytester,
    tiny_model: Path,
    killed_later: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_jsonl_dataset(project.path, n=24)
    args = ["--model_path", str(tiny_model), *"--batch-size 2 --max-new-tokens 3 --results-dir res".split()]
    results = project.path / "res"
    log = project.path / "killed.log"

    monkeypatch.setenv("OMNILMM_TEST_DELAY", "0.05")
    proc = start(project, args, log)
    killed_later.append(proc)
    worker_file = wait_for_records(results, 6, proc, log)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    killed_run = worker_file.parent
    assert not (killed_run / "summary.json").exists()  # it really died mid-run
    finished = {sid for sid, r in records_by_id(worker_file).items() if r.ok}
    assert 6 <= len(finished) < 24
    # The kill may or may not have torn the line being written; make sure one is torn (half a record).
    last = worker_file.read_text().splitlines()[-1]
    with worker_file.open("a") as fh:
        fh.write(last[: len(last) // 2])
    take_generate_calls()

    # The same command again (in-process, to save a start-up): the finished samples come from the
    # killed run's records.
    monkeypatch.setenv("OMNILMM_TEST_DELAY", "0")
    before = run_dirs(results)
    project.runpytest(*args).assert_outcomes(passed=24)
    assert sum(take_generate_calls()) == 24 - len(finished)
    resumed_run = only_new_run(results, before)
    resumed = records_by_id(resumed_run / "records.jsonl")
    assert len(resumed) == 24 and all(r.ok for r in resumed.values())
    assert {sid for sid, r in resumed.items() if r.resumed} == finished

    # An uninterrupted run, regenerating everything, elsewhere.
    fresh = project.runpytest(*args[:-1], "fresh", "--no-resume")
    fresh.assert_outcomes(passed=24)
    assert sum(take_generate_calls()) == 24
    (fresh_run,) = run_dirs(project.path / "fresh")
    uninterrupted = records_by_id(fresh_run / "records.jsonl")
    assert not any(r.resumed for r in uninterrupted.values())
    assert {sid: r.prediction for sid, r in resumed.items()} == {
        sid: r.prediction for sid, r in uninterrupted.items()
    }
    assert summary_rows(resumed_run) == summary_rows(fresh_run)
    assert summary_rows(fresh_run)[0]["n"] == 24


# ------------------------------------------------------------------------------------------------- keys
def test_checkpoint_rewritten_at_the_same_path_is_regenerated(
    project: pytest.Pytester, tiny_model: Path
) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(str(tiny_model / "model.safetensors"))
    ckpt = project.path / "ckpt.safetensors"
    other = project.path / "other.safetensors"
    save_file(weights, str(ckpt))
    save_file({k: v + 0.01 if v.is_floating_point() else v for k, v in weights.items()}, str(other))
    for path in (ckpt, other):
        os.utime(path, (0, 0))  # old enough for the hash cache to keep its hash

    args = [
        "--model_path",
        str(tiny_model),
        "--ckpt",
        str(ckpt),
        *"--max-new-tokens 3 --results-dir res".split(),
    ]
    project.runpytest(*args).assert_outcomes(passed=6)
    (first_run,) = run_dirs(project.path / "res")
    first = records_by_id(first_run / "records.jsonl")
    take_generate_calls()

    # Overwritten in place with equal size and the same timestamps, like `cp -p other ckpt`: only the
    # content (and the ctime nobody can set) changed.
    ino = ckpt.stat().st_ino
    ckpt.write_bytes(other.read_bytes())
    os.utime(ckpt, (0, 0))
    assert ckpt.stat().st_ino == ino and ckpt.stat().st_size == other.stat().st_size

    before = run_dirs(project.path / "res")
    project.runpytest(*args).assert_outcomes(passed=6)
    assert sum(take_generate_calls()) == 6  # nothing served from the stale weights' records
    second = records_by_id(only_new_run(project.path / "res", before) / "records.jsonl")
    assert not any(r.resumed for r in second.values())
    assert {r.fingerprint for r in second.values()}.isdisjoint({r.fingerprint for r in first.values()})


def test_max_new_tokens_is_part_of_the_key(project: pytest.Pytester, tiny_model: Path) -> None:
    args = ["--model_path", str(tiny_model), "--results-dir", "res"]
    project.runpytest(*args, "--max-new-tokens", "3").assert_outcomes(passed=6)
    take_generate_calls()
    before = run_dirs(project.path / "res")
    project.runpytest(*args, "--max-new-tokens", "2").assert_outcomes(passed=6)
    assert sum(take_generate_calls()) == 6
    records = records_by_id(only_new_run(project.path / "res", before) / "records.jsonl")
    assert not any(r.resumed for r in records.values())
    assert all(r.generated_tokens <= 2 for r in records.values())


def test_resume_works_across_worker_counts(project: pytest.Pytester, tiny_model: Path) -> None:
    args = ["--model_path", str(tiny_model), *"--max-new-tokens 3 --batch-size 2 --results-dir res".split()]
    parallel = project.runpytest(*args, "-n", "2")
    parallel.assert_outcomes(passed=6)
    (parallel_run,) = run_dirs(project.path / "res")
    assert {p.name for p in parallel_run.glob("records-*.jsonl")} == {
        "records-gw0.jsonl",
        "records-gw1.jsonl",
    }
    take_generate_calls()

    before = run_dirs(project.path / "res")
    project.runpytest(*args, "-n", "0").assert_outcomes(passed=6)
    assert take_generate_calls() == []
    records = records_by_id(only_new_run(project.path / "res", before) / "records.jsonl")
    assert len(records) == 6 and all(r.resumed and r.worker == "main" for r in records.values())
    parallel_records = records_by_id(parallel_run / "records.jsonl")
    assert {sid: r.prediction for sid, r in records.items()} == {
        sid: r.prediction for sid, r in parallel_records.items()
    }


# ------------------------------------------------------------------------------------------------ Ctrl-C
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_keeps_finished_records_and_writes_their_summary(
    project: pytest.Pytester,
    tiny_model: Path,
    killed_later: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    signum: int,
) -> None:
    # SIGTERM is what pre-emption sends; the plugin ends the session as for Ctrl-C.
    write_jsonl_dataset(project.path, n=24)
    monkeypatch.setenv("OMNILMM_TEST_DELAY", "0.05")
    args = ["--model_path", str(tiny_model), *"--batch-size 2 --max-new-tokens 3 --results-dir res".split()]
    log = project.path / "interrupted.log"
    proc = start(project, args, log)
    killed_later.append(proc)
    worker_file = wait_for_records(project.path / "res", 4, proc, log)
    proc.send_signal(signum)
    assert proc.wait(timeout=60) == pytest.ExitCode.INTERRUPTED
    output = log.read_text()
    assert "KeyboardInterrupt" in output and "Traceback" not in output

    run = worker_file.parent
    kept = records_by_id(worker_file)
    assert 4 <= len(kept) < 24 and all(r.ok for r in kept.values())
    summarised = records_by_id(run / "records.jsonl")
    # The interrupt may land between writing a record and reporting it: at most that one is not summarised.
    assert summarised.keys() <= kept.keys() and len(kept) - len(summarised) <= 1
    (row,) = json.loads((run / "summary.json").read_text())["results"]
    assert row["n"] == len(summarised) and row["errors"] == 0
