"""One (checkpoint, dataset) against its baseline: coverage, matched pairs, paired statistics, the worst
flips and per-category deltas; everything but the run-wide decision (Holm), which ``compare`` makes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..records import record_score
from .baseline import BaselineDataset
from .decide import FAIL, PASS
from .rows import MAX_ERROR_IDS, MAX_FLIPS, REGEN, CategoryDelta, Flip, Row, count_of, errored, primary_metric
from .settings import GateSettings
from .stats import PairedStats, paired_stats

if TYPE_CHECKING:
    from pytest_omnilmm.records import Record


@dataclass(frozen=True)
class Pending:
    """A paired row before the run-wide decision: either failed already, or with stats to decide on."""

    row: Row
    stats: PairedStats | None = None
    remarks: tuple[str, ...] = ()


def pending_row(label: str, base: BaselineDataset, recs: list[Record], settings: GateSettings) -> Pending:
    """Everything about one (checkpoint, dataset) except the run-wide decision."""
    metric = base.metric
    margin = settings.margin_for(base.name, metric)
    problems: list[str] = []
    remarks: list[str] = []

    by_id: dict[str, Record] = {}
    duplicates: list[str] = []
    for rec in recs:
        if rec.sample_id in by_id:
            duplicates.append(rec.sample_id)
        by_id[rec.sample_id] = rec
    if duplicates:
        problems.append(
            f"{count_of(len(duplicates), 'sample id')} duplicated in this run, e.g. {duplicates[0]!r} "
            "(overlapping shards?)"
        )
    flavors = sorted({r.metric_flavor for r in recs})
    if flavors != [base.metric_flavor]:
        problems.append(
            f"baseline used flavour {base.metric_flavor!r}, this run {', '.join(map(repr, flavors))}; "
            f"rerun with --metric-flavor {base.metric_flavor} or {REGEN}"
        )
    if not any(metric in r.scores for r in recs if r.error is None) and any(r.error is None for r in recs):
        problems.append(
            f"this run has no {metric!r} scores (its metric is {primary_metric(recs)}); "
            f"the baseline gates {metric!r}: score it or {REGEN}"
        )

    n_base = len(base.samples)
    matched = sorted(set(by_id) & set(base.samples))
    missing = sorted(set(base.samples) - set(by_id))
    coverage = f"{len(matched)}/{n_base} baseline samples present"
    partial_ok = False
    if not matched:
        problems.append(
            f"{coverage}: none of the baseline's sample ids are among this run's {len(by_id)}; {REGEN}"
        )
    elif missing and not settings.allow_partial:
        problems.append(
            f"{coverage} (missing e.g. {missing[0]!r}): the run is incomplete (interrupted, --limit, -k, "
            "--shard or a partial merge?); run every sample, or gate on the samples present with "
            "--gate-allow-partial"
        )
    elif missing:
        partial_ok = True
        remarks.append(f"gated on the {coverage} only (--gate-allow-partial)")
    extra = len(set(by_id) - set(base.samples))
    if extra:
        remarks.append(f"{count_of(extra, 'sample')} not in the baseline: reported, not gated")
    changed = [sid for sid in matched if by_id[sid].sample_hash != base.samples[sid].sample_hash]
    if changed:
        problems.append(
            f"dataset content changed for {count_of(len(changed), 'sample')}, e.g. {changed[0]!r}; {REGEN}"
        )

    pairs: list[tuple[str, float, float]] = []
    unscored = 0
    lost_scores: list[str] = []
    changed_set = set(changed)
    for sid in matched:
        if sid in changed_set:
            continue
        b, c = base.samples[sid].score, record_score(by_id[sid], metric)
        if b is None:
            unscored += 1  # undefined in the baseline (e.g. no usable reference): nothing to compare with
        elif c is None:
            lost_scores.append(sid)  # scored before, not now: a loss must not hide as a missing score
        else:
            pairs.append((sid, b, c))
    if lost_scores:
        problems.append(
            f"{count_of(len(lost_scores), 'sample')} scored in the baseline without a {metric} score "
            f"in this run (NaN or missing), e.g. {lost_scores[0]!r}; score them or {REGEN}"
        )
    if unscored:
        remarks.append(f"{count_of(unscored, 'sample')} without a {metric} score in the baseline left out")
    errors = sorted(sid for sid, r in by_id.items() if r.error is not None)
    if errors:
        remarks.append(errored(errors))

    common: dict[str, Any] = {
        "n_errors": len(errors),
        "error_ids": tuple(errors[:MAX_ERROR_IDS]),
        "limit": margin,
        "n_present": len(matched),
        "n_baseline": n_base,
        "partial_ok": partial_ok,
    }
    if not pairs:
        reason = "; ".join((problems or [f"no scored sample pairs for {metric}"]) + remarks)
        return Pending(Row("paired", label, base.name, metric, FAIL, reason, **common))

    clusters = [_cluster(sid, by_id[sid], base) for sid, _, _ in pairs]
    stats = paired_stats([b for _, b, _ in pairs], [c for _, _, c in pairs], clusters, level=settings.level)
    worst = sorted((p for p in pairs if p[2] < p[1]), key=lambda p: (p[2] - p[1], p[0]))[:MAX_FLIPS]
    flips = tuple(
        Flip(
            sample_id=sid,
            baseline_score=b,
            candidate_score=c,
            baseline_prediction=base.samples[sid].prediction,
            candidate_prediction=by_id[sid].prediction,
            candidate_error=by_id[sid].error,
        )
        for sid, b, c in worst
    )
    row = Row(
        "paired",
        label,
        base.name,
        metric,
        FAIL if problems else PASS,
        "; ".join(problems),
        baseline=stats.baseline_mean,
        candidate=stats.candidate_mean,
        delta=stats.delta,
        ci_low=stats.ci_low,
        ci_high=stats.ci_high,
        p_value=stats.p_value,
        test=stats.test,
        n=stats.n,
        n_clusters=stats.n_clusters,
        n_worse=stats.worse,
        n_better=stats.better,
        flips=flips,
        categories=_category_deltas(pairs, by_id, base),
        **common,
    )
    return Pending(row, stats, tuple(remarks))


def _cluster(sid: str, rec: Record, base: BaselineDataset) -> str:
    """The benchmark's own group (an MME pair, MMBench's rotated copies), else the image, else the sample."""
    sample = base.samples[sid]
    group = rec.group or sample.group
    if group:
        return f"group:{group}"
    image = rec.image_hash or sample.image_hash
    if image:
        return f"image:{image}"
    return f"sample:{sid}"


def _category_deltas(
    pairs: Sequence[tuple[str, float, float]], by_id: Mapping[str, Record], base: BaselineDataset
) -> tuple[CategoryDelta, ...]:
    per: dict[str, list[tuple[float, float]]] = {}
    for sid, b, c in pairs:
        category = by_id[sid].category or base.samples[sid].category
        if category is not None:
            per.setdefault(category, []).append((b, c))
    out = []
    for category in sorted(per):
        values = per[category]
        n = len(values)
        b_mean = math.fsum(b for b, _ in values) / n
        c_mean = math.fsum(c for _, c in values) / n
        out.append(CategoryDelta(category, n, b_mean, c_mean, math.fsum(c - b for b, c in values) / n))
    return tuple(out)
