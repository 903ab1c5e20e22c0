"""A run against a baseline: coverage, matched pairs, verdicts, floors and latency — as table rows.

Fails closed: a baseline sample the run does not have (an interrupted, ``--limit``-ed, ``-k``-filtered
or partially merged run), changed sample content, duplicated ids, another metric or flavour, a
changed generation setting, a dataset missing from the run — each fails its row with the reason.
``--gate-allow-partial`` gates on the samples both runs have instead, and the row says so. An errored
sample counts as wrong, never as missing. Rows are computed from records sorted by id, so merged
shards give the same verdicts as one run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from pytest_omnilmm.baseline import Baseline, BaselineDataset, clean_score, record_score

from .decide import FAIL, INCONCLUSIVE, NOT_GATED, PASS, TOL, Decision, decide_all
from .settings import GateSettings
from .stats import PairedStats, paired_stats

if TYPE_CHECKING:
    from pytest_omnilmm.records import Record

GATED_SETTINGS = ("generate_method", "max_new_tokens", "num_beams", "dtype")
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


@dataclass(frozen=True)
class _Pending:
    """A paired row before the run-wide decision: either failed already, or with stats to decide on."""

    row: Row
    stats: PairedStats | None = None
    remarks: tuple[str, ...] = ()


def compare(
    baseline: Baseline | None,
    records: Iterable[Record],
    run_info: Mapping[str, Any],
    settings: GateSettings,
) -> GateReport:
    """Gate every checkpoint of the run against the baseline (and the absolute floors)."""
    records = sorted(records, key=lambda r: (r.checkpoint, r.dataset, r.sample_id))
    by_key: dict[tuple[str, str], list[Record]] = {}
    for rec in records:
        by_key.setdefault((rec.checkpoint, rec.dataset), []).append(rec)
    labels = sorted({label for label, _ in by_key}, key=natural_key)
    rows: list[Row | _Pending] = []
    notes: list[str] = []

    if baseline is not None:
        rows.extend(_setting_rows(baseline, run_info))
        notes.extend(_version_notes(baseline, run_info))
        if run_info.get("partial"):
            notes.append(f"this run is partial: {run_info.get('partial_reason') or 'it did not finish'}")
        if not labels:
            rows.append(
                Row(
                    "coverage",
                    "*",
                    "*",
                    "*",
                    FAIL,
                    "this run produced no records to compare with the baseline",
                )
            )
        for label in labels:
            fingerprint = ((run_info.get("checkpoints") or {}).get(label) or {}).get("fingerprint")
            if fingerprint and fingerprint == baseline.checkpoint.get("fingerprint"):
                notes.append(f"{label} has the same weights as the baseline (fingerprint {fingerprint[:12]})")
            run_datasets = {ds for lab, ds in by_key if lab == label}
            for ds in sorted(set(baseline.datasets) | run_datasets):
                if ds not in run_datasets:
                    base = baseline.datasets[ds]
                    rows.append(
                        Row(
                            "coverage",
                            label,
                            ds,
                            base.metric,
                            FAIL,
                            f"dataset {ds!r} is in the baseline but not in this run (0/{len(base.samples)} "
                            f"baseline samples present); run it too or {REGEN} without it",
                            n_present=0,
                            n_baseline=len(base.samples),
                        )
                    )
                elif ds not in baseline.datasets:
                    rows.append(
                        Row(
                            "coverage",
                            label,
                            ds,
                            _primary_metric(by_key[(label, ds)]),
                            NOT_GATED,
                            f"dataset {ds!r} is not in the baseline {baseline.source}: reported, not gated; "
                            "add it with --save-baseline",
                        )
                    )
                else:
                    rows.append(_pending(label, baseline.datasets[ds], by_key[(label, ds)], settings))
            if settings.max_slowdown is not None:
                rows.extend(_latency_rows(label, baseline, run_info, settings.max_slowdown))

    decided = _decide(rows, settings)
    decided.extend(_floor_rows(by_key, labels, settings))
    return GateReport(
        rows=tuple(decided),
        mode=settings.mode,
        level=settings.level,
        baseline_source=None if baseline is None else baseline.source,
        notes=tuple(notes),
        inconclusive_fails=settings.inconclusive_fails,
    )


def _decide(rows: Sequence[Row | _Pending], settings: GateSettings) -> list[Row]:
    pending = [r for r in rows if isinstance(r, _Pending) and r.stats is not None]
    decisions = decide_all(
        [p.stats for p in pending if p.stats is not None],
        [p.row.limit or 0.0 for p in pending],
        mode=settings.mode,
        alpha=settings.alpha,
    )
    by_id = {id(p): d for p, d in zip(pending, decisions, strict=True)}
    out = []
    for r in rows:
        if isinstance(r, Row):
            out.append(r)
        elif r.stats is None:
            out.append(r.row)
        else:
            out.append(_with_decision(r, by_id[id(r)]))
    return out


def _with_decision(p: _Pending, d: Decision) -> Row:
    verdict = p.row.verdict if p.row.verdict == FAIL else d.verdict  # a problem found earlier stays a fail
    reason = "; ".join([*([p.row.reason] if p.row.reason else []), d.reason, *p.remarks])
    return replace(
        p.row, verdict=verdict, reason=reason, p_adjusted=d.p_adjusted, mdd=d.mdd, n_needed=d.n_needed
    )


def natural_key(label: str) -> tuple[Any, ...]:
    """Sort "ckpt2" before "ckpt10" (checkpoint labels of a sweep in their order)."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", label))


