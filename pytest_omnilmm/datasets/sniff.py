"""Tell a dataset file's format from its name, else from its first bytes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pytest_omnilmm.datasets._common import check_readable_file
from pytest_omnilmm.datasets.errors import DatasetError

FORMATS = ("jsonl", "vlmeval_tsv", "textvqa", "docvqa", "parquet")

_BY_SUFFIX = {".jsonl": "jsonl", ".tsv": "vlmeval_tsv", ".parquet": "parquet", ".pq": "parquet"}
_DOCVQA_NAME = re.compile(r"(train|val|test)_v1\.0")
_HEAD_BYTES = 1 << 16


def sniff_format(path: Path) -> str:
    """One of ``FORMATS``; a ``DatasetError`` that lists them when neither name nor content tells."""
    path = Path(path)
    check_readable_file(path)
    suffix = path.suffix.lower()
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    lowered = path.name.lower()
    if suffix == ".json":
        if "textvqa" in lowered:
            return "textvqa"
        if "docvqa" in lowered or _DOCVQA_NAME.match(lowered):
            return "docvqa"
    with path.open("rb") as f:
        head = f.read(_HEAD_BYTES)
    found = _by_content(head)
    if found is None:
        raise DatasetError(
            path,
            "cannot tell the dataset format from the file name or its first bytes; pass --data-format "
            f"with one of: {', '.join(FORMATS)}",
        )
    return found


def _by_content(head: bytes) -> str | None:
    if head.startswith(b"PAR1"):
        return "parquet"
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    first_line = text.split("\n", 1)[0]
    if text.startswith("{"):
        try:
            obj = json.loads(first_line)
        except (ValueError, RecursionError):
            # A pretty-printed or long annotation file: its first line is not a whole object.
            return _annotation_by_keys(text)
        if isinstance(obj, dict) and isinstance(obj.get("data"), list):
            return _annotation_kind(obj["data"][0] if obj["data"] else {}) or _annotation_by_keys(text)
        return "jsonl" if isinstance(obj, dict) else None
    columns = first_line.rstrip("\r").split("\t")
    if "index" in columns and "question" in columns:
        return "vlmeval_tsv"
    return None


def _annotation_kind(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    if "questionId" in item:
        return "docvqa"
    if "question_id" in item and "image_id" in item:
        return "textvqa"
    return None


def _annotation_by_keys(text: str) -> str | None:
    if '"data"' not in text:
        return None
    if '"questionId"' in text:
        return "docvqa"
    if '"question_id"' in text and '"image_id"' in text:
        return "textvqa"
    return None
