"""Reading finished runs back: a run directory (or the newest inside a --results-dir), and the shards of
one evaluation checked to fit together. Used by ``merge`` and by the gate's API; it imports no gate."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..records import Record, read_records

IDENTITY_KEYS = ("generation", "metric_flavor", "model_path")


class MergeError(Exception):
    """The shard directories cannot be combined; one line saying why."""


def find_run_dir(path: Path) -> Path:
    """A run directory itself, or the newest run inside a ``--results-dir``."""
    if (path / "summary.json").is_file():
        return path
    if not path.is_dir():
        raise MergeError(f"{path}: no such directory; pass each shard's run directory (or its --results-dir)")
    runs = sorted(p for p in path.iterdir() if (p / "summary.json").is_file())
    if not runs:
        raise MergeError(f"{path}: holds no run (no summary.json); did the shard finish?")
    return runs[-1]


def _load_summary(run_dir: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((run_dir / "summary.json").read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise MergeError(f"{run_dir / 'summary.json'}: unreadable ({exc}); rerun that shard") from None


def load_runs(dirs: Sequence[Path]) -> tuple[list[Record], dict[str, Any]]:
    """The records and run info of one evaluation split over run directories (shards), checked to fit."""
    run_dirs = [find_run_dir(Path(d)) for d in dirs]
    if not run_dirs:
        raise MergeError("merge needs at least one shard directory")
    summaries = [_load_summary(d) for d in run_dirs]
    first = summaries[0]["run_info"]
    for run_dir, summary in zip(run_dirs[1:], summaries[1:], strict=True):
        info = summary["run_info"]
        for key in IDENTITY_KEYS:
            if info.get(key) != first.get(key):
                raise MergeError(
                    f"{run_dir}: {key} differs from {run_dirs[0]} ({info.get(key)!r} vs {first.get(key)!r}); "
                    "shards of one evaluation must use the same settings"
                )
        for label, entry in info.get("checkpoints", {}).items():
            theirs = first.get("checkpoints", {}).get(label, {}).get("fingerprint")
            if entry.get("fingerprint") and theirs and entry["fingerprint"] != theirs:
                raise MergeError(
                    f"{run_dir}: checkpoint {label} has other weights than in {run_dirs[0]} "
                    f"({entry.get('path')}); shards of one evaluation must use the same checkpoints"
                )
    records: dict[tuple[str, str, str], Record] = {}
    for run_dir in run_dirs:
        for record in read_records(run_dir / "records.jsonl"):
            key = (record.checkpoint, record.dataset, record.sample_id)
            previous = records.get(key)
            if previous is not None and previous.key != record.key:
                raise MergeError(
                    f"{run_dir}: sample {record.sample_id} of {record.dataset} ({record.checkpoint}) "
                    "also appears "
                    "in another shard with a different model or content; merge shards of one run only"
                )
            if previous is not None and _outcome(previous) != _outcome(record):
                raise MergeError(
                    f"{run_dir}: sample {record.sample_id} of {record.dataset} ({record.checkpoint}) appears "
                    "twice with different results (overlapping shards?); merge each sample's shard once"
                )
            records[key] = record
    merged = sorted(records.values(), key=lambda r: (r.checkpoint, r.dataset, r.sample_id))
    base_info = {k: v for k, v in first.items() if k not in ("perf", "hardware")}
    for summary in summaries[1:]:
        for label, info in summary["run_info"].get("checkpoints", {}).items():
            base_info.setdefault("checkpoints", {}).setdefault(label, info)
    partial = [str(d) for d, s in zip(run_dirs, summaries, strict=True) if s["run_info"].get("partial")]
    if partial:
        base_info["partial"] = True
        base_info["partial_reason"] = f"shard(s) {', '.join(partial)} did not finish"
    return merged, base_info


def _outcome(record: Record) -> tuple[object, ...]:
    return (record.prediction, sorted(record.scores.items(), key=str), record.error)
