"""Dataset readers: files in the formats people already have -> ``Sample`` objects.

``load_dataset(path, name=...)`` picks the reader from ``format`` or sniffs it from the file. Reading
never decodes an image: images are ``ImageRef``s, so a broken image fails only its own sample, later.
A file that cannot be read as its format raises one ``DatasetError`` naming file, row and field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from pytest_omnilmm.datasets._common import check_readable_file
from pytest_omnilmm.datasets.docvqa import read_docvqa
from pytest_omnilmm.datasets.errors import DatasetError, DatasetWarning
from pytest_omnilmm.datasets.jsonl import read_jsonl
from pytest_omnilmm.datasets.parquet import read_parquet
from pytest_omnilmm.datasets.sniff import FORMATS, sniff_format
from pytest_omnilmm.datasets.textvqa import read_textvqa
from pytest_omnilmm.datasets.vlmeval_tsv import read_vlmeval_tsv
from pytest_omnilmm.sample import Sample

__all__ = ["FORMATS", "DatasetError", "DatasetWarning", "iter_dataset", "load_dataset", "sniff_format"]

Reader = Callable[..., Iterator[Sample]]

_READERS: dict[str, Reader] = {
    "jsonl": read_jsonl,
    "vlmeval_tsv": read_vlmeval_tsv,
    "textvqa": read_textvqa,
    "docvqa": read_docvqa,
    "parquet": read_parquet,
}
assert tuple(_READERS) == FORMATS


def iter_dataset(
    path: str | Path,
    *,
    name: str,
    format: str | None = None,
    image_root: str | Path | None = None,
    limit_rows: int | None = None,
) -> Iterator[Sample]:
    """The samples of a dataset file, one at a time (the file is checked before the first one)."""
    path = Path(path)
    if limit_rows is not None and limit_rows < 0:
        raise ValueError(f"limit_rows must be >= 0, got {limit_rows}")
    check_readable_file(path)
    root = None if image_root is None else Path(image_root)
    if root is not None and not root.is_dir():
        raise DatasetError(
            root, "the image root is not a directory; point it at the folder holding the images"
        )
    chosen = sniff_format(path) if format is None else format
    if chosen not in _READERS:
        raise DatasetError(path, f"unknown dataset format {chosen!r}; use one of: {', '.join(FORMATS)}")
    return _guarded(path, _READERS[chosen](path, name=name, image_root=root, limit_rows=limit_rows))


def load_dataset(
    path: str | Path,
    *,
    name: str,
    format: str | None = None,
    image_root: str | Path | None = None,
    limit_rows: int | None = None,
) -> list[Sample]:
    """All samples of a dataset file; see ``iter_dataset``."""
    return list(iter_dataset(path, name=name, format=format, image_root=image_root, limit_rows=limit_rows))


def _guarded(path: Path, samples: Iterator[Sample]) -> Iterator[Sample]:
    """An I/O failure halfway through (a vanished file, a bad disk) is still said as one line."""
    try:
        yield from samples
    except OSError as exc:
        raise DatasetError(path, f"cannot read the file: {exc.strerror or exc}") from None