def _primary_metric(recs: Sequence[Record]) -> str:
    metrics = sorted({r.metric for r in recs if r.metric})
    return metrics[0] if len(metrics) == 1 else "/".join(metrics) or "?"


def _setting_rows(baseline: Baseline, run_info: Mapping[str, Any]) -> list[Row]:
    generation = run_info.get("generation") or {}
    rows = []
    for name in GATED_SETTINGS:
        before, now = baseline.generation.get(name), generation.get(name)
        if before != now:
            rows.append(
                Row(
                    "setting",
                    "*",
                    "*",
                    name,
                    FAIL,
                    f"generation setting {name} changed: baseline {before!r}, this run {now!r}; "
                    f"rerun with {name}={before!r} or {REGEN}",
                )
            )
    return rows


def _version_notes(baseline: Baseline, run_info: Mapping[str, Any]) -> list[str]:
    versions = run_info.get("versions") or {}
    notes = []
    for name in sorted(set(baseline.versions) | set(versions)):
        before, now = baseline.versions.get(name), versions.get(name)
        if before != now:
            notes.append(f"{name}: baseline {before}, this run {now}")
    return notes


def _pending(label: str, base: BaselineDataset, recs: list[Record], settings: GateSettings) -> _Pending:
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
            f"{_count(len(duplicates), 'sample id')} duplicated in this run, e.g. {duplicates[0]!r} "
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
            f"this run has no {metric!r} scores (its metric is {_primary_metric(recs)}); "
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
        remarks.append(f"{_count(extra, 'sample')} not in the baseline: reported, not gated")
    changed = [sid for sid in matched if by_id[sid].sample_hash != base.samples[sid].sample_hash]
    if changed:
        problems.append(
            f"dataset content changed for {_count(len(changed), 'sample')}, e.g. {changed[0]!r}; {REGEN}"
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
            f"{_count(len(lost_scores), 'sample')} scored in the baseline without a {metric} score "
            f"in this run (NaN or missing), e.g. {lost_scores[0]!r}; score them or {REGEN}"
        )
    if unscored:
        remarks.append(f"{_count(unscored, 'sample')} without a {metric} score in the baseline left out")
    errors = sorted(sid for sid, r in by_id.items() if r.error is not None)
    if errors:
        remarks.append(_errored(errors))

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
        return _Pending(Row("paired", label, base.name, metric, FAIL, reason, **common))

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
    return _Pending(row, stats, tuple(remarks))


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


