"""Speed figures: aggregation from records (synthetic), batched generation against batch 1, timing fields
of real records, and out-of-memory back-off with a wrapped model that raises ``torch.OutOfMemoryError``
(the only fake here: a real out-of-memory cannot be produced on this machine)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_omnilmm.records import Record, read_records
from pytest_omnilmm.results.bench import percentile, perf_stats

from .conftest import write_jsonl_dataset


def record(
    sample_id: str,
    batch_id: str = "",
    latency: float = 0.0,
    batch_size: int = 1,
    tokens: int = 0,
    **fields: Any,
) -> Record:
    return Record(
        sample_id=sample_id,
        dataset="d",
        checkpoint="base",
        checkpoint_path="",
        fingerprint="f",
        key=sample_id,
        sample_hash="h",
        settings_hash="s",
        prediction="x",
        latency_s=latency,
        batch_id=batch_id,
        batch_size=batch_size,
        generated_tokens=tokens,
        **fields,
    )


# ------------------------------------------------------------------------------------------ aggregation
@pytest.mark.parametrize("size", [1, 2, 3, 7, 100, 1001])
def test_percentile_matches_numpy(size: int) -> None:
    import numpy as np

    values = np.random.default_rng(size).lognormal(size=size).tolist()
    for q in (0, 1, 25, 50, 90, 99, 99.9, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12)


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(percentile([], 50))


def test_rates_count_each_batch_once_and_leave_out_resumed_and_unstarted() -> None:
    import numpy as np

    records = [
        *(record(f"a{i}", "w:base:1:9", 2.0, 4, tokens=5) for i in range(4)),
        *(record(f"b{i}", "w:base:2:9", 1.2, 2, tokens=3) for i in range(2)),
        record("c0", "w:base:3:9", 0.7, 1, tokens=7),
        # answered by an earlier run: not timed now, whatever its old latency
        *(record(f"r{i}", "old:base:1:1", 9.0, 2, tokens=100, resumed=True) for i in range(2)),
        # failed before any generate call (bad image): no batch, no time
        record("e0", "", 0.0, 1, error="image cannot be decoded"),
    ]
    stats = perf_stats(records)
    assert (stats.samples, stats.resumed, stats.batches) == (7, 2, 3)
    busy = 2.0 + 1.2 + 0.7
    assert stats.samples_per_s == pytest.approx(7 / busy)
    assert stats.tokens_per_s == pytest.approx((4 * 5 + 2 * 3 + 7) / busy)
    assert stats.mean_batch_size == pytest.approx(7 / 3)
    latencies = [2.0] * 4 + [1.2] * 2 + [0.7]
    for q, got in ((50, stats.p50_latency_s), (90, stats.p90_latency_s), (99, stats.p99_latency_s)):
        assert got == pytest.approx(float(np.percentile(latencies, q)))
    # Per-sample time: each batch once (not each sample), its time over its size: 2.0/4, 1.2/2, 0.7/1
    # -> median 0.6 (weighting by samples would give 0.5).
    assert stats.p50_sample_time_s == pytest.approx(0.6)


def test_memory_load_time_and_device_come_from_the_records() -> None:
    info = {"device": "cpu", "device_name": "cpu (x86_64, 2 threads)", "dtype": "float32"}
    records = [
        record("a", "b1", 0.1, extra={"peak_memory_mb": 700.0, "load_time_s": 2.5, **info}),
        record("b", "b2", 0.1, extra={"peak_memory_mb": 910.5, "load_time_s": 2.5, **info}),
        record("c", "b3", 0.1, extra={"peak_memory_mb": 650.0, "load_time_s": 3.0, **info}),
    ]
    stats = perf_stats(records)
    assert stats.peak_memory_mb == 910.5  # the highest any worker reached
    assert stats.load_time_s == 3.0
    assert (stats.device, stats.device_name, stats.dtype) == ("cpu", "cpu (x86_64, 2 threads)", "float32")


def test_no_timed_samples_give_nan_rates_not_errors() -> None:
    stats = perf_stats([record("r", "old", 1.0, resumed=True)])
    assert stats.samples == 0 and stats.resumed == 1 and stats.batches == 0
    assert math.isnan(stats.samples_per_s) and math.isnan(stats.p50_latency_s)
    json.dumps(stats.to_json())  # plain values


# ------------------------------------------------------------------------------------ real generation
@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One torch thread: on a 2-core machine shared with other work, two threads wait on each other for a
    busy core and generation gets several times slower. Nothing here depends on the thread count."""
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run(project: pytest.Pytester, model: Path, name: str, *args: str) -> tuple[Any, list[Record]]:
    """One in-process run into its own results directory; its outcome and its records."""
    results = project.path / "results" / name
    outcome = project.runpytest(
        "--model_path",
        str(model),
        "--max-new-tokens",
        "3",
        "--no-resume",
        "--results-dir",
        str(results),
        *args,
    )
    (run_dir,) = results.iterdir()
    return outcome, list(read_records(run_dir / "records.jsonl"))


def answers(records: list[Record]) -> dict[str, str | None]:
    return {r.sample_id: r.prediction for r in records}


