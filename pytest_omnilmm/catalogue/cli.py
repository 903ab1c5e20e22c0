"""``python -m pytest_omnilmm list [--json]``: the benchmark catalogue, as a table or as JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from . import CATALOGUE

EVALS_DIR = Path(__file__).resolve().parents[2] / "evals"
_COLUMNS = ("name", "vlmeval", "task", "metric", "flavour", "file", "sample", "grouping")


def add_list_command(sub: Any) -> None:
    parser = sub.add_parser("list", help="the benchmarks the plugin knows, how each is scored and found")
    parser.add_argument("--json", action="store_true", help="one JSON list, for tools")


def run_list(args: argparse.Namespace) -> int:
    entries = [b.as_json(EVALS_DIR if EVALS_DIR.is_dir() else None) for b in CATALOGUE]
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    print(render_table(entries))
    return 0


def _cell(entry: dict[str, Any], column: str) -> str:
    if column == "sample":
        if entry["sample"] is None:
            return "-"
        return entry["sample_name"] + ("" if entry["sample_present"] is not False else " (missing)")
    return str(entry[column])


def render_table(entries: list[dict[str, Any]]) -> str:
    rows = [[_cell(e, c) for c in _COLUMNS] for e in entries]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    notes = [f"{e['name']}: {e['note']}" for e in entries if e["note"]]
    lines.append(
        f"{len(entries)} benchmarks. Files: --data NAME=PATH, or --lmudata DIR (LMUData) finds <vlmeval>.tsv."
    )
    return "\n".join(lines + notes)
