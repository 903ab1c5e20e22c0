"""Latency, throughput and memory figures, computed from per-sample records (so xdist changes nothing).

A record's ``latency_s`` is the wall time of the generate call that answered it: with batching, every
sample of a batch waited that long. Two figures come from it and are named apart everywhere (terminal table,
summary.json, report.md, plot):

- **batch latency** (``p50_latency_s``, ...): what a sample waited for its answer, the generate call's time;
- **per-sample time** (``p50_sample_time_s``): that call's time divided by its batch size, the compute cost
  of one sample, counted once per batch.

Throughput counts each batch's time once (``batch_id``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..records import Record


@dataclass(frozen=True)
class PerfStats:
    samples: int  # samples timed in this run (resumed ones are not timed again)
    resumed: int
    batches: int
    mean_batch_size: float
    p50_latency_s: float
    p90_latency_s: float
    p99_latency_s: float
    p50_sample_time_s: float  # batch latency / batch size, one value per batch
    p50_ttft_s: float  # time to first token (NaN where generation could not stream)
    samples_per_s: float
    tokens_per_s: float
    peak_memory_mb: float
    load_time_s: float
    device: str
    device_name: str
    dtype: str

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: a figure that could not be measured (NaN, e.g. every sample resumed) becomes None."""

        def plain(v: Any) -> Any:
            if isinstance(v, float):
                return None if math.isnan(v) or math.isinf(v) else round(v, 6)
            return v

        return {k: plain(v) for k, v in asdict(self).items()}


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def perf_stats(records: Sequence[Record]) -> PerfStats:
    """Figures for one checkpoint. Samples that failed before generation (no batch) are left out."""
    timed = [r for r in records if not r.resumed and r.batch_id]
    resumed = sum(1 for r in records if r.resumed)
    batches: dict[str, tuple[float, int]] = {}
    tokens = 0
    for r in timed:
        batches[r.batch_id] = (r.latency_s, r.batch_size)
        tokens += r.generated_tokens
    busy = sum(latency for latency, _ in batches.values())
    latencies = [r.latency_s for r in timed]

    def extra(name: str) -> list[Any]:
        return [r.extra.get(name) for r in records if r.extra.get(name) is not None]

    memory = [float(v) for v in extra("peak_memory_mb")]
    loads = [float(v) for v in extra("load_time_s")]
    first = next((r for r in records if r.extra.get("device_name")), None)
    return PerfStats(
        samples=len(timed),
        resumed=resumed,
        batches=len(batches),
        mean_batch_size=(len(timed) / len(batches)) if batches else 0.0,
        p50_latency_s=percentile(latencies, 50),
        p90_latency_s=percentile(latencies, 90),
        p99_latency_s=percentile(latencies, 99),
        p50_sample_time_s=percentile([latency / max(size, 1) for latency, size in batches.values()], 50),
        p50_ttft_s=percentile(
            [float(r.extra["ttft_s"]) for r in timed if r.extra.get("ttft_s") is not None], 50
        ),
        samples_per_s=(len(timed) / busy) if busy > 0 else math.nan,
        tokens_per_s=(tokens / busy) if busy > 0 else math.nan,
        peak_memory_mb=max(memory) if memory else math.nan,
        load_time_s=max(loads) if loads else math.nan,
        device=str(first.extra.get("device", "")) if first else "",
        device_name=str(first.extra.get("device_name", "")) if first else "",
        dtype=str(first.extra.get("dtype", "")) if first else "",
    )
