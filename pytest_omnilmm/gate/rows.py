"""The gate's results: one ``Row`` per check, a ``GateReport`` for the run, and the wording they share."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .decide import FAIL, INCONCLUSIVE, NOT_GATED

if TYPE_CHECKING:
    from pytest_omnilmm.records import Record

MAX_FLIPS = 5  # worst samples kept per row: enough for triage, short enough for a terminal
MAX_ERROR_IDS = 20
REGEN = "regenerate the baseline with --save-baseline"


@dataclass(frozen=True)
class Flip:
    """A sample that scored lower than in the baseline (right -> wrong for 0-1 scores)."""

    sample_id: str
    baseline_score: float
    candidate_score: float
    baseline_prediction: str | None
    candidate_prediction: str | None
    candidate_error: str | None = None


@dataclass(frozen=True)
class CategoryDelta:
    category: str
    n: int
    baseline_mean: float
    candidate_mean: float
    delta: float


@dataclass(frozen=True)
class Row:
    """One line of the gate table.

    ``check``: "paired" (baseline vs candidate), "floor" (--min-score), "latency" (--max-slowdown),
    "setting" (generation setting changed), "coverage" (dataset missing/extra, no records).
    ``limit``: the margin, floor or allowed slowdown. For latency rows ``delta`` is the relative slowdown.
    ``n_present``/``n_baseline``: how many of the baseline's samples this run has.
    """

    check: str
    checkpoint: str
    dataset: str
    metric: str
    verdict: str
    reason: str
    baseline: float | None = None
    candidate: float | None = None
    delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None  # one-sided: small means the candidate is worse
    p_adjusted: float | None = None  # Holm over the run's gated comparisons
    mdd: float | None = None  # minimal detectable drop, 80 % power
    test: str = ""
    limit: float | None = None
    n: int = 0
    n_clusters: int = 0
    n_present: int | None = None
    n_baseline: int | None = None
    partial_ok: bool = False  # gated on the intersection by --gate-allow-partial
    n_needed: int | None = None
    n_errors: int = 0
    error_ids: tuple[str, ...] = ()
    n_worse: int = 0
    n_better: int = 0
    flips: tuple[Flip, ...] = ()
    categories: tuple[CategoryDelta, ...] = ()

    @property
    def label(self) -> str:
        parts = [p for p in (self.checkpoint, self.dataset, self.metric) if p and p != "*"]
        return " / ".join(parts)

    @property
    def coverage(self) -> str:
        if self.n_present is None or self.n_baseline is None:
            return "-"
        return f"{self.n_present}/{self.n_baseline}" + (" (partial)" if self.partial_ok else "")


@dataclass(frozen=True)
class GateReport:
    rows: tuple[Row, ...]
    mode: str
    level: float
    baseline_source: str | None = None
    notes: tuple[str, ...] = ()
    inconclusive_fails: bool = True

    def failing(self, row: Row) -> bool:
        return row.verdict == FAIL or (self.inconclusive_fails and row.verdict == INCONCLUSIVE)

    @property
    def failed(self) -> bool:
        return any(self.failing(r) for r in self.rows)

    @property
    def reasons(self) -> list[str]:
        """One line per failing row: why the gate failed."""
        return [f"{r.label}: {r.reason}" for r in self.rows if self.failing(r)]

    @property
    def warnings(self) -> list[str]:
        """Inconclusive and not-gated rows that did not fail the gate, one line each."""
        return [
            f"{r.label} ({r.verdict}): {r.reason}"
            for r in self.rows
            if r.verdict in (INCONCLUSIVE, NOT_GATED) and not self.failing(r)
        ]

    def verdicts(self) -> dict[str, str]:
        """``{"ckpt0 / textvqa / vqa_accuracy": "pass", ...}`` for the paired rows."""
        return {r.label: r.verdict for r in self.rows if r.check == "paired"}

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "failed": self.failed, "reasons": self.reasons}


def natural_key(label: str) -> tuple[Any, ...]:
    """Sort "ckpt2" before "ckpt10" (checkpoint labels of a sweep in their order)."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", label))


def primary_metric(recs: Sequence[Record]) -> str:
    metrics = sorted({r.metric for r in recs if r.metric})
    return metrics[0] if len(metrics) == 1 else "/".join(metrics) or "?"


def errored(ids: Sequence[str]) -> str:
    return f"{count_of(len(ids), 'sample')} errored (counted as wrong), e.g. {ids[0]!r}"


def count_of(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
