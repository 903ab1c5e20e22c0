"""VLMEvalKit TSV files (MMBench, MME, SEEDBench, OCRBench, ... as VLMEvalKit distributes them).

Columns are read by name. ``image`` holds a base64 image, a list of them written as a Python/JSON list, or
a short string (at most 64 characters, VLMEvalKit's rule) naming another row's ``index`` whose image this
row shares. ``image_path`` (relative to the TSV's directory or ``image_root``) is used when a row has no
``image``. A row with neither is skipped, as VLMEvalKit skips it, with a ``DatasetWarning``.

Nothing is decoded here: base64 payloads are handed to ``ImageRef`` as they are (a shared image is the
same string object, not a copy), and a payload that is not valid base64 fails its own sample when the
image is loaded. Checking the alphabet here would cost ~0.1 s per 100 MB and still leave that sample to
fail, so it is not done.
"""

from __future__ import annotations

import csv
import hashlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pytest_omnilmm.datasets._common import (
    NA_TOKENS,
    FieldProblem,
    broken_sample,
    image_file,
    sample_id,
    utf8_error,
)
from pytest_omnilmm.datasets._tabular import (
    choices,
    circular_group,
    option_columns,
    optional_cell,
    references,
)
from pytest_omnilmm.datasets.errors import DatasetError, DatasetWarning
from pytest_omnilmm.literals import parse_list_literal
from pytest_omnilmm.sample import ImageRef, Sample, Text

# VLMEvalKit treats an ``image`` value this short as the index of the row that holds the image.
MAX_REFERENCE_LEN = 64
# Base64 images run to megabytes; csv's default limit is 131,072 characters per field.
_FIELD_SIZE_LIMIT = 2**31 - 1
_CONSUMED = frozenset({"index", "image", "question", "hint", "answer", "category", "split"})


@dataclass(frozen=True)
class _Row:
    number: int  # data row, counted from 1 after the header
    line: int  # the file line the row starts on
    index: str
    cells: dict[str, str]

    @property
    def where(self) -> str:
        return f"row {self.number} (line {self.line}, index {self.index!r})"


def read_vlmeval_tsv(
    path: Path, *, name: str, image_root: Path | None = None, limit_rows: int | None = None
) -> Iterator[Sample]:
    if csv.field_size_limit() < _FIELD_SIZE_LIMIT:
        csv.field_size_limit(_FIELD_SIZE_LIMIT)
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            header, rows, images = _read(path, f, limit_rows)
    except UnicodeDecodeError:
        raise utf8_error(path) from None
    base = image_root if image_root is not None else path.parent
    letters = option_columns(header)
    skipped: list[_Row] = []
    seen_ids: set[str] = set()
    for row in rows:
        try:
            sample = _sample(path, row, images, letters, name=name, base=base)
        except FieldProblem as problem:
            # One bad row fails alone: it becomes a sample whose item fails with this line.
            column = f" column {problem.field!r}:" if problem.field else ""
            sid = row.index if row.index and row.index not in seen_ids else f"row{row.number}"
            sample = broken_sample(name, sid, f"{path} {row.where}:{column} {problem.message}")
        if sample is not None:
            seen_ids.add(sample.id)
        if sample is None:
            skipped.append(row)
        else:
            yield sample
    if skipped:
        warnings.warn(
            DatasetWarning(
                f"{path}: {len(skipped)} row(s) have neither 'image' nor 'image_path' and were skipped, as "
                f"VLMEvalKit skips them (first: {skipped[0].where})"
            ),
            stacklevel=2,
        )


def _read(path: Path, f: TextIO, limit_rows: int | None) -> tuple[list[str], list[_Row], dict[str, str]]:
    """The rows to turn into samples, and every row's raw ``image`` cell by index (references need it)."""
    records = _records(path, f)
    header = _header(path, records)
    has_image = "image" in header
    rows: list[_Row] = []
    images: dict[str, str] = {}
    first_row: dict[str, int] = {}
    for line, cells in records:
        if not cells:  # a blank line, which pandas skips too
            continue
        if limit_rows is not None and len(rows) >= limit_rows:
            # Rows past the limit matter only as targets of the image references kept so far.
            _collect_targets(header, cells, records, rows, images)
            break
        row = _row(path, header, cells, len(rows) + 1, line)
        if row.index in first_row:
            raise DatasetError(
                path,
                f"duplicate index {row.index!r} (also row {first_row[row.index]}); each index must be unique",
                row=row.number,
                field="index",
                location=row.where,
            )
        first_row[row.index] = row.number
        if has_image:
            images[row.index] = row.cells["image"]
        rows.append(row)
    return header, rows, images


