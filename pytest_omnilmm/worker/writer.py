"""The worker's record file: one JSONL line per record, flushed and fsynced (the run's crash-safe resume
cache; ``records.read_records`` reads it back)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TextIO

from ..records import Record


class RecordWriter:
    """Appends records to a JSONL file, one line each, flushed and fsynced as they complete.

    Finished work survives a kill: at most the line being written is torn, and ``read_records``
    skips a torn last line.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: TextIO | None = None

    def write(self, record: Record) -> None:
        if self._fh is None:
            self._fh = self.path.open("a", encoding="utf-8")
        self._fh.write(json.dumps(record.to_json(), ensure_ascii=False, sort_keys=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
