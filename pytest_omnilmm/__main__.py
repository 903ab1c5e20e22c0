"""``python -m pytest_omnilmm merge DIR...``: combine shard results into one summary, report and gate;
``python -m pytest_omnilmm list [--json]``: the benchmark catalogue."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    from .config import GATE_MODES, setting_default

    parser = argparse.ArgumentParser(prog="python -m pytest_omnilmm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    merge = sub.add_parser("merge", help="combine the run directories of --shard i/N runs")
    merge.add_argument("dirs", nargs="+", type=Path, help="each shard's run directory (or its --results-dir)")
    merge.add_argument(
        "--out", type=Path, default=None, help="where to write the merged run (default: beside)"
    )
    merge.add_argument(
        "--baseline", type=Path, default=None, help="gate the merged run against this baseline"
    )
    merge.add_argument("--save-baseline", type=Path, default=None, help="write the merged run as a baseline")
    max_drop = setting_default("max_drop")
    merge.add_argument("--max-drop", default=max_drop, help=f"allowed absolute drop (default {max_drop})")
    merge.add_argument("--max-drop-for", action="append", default=[], help="NAME=DROP per dataset or metric")
    merge.add_argument("--gate", choices=GATE_MODES, default=setting_default("gate"))
    merge.add_argument("--min-score", action="append", default=[], help="DATASET=SCORE floor")
    merge.add_argument("--max-slowdown", default=None, help="e.g. 10%% (only on the baseline's hardware)")
    from .catalogue.cli import add_list_command, run_list

    add_list_command(sub)
    args = parser.parse_args(argv)
    if args.command == "list":
        return run_list(args)

    from .config import ConfigError, _fraction, _name_values, _percent
    from .controller import GateOptions
    from .merge import MergeError, merge_runs

    try:
        if args.baseline is not None and not args.baseline.is_file():
            raise ConfigError(f"--baseline {args.baseline}: no such file")
        options = GateOptions(
            baseline=args.baseline,
            save_baseline=args.save_baseline,
            max_drop=_fraction("--max-drop", args.max_drop),
            max_drop_per=_name_values("--max-drop-for", args.max_drop_for, "textvqa=0.02"),
            mode=args.gate,
            min_score=_name_values("--min-score", args.min_score, "textvqa=0.6"),
            max_slowdown=None if args.max_slowdown is None else _percent("--max-slowdown", args.max_slowdown),
        )
        conclusion = merge_runs(args.dirs, args.out, options)
    except (ConfigError, MergeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    for line in [*conclusion.lines, *conclusion.saved]:
        print(line)
    return 1 if conclusion.failed else 0


if __name__ == "__main__":
    sys.exit(main())
