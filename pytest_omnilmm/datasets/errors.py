"""The errors a dataset file can cause.

A ``DatasetError`` is about the file (it cannot be read as the format it claims to be); a problem
confined to one sample's image is a ``SampleError`` raised later, when that image is loaded, so that
only that sample fails.
"""

from __future__ import annotations

from pathlib import Path


class DatasetError(Exception):
    """A dataset file that cannot be read, said in one line: file, where in it, what to do.

    ``row`` is the line number (JSONL, JSON syntax errors), the data row number counted from 1 after
    the header (TSV, parquet) or the position in the ``data`` list (JSON annotations); ``field`` is the
    column or key at fault. ``location`` is how ``row`` is written for a human ("row 12 (index '5')",
    "line 3", "data[7]").
    """

    def __init__(
        self,
        file: str | Path,
        message: str,
        *,
        row: int | None = None,
        field: str | None = None,
        location: str | None = None,
        field_kind: str = "column",
    ) -> None:
        self.file = str(file)
        self.row = row
        self.field = field
        self.message = " ".join(message.split())
        if location is None and row is not None:
            location = f"row {row}"
        self.location = location
        self.field_kind = field_kind
        super().__init__(str(self))

    def __reduce__(self) -> tuple[object, ...]:
        # keyword-only arguments defeat Exception's default pickling (xdist, multiprocessing)
        kwargs = {"row": self.row, "field": self.field, "location": self.location}
        kwargs["field_kind"] = self.field_kind
        return (_rebuild, (self.file, self.message, kwargs))

    def __str__(self) -> str:
        where = [w for w in (self.location, self._field_text()) if w]
        head = f"{self.file}: {', '.join(where)}" if where else self.file
        return f"{head}: {self.message}"

    def _field_text(self) -> str | None:
        return None if self.field is None else f"{self.field_kind} {self.field!r}"


def _rebuild(file: str, message: str, kwargs: dict[str, object]) -> DatasetError:
    return DatasetError(file, message, **kwargs)  # type: ignore[arg-type]


class DatasetWarning(UserWarning):
    """Something in a dataset file that was handled but that the user should know about."""
