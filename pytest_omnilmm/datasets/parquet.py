"""Parquet files, as lmms-eval / Hugging Face ``datasets`` export them (needs the ``parquet`` extra).

Columns by name: the id is the first of ``question_id``, ``questionId``, ``index``, ``id``; ``question``;
images from an ``image`` / ``images`` column, else from every column of image type (``datasets``' Image
feature is a ``{"bytes", "path"}`` struct; raw binary works too), in column order; ``answers`` or ``answer``;
MMBench-style ``hint``, option columns ``A``..``Z``, ``category``, ``split``. Image bytes become base64 for
``ImageRef`` and are not decoded; a struct with only a ``path`` points at a file relative to the parquet
file's directory (or ``image_root``). Row groups are read in batches, never the whole table at once.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_omnilmm.datasets._common import FieldProblem, image_file, sample_id
from pytest_omnilmm.datasets._tabular import (
    choices,
    circular_group,
    is_missing,
    option_columns,
    optional_cell,
    references,
)
from pytest_omnilmm.datasets.errors import DatasetError
from pytest_omnilmm.sample import ImageRef, Part, Sample, Text

if TYPE_CHECKING:
    import pyarrow as pa

ID_COLUMNS = ("question_id", "questionId", "index", "id")
_NAMED_IMAGE_COLUMNS = ("image", "images")
_BATCH_ROWS = 256


def read_parquet(
    path: Path, *, name: str, image_root: Path | None = None, limit_rows: int | None = None
) -> Iterator[Sample]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(
            path, "reading parquet needs pyarrow: pip install 'pytest-omnilmm[parquet]'"
        ) from None
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(path, f"not a readable parquet file ({exc}); check --data-format") from None
    layout = _Layout.of(path, parquet.schema_arrow, pa)
    base = image_root if image_root is not None else path.parent
    seen: dict[str, int] = {}
    number = 0
    batches = parquet.iter_batches(batch_size=_BATCH_ROWS)
    while limit_rows is None or number < limit_rows:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as exc:
            raise DatasetError(
                path, f"cannot read the rows after row {number} ({exc}); the file may be truncated"
            ) from None
        if batch is None:
            return
        for values in batch.to_pylist():
            if limit_rows is not None and number >= limit_rows:
                return
            number += 1
            try:
                sample = layout.sample(values, name=name, base=base, origin=f"{path} row {number}")
            except FieldProblem as problem:
                raise DatasetError(path, problem.message, row=number, field=problem.field) from None
            if sample.id in seen:
                raise DatasetError(
                    path,
                    f"duplicate {layout.id_column} {sample.id!r} (also row {seen[sample.id]}); fix it",
                    row=number,
                    field=layout.id_column,
                )
            seen[sample.id] = number
            yield sample


class _Layout:
    """Which columns play which role, decided once from the schema."""

    def __init__(self, id_column: str, image_columns: list[str], columns: list[str]) -> None:
        self.id_column = id_column
        self.image_columns = image_columns
        self.letters = option_columns(columns)
        self.answer_column = next((c for c in ("answers", "answer") if c in columns), None)
        self.group_column = next((c for c in ("image_id", "docId") if c in columns), None)
        self.consumed = {id_column, "question", "hint", "category", "split", *image_columns, *self.letters}
        if self.answer_column:
            self.consumed.add(self.answer_column)

    @classmethod
    def of(cls, path: Path, schema: pa.Schema, pa: Any) -> _Layout:
        columns = list(schema.names)
        id_column = next((c for c in ID_COLUMNS if c in columns), None)
        named = [c for c in _NAMED_IMAGE_COLUMNS if c in columns]
        image_columns = named or [f.name for f in schema if _is_image_type(f.type, pa)]
        missing = [] if id_column else [" or ".join(ID_COLUMNS)]
        if "question" not in columns:
            missing.append("question")
        if not image_columns:
            missing.append("an image column (image, images, or a binary / {bytes, path} column)")
        if missing:
            raise DatasetError(
                path,
                f"missing required column(s): {'; '.join(missing)}; found columns {columns[:20]}",
                field=", ".join(missing),
            )
        assert id_column is not None
        return cls(id_column, image_columns, columns)

    def sample(self, values: dict[str, Any], *, name: str, base: Path, origin: str) -> Sample:
        sid = sample_id(values[self.id_column], self.id_column)
        question = values["question"]
        if not isinstance(question, str):
            raise FieldProblem("question", f"expected a string, got {type(question).__name__}")
        images: list[Part] = []
        for column in self.image_columns:
            images.extend(_images(values[column], column, base, f"{origin}, column {column!r}"))
        hint = values.get("hint")
        metadata: dict[str, Any] = {}
        for key, value in values.items():
            plain = _plain(value) if key not in self.consumed else _DROP
            if plain is not _DROP:
                metadata[key] = plain
        metadata["question"] = question
        metadata["hint"] = None if is_missing(hint) else str(hint)
        group = circular_group(sid) if self.id_column == "index" else None
        if group is None and self.group_column is not None:
            group = optional_cell(values[self.group_column])
        return Sample(
            id=sid,
            dataset=name,
            parts=(*images, Text(question)),
            references=references(values.get(self.answer_column), self.answer_column or "answer")
            if self.answer_column
            else (),
            choices=choices(values, self.letters),
            category=optional_cell(values.get("category")),
            split=optional_cell(values.get("split")),
            group=group or sid,
            metadata=metadata,
        )


def _is_image_type(arrow_type: Any, pa: Any) -> bool:
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return True
    if pa.types.is_struct(arrow_type):
        return arrow_type.get_field_index("bytes") >= 0
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return _is_image_type(arrow_type.value_type, pa)
    return False


def _images(value: Any, column: str, base: Path, origin: str) -> list[ImageRef]:
    if value is None:
        return []
    if isinstance(value, list):
        out: list[ImageRef] = []
        for i, item in enumerate(value):
            out.extend(_images(item, f"{column}[{i}]", base, f"{origin}[{i}]"))
        return out
    if isinstance(value, (bytes, bytearray)):
        return [ImageRef(b64=base64.b64encode(value).decode("ascii"), origin=origin)]
    if isinstance(value, str):  # a string image column holds base64, as in VLMEvalKit's TSVs
        return [ImageRef(b64=value, origin=origin)] if value else []
    if isinstance(value, dict):
        data, rel = value.get("bytes"), value.get("path")
        if isinstance(data, (bytes, bytearray)):
            return [ImageRef(b64=base64.b64encode(data).decode("ascii"), origin=origin)]
        if isinstance(rel, str) and rel:
            return [ImageRef(path=image_file(base, rel, column), origin=origin)]
        if data is None and rel is None:
            return []
    raise FieldProblem(column, "expected image bytes, a {'bytes', 'path'} struct, or a list of those")


_DROP = object()


def _plain(value: Any) -> Any:
    """A metadata value as plain JSON-able data; bytes (images) are dropped."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return _DROP
    if isinstance(value, list):
        return [v for v in (_plain(v) for v in value) if v is not _DROP]
    if isinstance(value, dict):
        return {str(k): v for k, v in ((k, _plain(v)) for k, v in value.items()) if v is not _DROP}
    return str(value)
