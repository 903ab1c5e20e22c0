"""Column conventions shared by the VLMEvalKit TSV and parquet readers (MMBench-style tables)."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_omnilmm.datasets._common import NA_TOKENS, FieldProblem
from pytest_omnilmm.literals import parse_list_literal

# MMBench's circular evaluation stores the rotated copies of question i at index i + k * 1_000_000.
CIRCULAR_STRIDE = 1_000_000
_SMALL_INT = re.compile(r"-?\d{1,18}")


def option_columns(columns: Iterable[str]) -> list[str]:
    """Option columns are the single capital letters A..Z, in letter order."""
    return sorted(c for c in columns if len(c) == 1 and c in string.ascii_uppercase)


def is_missing(value: Any) -> bool:
    """What pandas (and so VLMEvalKit) would read as NaN."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value in NA_TOKENS


def choices(row: Mapping[str, Any], letters: list[str]) -> tuple[tuple[str, str], ...]:
    return tuple((letter, str(row[letter])) for letter in letters if not is_missing(row.get(letter)))


def optional_cell(value: Any) -> str | None:
    """A label cell: None when empty."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def references(value: Any, field: str) -> tuple[str, ...]:
    """The answer cell as references: a letter, Yes/No, a string, a list, or a list written as a string."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return ()
    if isinstance(value, str):
        as_list = parse_list_literal(value) if value.startswith("[") else None
        if as_list is not None and all(_plain(v) for v in as_list):
            return tuple(str(v) for v in as_list)
        return (value,)
    if isinstance(value, (list, tuple)):
        if not all(_plain(v) for v in value):
            raise FieldProblem(field, "the answers must be strings")
        return tuple(str(v) for v in value)
    if _plain(value):
        return (str(value),)
    raise FieldProblem(field, f"expected an answer string or list, got {type(value).__name__}")


def circular_group(index: str) -> str | None:
    """The question an MMBench circular copy belongs to, or None when ``index`` is not a copy."""
    if not _SMALL_INT.fullmatch(index):
        return None
    number = int(index)
    return str(number % CIRCULAR_STRIDE) if number >= CIRCULAR_STRIDE else None


def _plain(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (str, int, float))
