"""Combine the results of shards (``--shard i/N`` runs, possibly on other machines) into one run:
one summary, one report, one gate verdict — identical to an unsharded run of the same items."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..results.runs import MergeError, find_run_dir, load_runs
from .core import Conclusion, GateOptions, conclude, new_run_id

__all__ = ["MergeError", "find_run_dir", "load_runs", "merge_runs"]


def merge_runs(dirs: Sequence[Path], out_dir: Path | None, options: GateOptions) -> Conclusion:
    run_dirs = [find_run_dir(Path(d)) for d in dirs]
    merged, base_info = load_runs(run_dirs)
    run_id = new_run_id() + "-merged"
    target = out_dir if out_dir is not None else run_dirs[0].parent / run_id
    return conclude(merged, base_info, run_id, target, options)