def _latency_rows(
    label: str, baseline: Baseline, run_info: Mapping[str, Any], max_slowdown: float
) -> list[Row]:
    hw_then = baseline.hardware
    hw_now = run_info.get("hardware") or {}
    same_hw = bool(hw_then.get("device")) and all(
        hw_then.get(k) == hw_now.get(k) for k in ("device", "device_name")
    )
    perf_now = (run_info.get("perf") or {}).get(label) or {}
    rows = []
    # (figure, higher is worse): a slowdown is time per sample going up, whichever figure shows it.
    for figure, higher_is_worse in (("p50_latency_s", True), ("samples_per_s", False)):
        before, now = clean_score(baseline.perf.get(figure)), clean_score(perf_now.get(figure))
        if before is None or now is None or before <= 0 or now <= 0:
            where = "the baseline" if before is None or before <= 0 else "this run"
            rows.append(
                Row(
                    "latency",
                    label,
                    "*",
                    figure,
                    NOT_GATED,
                    f"no {figure} in {where}: latency not gated",
                    baseline=before,
                    candidate=now,
                    limit=max_slowdown,
                )
            )
            continue
        slowdown = now / before - 1 if higher_is_worse else before / now - 1
        common = {"baseline": before, "candidate": now, "delta": slowdown, "limit": max_slowdown}
        if not same_hw:
            reason = (
                f"hardware differs (baseline {_hw(hw_then)}, this run {_hw(hw_now)}): "
                f"{slowdown:+.1%} reported, not gated"
            )
            rows.append(Row("latency", label, "*", figure, NOT_GATED, reason, **common))
        elif slowdown > max_slowdown + TOL:
            reason = f"{slowdown:.1%} slower than the baseline ({figure}); allowed {max_slowdown:.0%}"
            rows.append(Row("latency", label, "*", figure, FAIL, reason, **common))
        else:
            reason = f"{slowdown:+.1%} vs the baseline ({figure}); allowed {max_slowdown:.0%}"
            rows.append(Row("latency", label, "*", figure, PASS, reason, **common))
    return rows


def _errored(ids: Sequence[str]) -> str:
    return f"{_count(len(ids), 'sample')} errored (counted as wrong), e.g. {ids[0]!r}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _hw(hw: Mapping[str, Any]) -> str:
    return f"{hw.get('device') or '?'} {hw.get('device_name') or '?'!r}"


def _floor_rows(
    by_key: Mapping[tuple[str, str], list[Record]], labels: Sequence[str], settings: GateSettings
) -> list[Row]:
    rows = []
    for key, floor in sorted(settings.min_scores.items()):
        hits = [
            (label, ds)
            for label in labels
            for lab, ds in sorted(by_key)
            if lab == label and (ds == key or _primary_metric(by_key[(lab, ds)]) == key)
        ]
        if not hits:
            present = sorted({ds for _, ds in by_key})
            rows.append(
                Row(
                    "floor",
                    "*",
                    key,
                    "*",
                    FAIL,
                    f"--min-score {key}={floor}: no dataset or metric named {key!r} in this run "
                    f"(datasets: {', '.join(present) or 'none'})",
                    limit=floor,
                )
            )
            continue
        for label, ds in hits:
            recs = by_key[(label, ds)]
            metric = _primary_metric(recs)
            scores = [s for s in (record_score(r, metric) for r in recs) if s is not None]
            errors = sorted(r.sample_id for r in recs if r.error is not None)
            common = {
                "limit": floor,
                "n": len(scores),
                "n_errors": len(errors),
                "error_ids": tuple(errors[:MAX_ERROR_IDS]),
            }
            if not scores:
                rows.append(
                    Row("floor", label, ds, metric, FAIL, f"no scored samples to hold to {floor}", **common)
                )
                continue
            mean = math.fsum(scores) / len(scores)
            verdict = FAIL if mean < floor else PASS
            relation = "below" if verdict == FAIL else "at or above"
            reason = f"mean {mean:.4f} is {relation} the floor {floor} (--min-score)"
            if errors:
                reason += f"; {_errored(errors)}"
            rows.append(Row("floor", label, ds, metric, verdict, reason, candidate=mean, **common))
    return rows
