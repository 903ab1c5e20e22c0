"""From records to the run summary: metrics with CIs per (checkpoint, dataset), perf per checkpoint.

A sample that errored counts as wrong (score 0) in the mean: a crash must never make a checkpoint look
better. Samples without references (a test split) have no score and are left out of the mean.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import EvalConfig
from ..records import Record, record_score
from .bench import perf_stats


def _score(record: Record) -> float | None:
    """The score the summary averages: the gate's own reading (an errored sample is 0.0, NaN is none)."""
    return (
        0.0 if record.error is not None else (record_score(record, record.metric) if record.metric else None)
    )


def _agg_json(agg: Any) -> dict[str, Any]:
    return {
        "mean": _round(agg.mean),
        "ci_low": _round(agg.ci_low),
        "ci_high": _round(agg.ci_high),
        "n": agg.n,
        "n_groups": agg.n_groups,
    }


def _round(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def dataset_rows(records: Sequence[Record]) -> list[dict[str, Any]]:
    """One row per (checkpoint, dataset): counts, the primary metric with CI, every aggregate."""
    from ..metrics import ScoredRow, dataset_aggregates, primary_aggregate_key

    by_key: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        by_key[(r.checkpoint, r.dataset)].append(r)
    rows = []
    for (label, dataset), recs in sorted(by_key.items()):
        metric = next((r.metric for r in recs if r.metric), None)
        scored = [
            ScoredRow(
                sample_id=r.sample_id,
                value=_score(r),
                group=r.group,
                category=r.category,
                prediction=r.prediction,
                reference=r.references[0] if r.references else None,
                flavor=r.metric_flavor,
            )
            for r in recs
        ]
        aggregates = dataset_aggregates(metric, scored) if metric is not None else {}
        primary_key = primary_aggregate_key(metric) if metric is not None else None
        primary = aggregates.get(primary_key) if primary_key is not None else None
        row: dict[str, Any] = {
            "checkpoint": label,
            "dataset": dataset,
            "metric": metric,
            "primary": primary_key,
            "metric_flavor": recs[0].metric_flavor,
            "n": len(recs),
            "errors": sum(1 for r in recs if r.error is not None),
            "failed_checks": sum(1 for r in recs if r.check_failed is not None),
            "scored": sum(1 for s in scored if s.value is not None),
            "resumed": sum(1 for r in recs if r.resumed),
            "mean": _round(primary.mean) if primary is not None else None,
            "ci_low": _round(primary.ci_low) if primary is not None else None,
            "ci_high": _round(primary.ci_high) if primary is not None else None,
            "aggregates": {name: _agg_json(a) for name, a in aggregates.items()},
        }
        rows.append(row)
    return rows


def base_run_info(config: EvalConfig) -> dict[str, Any]:
    """What identifies the run, before any record: settings, flavour, model, versions, git."""

    return {
        "generation": {
            **config.generation_settings(),
            "batch_size": "auto" if config.auto_batch else config.batch_size,
        },
        "metric_flavor": config.metric_flavor,
        "model_path": config.model_path,
        "checkpoints": {
            c.label: {"path": str(c.path) if c.path else "", "fingerprint": ""} for c in config.checkpoints
        },
        "versions": environment_versions(),
        "git": git_state(config.rootdir or config.results_dir.parent),
    }


def build_summary(records: Sequence[Record], base_info: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Metrics + perf from records; ``base_info`` from ``base_run_info`` (or a shard's summary)."""
    by_label: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_label[r.checkpoint].append(r)
    perf = {label: perf_stats(recs).to_json() for label, recs in sorted(by_label.items())}
    checkpoints = {label: dict(info) for label, info in base_info.get("checkpoints", {}).items()}
    for label, recs in by_label.items():
        entry = checkpoints.setdefault(label, {"path": recs[0].checkpoint_path, "fingerprint": ""})
        entry["fingerprint"] = next(
            (r.fingerprint for r in recs if r.fingerprint), entry.get("fingerprint", "")
        )
        replaced = next((r.extra for r in recs if "replaced_tensors" in r.extra), None)
        if replaced is not None:
            entry["replaced_tensors"] = replaced["replaced_tensors"]
            entry["total_tensors"] = replaced.get("total_tensors")
    first_perf = next(iter(perf.values()), {})
    run_info = {
        **base_info,
        "checkpoints": checkpoints,
        "hardware": {
            "device": first_perf.get("device", ""),
            "device_name": first_perf.get("device_name", ""),
        },
        "perf": perf,
    }
    rows = dataset_rows(records)
    hashed = {
        (r.checkpoint, r.dataset)
        for r in records
        if r.metric == "mme" and (r.group or "").startswith("image-sha256:")
    }
    judges = _judge_models(records)
    for row in rows:
        models = judges.get((row["checkpoint"], row["dataset"]))
        if models:
            row["judge"] = models
            row.setdefault("notes", []).append(
                f"judge-scored by {', '.join(models)} (VLMEvalKit's judge prompts): compare only with runs "
                "graded by the same judge"
            )
        if (row["checkpoint"], row["dataset"]) in hashed:
            row["notes"] = [
                "MME pairs matched by image content: the file has no image_path column, so questions are "
                "paired by the resolved image instead of VLMEvalKit's (category, image_path)"
            ]
        p = perf.get(row["checkpoint"], {})
        row["p50_latency_s"] = p.get("p50_latency_s")
        row["samples_per_s"] = p.get("samples_per_s")
    return {
        "run_id": run_id,
        "results": rows,
        "run_info": run_info,
        "totals": {
            "samples": len(records),
            "errors": sum(1 for r in records if r.error is not None),
            "resumed": sum(1 for r in records if r.resumed),
        },
    }


def _judge_models(records: Sequence[Record]) -> dict[tuple[str, str], list[str]]:
    """(checkpoint, dataset) -> the judge models that graded its samples, read from the records' notes."""
    from ..metrics.judge import judge_model_of
    from ..metrics.registry import judge_graded

    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in records:
        if judge_graded(r.metric):
            for note in r.extra.get("notes") or ():
                model = judge_model_of(str(note))
                if model is not None:
                    found[(r.checkpoint, r.dataset)].add(model)
    return {key: sorted(models) for key, models in found.items()}


def environment_versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "pytest", "pytest-omnilmm"):
        try:
            out[pkg.replace("-", "_")] = version(pkg)
        except PackageNotFoundError:
            out[pkg.replace("-", "_")] = "not installed"
    return out


def git_state(cwd: Path) -> dict[str, Any]:
    import subprocess

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
