"""The rows that need no pairing: changed generation settings, version notes, latency against the
baseline (``--max-slowdown``, only on the baseline's hardware) and absolute floors (``--min-score``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..records import clean_score, record_score
from .baseline import Baseline
from .decide import FAIL, NOT_GATED, PASS, TOL
from .rows import MAX_ERROR_IDS, REGEN, Row, errored, primary_metric
from .settings import GateSettings

if TYPE_CHECKING:
    from pytest_omnilmm.records import Record

GATED_SETTINGS = ("generate_method", "max_new_tokens", "num_beams", "dtype")


def setting_rows(baseline: Baseline, run_info: Mapping[str, Any]) -> list[Row]:
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


def version_notes(baseline: Baseline, run_info: Mapping[str, Any]) -> list[str]:
    versions = run_info.get("versions") or {}
    notes = []
    for name in sorted(set(baseline.versions) | set(versions)):
        before, now = baseline.versions.get(name), versions.get(name)
        if before != now:
            notes.append(f"{name}: baseline {before}, this run {now}")
    return notes


def latency_rows(
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


def _hw(hw: Mapping[str, Any]) -> str:
    return f"{hw.get('device') or '?'} {hw.get('device_name') or '?'!r}"


def floor_rows(
    by_key: Mapping[tuple[str, str], list[Record]], labels: Sequence[str], settings: GateSettings
) -> list[Row]:
    rows = []
    for key, floor in sorted(settings.min_scores.items()):
        hits = [
            (label, ds)
            for label in labels
            for lab, ds in sorted(by_key)
            if lab == label and (ds == key or primary_metric(by_key[(lab, ds)]) == key)
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
            metric = primary_metric(recs)
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
                reason += f"; {errored(errors)}"
            rows.append(Row("floor", label, ds, metric, verdict, reason, candidate=mean, **common))
    return rows