def _header(path: Path, records: Iterator[tuple[int, list[str]]]) -> list[str]:
    header = next(records, (1, []))[1]
    if not header:
        raise DatasetError(path, "empty file; a VLMEvalKit TSV starts with a header line naming its columns")
    duplicates = sorted({c for c in header if c and header.count(c) > 1})
    if duplicates:
        raise DatasetError(
            path, f"the header names column(s) {duplicates} more than once; rename them", location="line 1"
        )
    missing = [c for c in ("index", "question") if c not in header]
    if "image" not in header and "image_path" not in header:
        missing.append("image (or image_path)")
    if missing:
        found = ", ".join(repr(c) for c in header[:20]) + (", ..." if len(header) > 20 else "")
        raise DatasetError(
            path,
            f"missing required column(s) {', '.join(missing)}; found columns {found}. A VLMEvalKit TSV needs "
            "index, question and image or image_path (is this file tab-separated, and the right format?)",
            field=", ".join(missing),
            location="line 1",
        )
    return header


class _Lines:
    """The file's lines, counted, with room to hand one line back (to csv)."""

    def __init__(self, f: TextIO) -> None:
        self._f = f
        self._back: str | None = None
        self.line_num = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._back is not None:
            line, self._back = self._back, None
        else:
            line = next(self._f)
        self.line_num += 1
        return line

    def push_back(self, line: str) -> None:
        self._back = line
        self.line_num -= 1


