"""The per-sample predictions table: one CSV (and XLSX when openpyxl is installed) per checkpoint and dataset.

It is the file people open to read what the model answered, next to the machine-readable ``records.jsonl``.
Files live under ``predictions/<checkpoint label>/<dataset>.csv`` so the checkpoints of a sweep never
overwrite each other; the ``checkpoint_path`` column says which weights the label stood for.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from ..records import Record

COLUMNS = (
    "id",
    "dataset",
    "question",
    "answers",
    "prediction",
    "score",
    "error",
    "batch_latency_s",
    "batch_size",
    "checkpoint",
    "checkpoint_path",
)


def prediction_row(record: Record) -> list[object]:
    """One table row. ``answers`` is a JSON list; ``score`` is the primary metric's value (empty if none)."""
    score = record.scores.get(record.metric) if record.metric else None
    return [
        record.sample_id,
        record.dataset,
        record.extra.get("question", ""),
        json.dumps(record.references, ensure_ascii=False),
        record.prediction if record.prediction is not None else "",
        "" if score is None else score,
        record.error or "",
        round(record.latency_s, 6),
        record.batch_size,
        record.checkpoint,
        record.checkpoint_path,
    ]


def write_predictions(run_dir: Path, records: Sequence[Record]) -> list[Path]:
    """Write the tables; returns the paths written. XLSX only when ``openpyxl`` imports."""
    groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for record in records:
        groups[(record.checkpoint, record.dataset)].append(record)
    try:
        import openpyxl
    except ImportError:
        openpyxl = None
    written: list[Path] = []
    for (label, dataset), rows in sorted(groups.items()):
        folder = run_dir / "predictions" / label
        folder.mkdir(parents=True, exist_ok=True)
        table = [prediction_row(r) for r in sorted(rows, key=lambda r: r.sample_id)]
        path = folder / f"{dataset}.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            writer.writerows(table)
        written.append(path)
        if openpyxl is not None:
            written.append(_write_xlsx(openpyxl, folder / f"{dataset}.xlsx", table))
    return written


def _write_xlsx(openpyxl: object, path: Path, table: list[list[object]]) -> Path:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    book = openpyxl.Workbook()  # type: ignore[attr-defined]
    sheet = book.active
    sheet.append(list(COLUMNS))
    for row in table:
        # XLSX cannot hold most control characters (a random-weight model writes them): shown as U+FFFD;
        # the CSV and records.jsonl keep the exact text.
        sheet.append([ILLEGAL_CHARACTERS_RE.sub("\ufffd", v) if isinstance(v, str) else v for v in row])
    for cells in sheet.iter_rows(min_row=2):
        for cell in cells:
            # A prediction such as "=1+1" is text the model wrote, never a formula to evaluate.
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"
    book.save(path)
    return path