def test_batching_gives_batch_one_answers_and_timed_records(
    eval_project: pytest.Pytester, tiny_model: Path
) -> None:
    one, single = run(eval_project, tiny_model, "b1", "--batch-size", "1")
    one.assert_outcomes(passed=6)
    four, batched = run(eval_project, tiny_model, "b4", "--batch-size", "4")
    four.assert_outcomes(passed=6)
    assert answers(batched) == answers(single)
    assert sorted(r.batch_size for r in batched) == [2, 2, 4, 4, 4, 4]
    assert {r.batch_size for r in single} == {1}
    for r in batched + single:
        assert r.latency_s > 0 and r.generated_tokens > 0 and r.prompt_tokens > 0 and r.batch_id
        assert r.extra["peak_memory_mb"] > 0 and r.extra["load_time_s"] > 0 and r.extra["device_name"]
    by_batch: dict[str, set[float]] = {}
    for r in batched:
        by_batch.setdefault(r.batch_id, set()).add(r.latency_s)
    assert len(by_batch) == 2 and all(len(latencies) == 1 for latencies in by_batch.values())


OOM_CONFTEST = '''
from pathlib import Path

import pytest
import torch

from pytest_omnilmm.models import load_model

CALLS = Path(__file__).with_name("generate_calls.log")  # one line per generate call: ok|oom ROWS
MAX_ROWS = {max_rows}
MAX_LENGTH = {max_length}


@pytest.fixture(scope="session")
def omnilmm_load_model():
    """The real model, whose generate runs out of memory on batches too large for an imagined device."""

    def load(request):
        loaded = load_model(request)
        real_generate = loaded.model.generate

        def generate(**inputs):
            rows, length = inputs["input_ids"].shape
            fits = rows <= MAX_ROWS and length <= MAX_LENGTH
            with CALLS.open("a") as log:
                log.write(f"{{'ok' if fits else 'oom'}} {{rows}}\\n")
            if not fits:
                raise torch.OutOfMemoryError(
                    f"CUDA out of memory. Tried to allocate 2.00 GiB ({{rows}} rows x {{length}} tokens)"
                )
            return real_generate(**inputs)

        loaded.model.generate = generate
        return loaded

    return load
'''


def test_auto_batch_halves_on_out_of_memory_and_keeps_every_sample(
    eval_project: pytest.Pytester, tiny_model: Path
) -> None:
    eval_project.makeconftest(OOM_CONFTEST.format(max_rows=2, max_length=10_000))
    reference, single = run(eval_project, tiny_model, "b1", "--batch-size", "1")
    reference.assert_outcomes(passed=6)
    calls = eval_project.path / "generate_calls.log"
    calls.unlink()
    auto, records = run(eval_project, tiny_model, "auto", "--batch-size", "auto")
    auto.assert_outcomes(passed=6)
    log = [line.split() for line in calls.read_text().splitlines()]
    assert log[0] == ["oom", "6"]  # started high: all six samples in one call
    assert sum(int(rows) for status, rows in log if status == "ok") == 6  # each generated exactly once
    assert all(int(rows) <= 2 for status, rows in log if status == "ok")
    raw = [
        r.sample_id
        for r in read_records(next((eval_project.path / "results" / "auto").glob("*/records-main.jsonl")))
    ]
    assert sorted(raw) == [f"s{i}" for i in range(6)]  # and recorded exactly once
    assert all(r.error is None for r in records)
    assert max(r.batch_size for r in records) == 2
    assert answers(records) == answers(single)


def test_out_of_memory_at_batch_one_fails_only_that_sample(
    eval_project: pytest.Pytester, tiny_model: Path
) -> None:
    # s3's question is long enough (~440 prompt tokens against ~90) to exceed the imagined device alone.
    write_jsonl_dataset(eval_project.path)
    path = eval_project.path / "tiny.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[3]["question"] = "What colour is the shape? " * 40
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    eval_project.makeconftest(OOM_CONFTEST.format(max_rows=64, max_length=200))
    outcome, records = run(eval_project, tiny_model, "fixed", "--batch-size", "4")
    outcome.assert_outcomes(passed=5, failed=1)
    # one plain line under the failure's header (no traceback), and the summary names the sample
    outcome.stdout.fnmatch_lines(["_*test_tiny[[]base-s3[]]*_", "out of memory at batch size 1 on cpu*"])
    outcome.stdout.fnmatch_lines(["FAILED *test_tiny[[]base-s3[]]*out of memory*"])
    by_id = {r.sample_id: r for r in records}
    assert sorted(by_id) == [f"s{i}" for i in range(6)]
    assert by_id["s3"].error is not None and "out of memory at batch size 1" in by_id["s3"].error
    assert by_id["s3"].prediction is None
    assert all(
        by_id[f"s{i}"].error is None and by_id[f"s{i}"].prediction is not None for i in (0, 1, 2, 4, 5)
    )
    # [s0..s3] failed, halves [s0 s1] and [s2 s3], then [s2] and [s3] alone; [s4 s5] never failed
    assert {sid: by_id[sid].batch_size for sid in sorted(by_id)} == {
        "s0": 2,
        "s1": 2,
        "s2": 1,
        "s3": 1,
        "s4": 2,
        "s5": 2,
    }