def _records(path: Path, f: TextIO) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) for each record of the file.

    A line without a double quote cannot hold a quoted field, so splitting it on tabs gives exactly what csv
    gives, about three times faster on base64-heavy files; a line with a quote goes to csv, which reads on
    as far as a quoted field spans. The file is opened with newline="", so a line holds one terminator.
    """
    lines = _Lines(f)
    parser = csv.reader(lines, delimiter="\t")
    for line in lines:
        start = lines.line_num
        if '"' not in line:
            content = line.rstrip("\r\n")
            yield start, content.split("\t") if content else []
            continue
        lines.push_back(line)
        try:
            cells = next(parser)
        except csv.Error as exc:
            raise DatasetError(
                path,
                f"cannot be read as tab-separated values: {exc}",
                row=lines.line_num,
                location=f"line {lines.line_num}",
            ) from None
        yield start, cells


def _row(path: Path, header: list[str], cells: list[str], number: int, line: int) -> _Row:
    if len(cells) > len(header):
        raise DatasetError(
            path,
            f"has {len(cells)} fields but the header has {len(header)} columns; a tab inside a value must be "
            "quoted",
            row=number,
            location=f"row {number} (line {line})",
        )
    values = dict(zip(header, cells, strict=False))
    for column in header[len(cells) :]:  # a short row: pandas fills the missing cells with NaN
        values[column] = ""
    try:
        index = sample_id(values["index"].strip(), "index")
    except FieldProblem as problem:
        raise DatasetError(
            path, problem.message, row=number, field="index", location=f"row {number} (line {line})"
        ) from None
    return _Row(number, line, index, values)


def _collect_targets(
    header: list[str],
    first: list[str],
    records: Iterator[tuple[int, list[str]]],
    rows: list[_Row],
    images: dict[str, str],
) -> None:
    """Keep reading only as far as needed to find the rows that kept rows refer to for their image."""
    if "image" not in header:
        return
    wanted = {
        cell
        for cell in (row.cells["image"] for row in rows)
        if cell
        and cell not in NA_TOKENS
        and len(cell) <= MAX_REFERENCE_LEN
        and cell not in images
        and not cell.startswith("[")
    }
    index_at, image_at = header.index("index"), header.index("image")
    cells: list[str] | None = first
    while wanted and cells is not None:
        if len(cells) > max(index_at, image_at):
            index = cells[index_at].strip()
            if index in wanted:
                images[index] = cells[image_at]
                wanted.discard(index)
        cells = next(records, (0, None))[1]


def _sample(
    path: Path,
    row: _Row,
    images: dict[str, str],
    letters: list[str],
    *,
    name: str,
    base: Path,
) -> Sample | None:
    cells = row.cells
    origin = f"{path} {row.where}"
    parts, _shared = _images(row, images, base, origin)
    if parts is None:
        return None
    question = cells["question"]
    hint = cells.get("hint")
    metadata: dict[str, str | None] = {
        k: v for k, v in cells.items() if k and k not in _CONSUMED and k not in letters
    }
    metadata["question"] = question
    metadata["hint"] = None if hint is None or hint in NA_TOKENS else hint
    options = choices(cells, letters)
    return Sample(
        id=row.index,
        dataset=name,
        parts=(*parts, Text(question)),
        references=references(cells.get("answer"), "answer"),
        choices=options,
        category=optional_cell(cells.get("category")),
        split=optional_cell(cells.get("split")),
        group=sample_group(row.index, cells, parts, multiple_choice=bool(options)),
        metadata=metadata,
    )


def sample_group(
    index: str, cells: dict[str, str], parts: tuple[ImageRef, ...], *, multiple_choice: bool
) -> str:
    """The questions that are scored together, as VLMEvalKit groups them.

    * Multiple choice: the rotated copies of one question, ``index % 1_000_000`` (VLMEvalKit's circular
      evaluation writes copy k of question i as ``i + k * 10**6``). Never by image: two questions on one
      image are two groups.
    * Everything else (MME's question pairs, and the image clusters of VQA files): the image, named as
      ``MME_rating`` names it, by the ``image_path`` column (paired with ``category`` by the aggregate);
      a file without ``image_path`` falls back to the content hash of the resolved image (a back-reference
      resolves to the row it points at, so both rows hash alike).
    """
    if multiple_choice:
        return circular_group(index) or index
    image_path = optional_cell(cells.get("image_path"))
    if image_path is not None and image_path not in NA_TOKENS:
        return f"image_path:{image_path}"
    if parts:
        digest = hashlib.sha256()
        for part in parts:
            digest.update((part.b64 or str(part.path)).encode("utf-8", "surrogatepass"))
            digest.update(b"\0")
        return f"image-sha256:{digest.hexdigest()[:16]}"
    return index


def _images(
    row: _Row, images: dict[str, str], base: Path, origin: str
) -> tuple[tuple[ImageRef, ...] | None, str | None]:
    """The row's images, and the index of the row it borrows them from (if it does)."""
    raw = row.cells.get("image", "")
    if raw and raw not in NA_TOKENS:
        shared_with = None
        payload = raw
        if not raw.startswith("[") and len(raw) <= MAX_REFERENCE_LEN:
            shared_with = raw
            payload = _reference_target(raw, row, images)
            origin = f"{origin} (the image of index {raw!r})"
        strings = _string_list(payload, "image")
        refs = tuple(
            ImageRef(b64=s, origin=f"{origin}, column 'image'" + (f"[{i}]" if len(strings) > 1 else ""))
            for i, s in enumerate(strings)
        )
        return refs, shared_with
    raw_path = row.cells.get("image_path", "")
    if raw_path and raw_path not in NA_TOKENS:
        names = _string_list(raw_path, "image_path")
        return tuple(
            ImageRef(path=image_file(base, rel, "image_path"), origin=f"{origin}, column 'image_path'")
            for rel in names
        ), None
    return None, None


def _reference_target(raw: str, row: _Row, images: dict[str, str]) -> str:
    target = images.get(raw)
    if target is None:
        raise FieldProblem(
            "image",
            f"{raw!r} is too short to be a base64 image, so it must be the index of the row whose image this "
            "row shares, but no row has that index; put the image (or an existing index) there",
        )
    if len(target) <= MAX_REFERENCE_LEN and not target.startswith("["):
        raise FieldProblem(
            "image",
            f"refers to the image of index {raw!r}, but that row holds no image itself "
            f"({'it is empty' if not target else 'it refers on to ' + repr(target)}); point at the row "
            "that holds the base64 image",
        )
    return target


def _string_list(value: str, column: str) -> list[str]:
    """One string, or a list of strings written as a Python/JSON list."""
    if not value.startswith("["):
        return [value]
    parsed = parse_list_literal(value)
    if parsed is None:
        raise FieldProblem(column, "starts with '[' but is not a valid list of strings")
    if not parsed or not all(isinstance(v, str) and v for v in parsed):
        raise FieldProblem(column, "must be a non-empty list of non-empty strings")
    return parsed
