"""Helpers the readers share: checked file access, UTF-8 and JSON decoding, ids, answers, image paths.

Helpers that judge one value raise ``FieldProblem``; the reader that called them knows the row and turns
it into a ``DatasetError`` that names file, row and field.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_omnilmm.sample import Sample

from pytest_omnilmm.datasets.errors import DatasetError

# The strings pandas.read_csv reads as NaN by default. VLMEvalKit reads its TSVs with pandas and drops NaN
# hints and options, so an option cell holding "N/A" is no option there; we drop the same cells.
NA_TOKENS = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)

_BAD_ID_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")


class FieldProblem(Exception):
    """One value is wrong; the caller adds file and row."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_readable_file(path: Path) -> None:
    """Fail with a clear line for a path that is missing, a directory or unreadable."""
    if not path.exists():
        raise DatasetError(path, "no such file; check the dataset path option (or the dataset root)")
    if path.is_dir():
        raise DatasetError(
            path, "is a directory; give the dataset file itself (.jsonl, .tsv, .json, .parquet)"
        )
    if not os.access(path, os.R_OK):
        raise DatasetError(path, "is not readable (permission denied); fix its permissions")


def utf8_error(path: Path) -> DatasetError:
    """Find the first byte sequence that is not UTF-8 and say where it is.

    Only called once decoding has failed, so the rescan costs nothing on good files. Splitting on b"\\n" is
    safe: no byte of a multi-byte UTF-8 sequence equals 0x0A.
    """
    offset = 0
    line_no = 1
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return not_utf8(path, line_no, offset + exc.start, raw[exc.start : exc.start + 4])
            offset += len(raw)
    # The decoder complained about the end of the file: a multi-byte sequence cut short.
    return not_utf8(path, line_no, offset, b"")


def not_utf8(path: Path, line_no: int, byte_offset: int, sample: bytes) -> DatasetError:
    shown = f" (bytes {sample!r})" if sample else ""
    return DatasetError(
        path,
        f"not valid UTF-8 at byte offset {byte_offset}{shown}; re-encode the file as UTF-8 "
        "(e.g. iconv -f latin1 -t utf-8)",
        row=line_no,
        location=f"line {line_no}",
    )


def binary_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line of a UTF-8 file, read one line at a time."""
    offset = 0
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise not_utf8(path, line_no, offset + exc.start, raw[exc.start : exc.start + 4]) from None
            if line_no == 1 and text.startswith("\ufeff"):
                text = text[1:]
            offset += len(raw)
            yield line_no, text


def load_json_document(path: Path) -> Any:
    """Parse a whole JSON file, turning every failure into one line that says where."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise utf8_error(path) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            path,
            f"not valid JSON: {exc.msg} (column {exc.colno}); is this the right file?",
            row=exc.lineno,
            location=f"line {exc.lineno}",
        ) from None
    except (ValueError, RecursionError) as exc:  # nesting past the recursion limit, 4300+ digit numbers
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
        raise DatasetError(path, f"cannot read this JSON ({reason}); is this the right file?") from None


def data_list(path: Path, document: Any, what: str) -> list[Any]:
    """The ``data`` list of a TextVQA / DocVQA annotation file."""
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        if not isinstance(document, dict):
            got = type(document).__name__
        elif "data" in document:  # there, but not a list: naming the keys alone would puzzle
            got = f"'data' as {type(document['data']).__name__}"
        else:
            got = f"keys {sorted(document)[:8]}"
        raise DatasetError(
            path,
            f"expected an object with a 'data' list (a {what} annotation file), got {got}; "
            "check the file, or the format= of its @pytest.mark.dataset",
        )
    return document["data"]


def sample_id(value: Any, field: str) -> str:
    """A sample id: a string or integer that pytest can carry in a test id and ``-k`` can select."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise FieldProblem(field, f"the id must be a string or an integer, got {_kind(value)}")
    text = str(value)
    if not text:
        raise FieldProblem(field, "the id is empty; every sample needs a unique id")
    if _BAD_ID_CHARS.search(text):
        raise FieldProblem(
            field, f"the id {text!r} contains whitespace or control characters, which test ids cannot carry"
        )
    return text


def optional_text(value: Any, field: str) -> str | None:
    """A short label (category, split, group): a string or number, or absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise FieldProblem(field, f"expected a string, got {_kind(value)}")
    return str(value)


def required_text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise FieldProblem(field, f"expected a string, got {_kind(value)}")
    return value


def answer_list(value: Any, field: str) -> tuple[str, ...]:
    """References from a JSON value: a list of strings/numbers, or one string/number."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(_answer_text(v, field) for v in value)
    return (_answer_text(value, field),)


def _answer_text(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise FieldProblem(field, f"answers must be strings, got {_kind(value)}")
    return str(value)


def image_file(base: Path, relative: str, field: str) -> Path:
    """Where an image named in the dataset lives; existence is checked only when it is loaded."""
    if not relative:
        raise FieldProblem(field, "the image path is empty")
    if "\x00" in relative:
        raise FieldProblem(field, "the image path contains a NUL byte")
    return base / relative


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def broken_sample(name: str, sample_id: str, problem: str) -> Sample:
    """A row that cannot be read, kept as a sample that fails alone (with ``problem``) when it runs."""
    from pytest_omnilmm.sample import ImageRef, Sample, Text

    return Sample(
        id=sample_id,
        dataset=name,
        parts=(ImageRef(problem=problem), Text("")),
        metadata={"question": "", "unreadable": problem},
    )
