"""Reading the Python-literal cells VLMEvalKit writes (``"['a', 'b']"``): shared by the dataset readers and
the metrics that read a sample's raw columns, so neither has to import the other."""

from __future__ import annotations

import ast
import json
from typing import Any


def parse_list_literal(text: str) -> list[Any] | None:
    """``"['a', 'b']"`` (VLMEvalKit writes Python reprs) or ``'["a"]'`` as a list; None if it is not one."""
    stripped = text.strip()
    if not (stripped.startswith("[") and stripped.endswith("]")):
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        try:
            value = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return None
    return value if isinstance(value, list) else None
