"""A run against a baseline: coverage, matched pairs, verdicts, floors and latency — as table rows.

This module walks the run and decides (Holm over the run's paired rows); ``paired`` compares one
dataset, ``checks`` adds settings, latency and floor rows, ``rows`` holds the results.

Fails closed: a baseline sample the run does not have (an interrupted, ``--limit``-ed, ``-k``-filtered
or partially merged run), changed sample content, duplicated ids, another metric or flavour, a
changed generation setting, a dataset missing from the run — each fails its row with the reason.
``--gate-allow-partial`` gates on the samples both runs have instead, and the row says so. An errored
sample counts as wrong, never as missing. Rows are computed from records sorted by id, so merged
shards give the same verdicts as one run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .baseline import Baseline
from .checks import floor_rows, latency_rows, setting_rows, version_notes
from .decide import FAIL, NOT_GATED, Decision, decide_all
from .paired import Pending, pending_row
from .rows import REGEN, GateReport, Row, natural_key, primary_metric
from .settings import GateSettings

if TYPE_CHECKING:
    from pytest_omnilmm.records import Record


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
    rows: list[Row | Pending] = []
    notes: list[str] = []

    if baseline is not None:
        rows.extend(setting_rows(baseline, run_info))
        notes.extend(version_notes(baseline, run_info))
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
                            primary_metric(by_key[(label, ds)]),
                            NOT_GATED,
                            f"dataset {ds!r} is not in the baseline {baseline.source}: reported, not gated; "
                            "add it with --save-baseline",
                        )
                    )
                else:
                    rows.append(pending_row(label, baseline.datasets[ds], by_key[(label, ds)], settings))
            if settings.max_slowdown is not None:
                rows.extend(latency_rows(label, baseline, run_info, settings.max_slowdown))

    decided = _decide(rows, settings)
    decided.extend(floor_rows(by_key, labels, settings))
    return GateReport(
        rows=tuple(decided),
        mode=settings.mode,
        level=settings.level,
        baseline_source=None if baseline is None else baseline.source,
        notes=tuple(notes),
        inconclusive_fails=settings.inconclusive_fails,
    )


def _decide(rows: Sequence[Row | Pending], settings: GateSettings) -> list[Row]:
    pending = [r for r in rows if isinstance(r, Pending) and r.stats is not None]
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


def _with_decision(p: Pending, d: Decision) -> Row:
    verdict = p.row.verdict if p.row.verdict == FAIL else d.verdict  # a problem found earlier stays a fail
    reason = "; ".join([*([p.row.reason] if p.row.reason else []), d.reason, *p.remarks])
    return replace(
        p.row, verdict=verdict, reason=reason, p_adjusted=d.p_adjusted, mdd=d.mdd, n_needed=d.n_needed
    )
