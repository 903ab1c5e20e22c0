"""``python -m pytest_omnilmm merge DIR...``: combine shard results into one summary, report and gate;
``python -m pytest_omnilmm gate --baseline FILE RESULTS_DIR...``: gate finished results, nothing rerun;
``python -m pytest_omnilmm list [--json]``: the benchmark catalogue."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _gate_arguments(parser: argparse.ArgumentParser, *, baseline_required: bool) -> None:
    from .config import GATE_INCONCLUSIVE, GATE_MODES, setting_default

    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        required=baseline_required,
        metavar="FILE",
        help="a baseline JSON file (--save-baseline) or the results folder of the run to compare with",
    )
    max_drop = setting_default("max_drop")
    parser.add_argument(
        "--max-drop", default=max_drop, metavar="DROP", help=f"allowed absolute drop (default {max_drop})"
    )
    parser.add_argument(
        "--max-drop-for", action="append", default=[], metavar="NAME=DROP", help="per dataset or metric"
    )
    parser.add_argument(
        "--gate", choices=GATE_MODES, default=setting_default("gate"), help="default %(default)s"
    )
    parser.add_argument(
        "--gate-inconclusive",
        choices=GATE_INCONCLUSIVE,
        default=setting_default("gate_inconclusive"),
        help="what a dataset the run cannot judge does to the exit status (default %(default)s)",
    )
    parser.add_argument(
        "--gate-allow-partial",
        action="store_true",
        help="gate on the baseline samples present instead of failing when some are missing",
    )
    parser.add_argument("--min-score", action="append", default=[], metavar="NAME=SCORE", help="floor")
    parser.add_argument(
        "--max-slowdown", default=None, metavar="PCT", help="e.g. 10%% (only on the baseline's hardware)"
    )


def _options(args: argparse.Namespace, save_baseline: Path | None) -> Any:
    from .config import ConfigError, parse_fraction, parse_name_values, parse_percent_setting
    from .controller.core import GateOptions
    from .gate import GateSettings

    if args.baseline is not None and not args.baseline.exists():
        raise ConfigError(f"--baseline {args.baseline}: no such file or folder")
    return GateOptions(
        baseline=args.baseline,
        save_baseline=save_baseline,
        settings=GateSettings(
            max_drop=parse_fraction("--max-drop", args.max_drop),
            per_metric_max_drop=parse_name_values("--max-drop-for", args.max_drop_for, "textvqa=0.02"),
            mode=args.gate,  # GateSettings resolves the alias "strict"
            min_scores=parse_name_values("--min-score", args.min_score, "textvqa=0.6"),
            max_slowdown=None
            if args.max_slowdown is None
            else parse_percent_setting("--max-slowdown", args.max_slowdown),
            inconclusive=args.gate_inconclusive,
            allow_partial=args.gate_allow_partial,
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_omnilmm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    merge = sub.add_parser("merge", help="combine the run directories of --shard i/N runs")
    merge.add_argument("dirs", nargs="+", type=Path, help="each shard's run directory (or its --results-dir)")
    merge.add_argument(
        "--out", type=Path, default=None, help="where to write the merged run (default: beside)"
    )
    merge.add_argument("--save-baseline", type=Path, default=None, help="write the merged run as a baseline")
    _gate_arguments(merge, baseline_required=False)
    gate = sub.add_parser(
        "gate",
        help="gate finished results against a baseline (exit 1 when worse, 0 when not)",
        description="Gate one run (or its shards) against a baseline without rerunning anything; the same "
        "verdicts as the plugin's --baseline.",
    )
    gate.add_argument("dirs", nargs="+", type=Path, metavar="RESULTS_DIR", help="run folder(s); shards merge")
    gate.add_argument("--json", action="store_true", help="print the gate report as JSON instead of a table")
    _gate_arguments(gate, baseline_required=True)
    from .catalogue.cli import add_list_command, run_list

    add_list_command(sub)
    args = parser.parse_args(argv)
    if args.command == "list":
        return run_list(args)
    if args.command == "gate":
        return _run_gate(args)

    from .config import ConfigError
    from .controller.merge import MergeError, merge_runs

    try:
        conclusion = merge_runs(args.dirs, args.out, _options(args, args.save_baseline))
    except (ConfigError, MergeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    for line in [*conclusion.lines, *conclusion.saved]:
        print(line)
    return 1 if conclusion.failed else 0


def _run_gate(args: argparse.Namespace) -> int:
    from .config import ConfigError
    from .gate import GateInputError, gate_results, render_gate_table

    try:
        report = gate_results(args.baseline, list(args.dirs), settings=_options(args, None).settings)
    except (ConfigError, GateInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True, default=str))
    else:
        print("\n".join(render_gate_table(report)))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
