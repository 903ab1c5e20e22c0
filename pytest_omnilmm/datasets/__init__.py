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

__all__ = [
    "FORMATS",
    "DatasetError",
    "DatasetWarning",
    "iter_dataset",
    "load_dataset",
    "reader_formats",
    "register_reader",
    "sniff_format",
    "unregister_reader",
]

Reader = Callable[..., Iterator[Sample]]

_READERS: dict[str, Reader] = {
    "jsonl": read_jsonl,
    "vlmeval_tsv": read_vlmeval_tsv,
    "textvqa": read_textvqa,
    "docvqa": read_docvqa,
    "parquet": read_parquet,
}
assert tuple(_READERS) == FORMATS
_BUILTIN: frozenset[str] = frozenset(_READERS)
# File suffixes (lower case, with the dot) that registered readers claim, checked before sniffing.
_SUFFIXES: dict[str, str] = {}


def register_reader(
    format: str, fn: Reader, *, suffixes: tuple[str, ...] = (), replace: bool = False
) -> None:
    """Add a dataset format: ``fn(path, *, name, image_root, limit_rows)`` yields ``Sample`` objects.

    Select it with ``@pytest.mark.dataset(..., format=format)`` or ``load_dataset(..., format=format)``;
    files ending in one of ``suffixes`` (e.g. ``(".myset",)``) pick it without being named. A built-in
    format cannot be replaced; a registered one only with ``replace=True``.
    """
    if not format or not isinstance(format, str):
        raise ValueError(f"reader format {format!r}: give a non-empty name")
    if not callable(fn):
        raise TypeError(f"reader {format!r}: fn must be callable, got {type(fn).__name__}")
    if format in _BUILTIN:
        raise ValueError(f"dataset format {format!r} is built in and cannot be replaced; use another name")
    if format in _READERS and not replace:
        raise ValueError(f"dataset format {format!r} is already registered; pass replace=True to replace it")
    for suffix in suffixes:
        if not suffix.startswith("."):
            raise ValueError(f"reader {format!r}: suffix {suffix!r} must start with a dot, e.g. '.myset'")
        owner = _SUFFIXES.get(suffix.lower())
        if owner is not None and owner != format and not replace:
            raise ValueError(f"reader {format!r}: suffix {suffix!r} is already claimed by {owner!r}")
    _READERS[format] = fn
    for suffix in suffixes:
        _SUFFIXES[suffix.lower()] = format


def unregister_reader(format: str) -> None:
    """Remove a format added with ``register_reader``; built-ins stay."""
    if format in _BUILTIN:
        raise ValueError(f"dataset format {format!r} is built in and cannot be removed")
    _READERS.pop(format, None)
    for suffix in [s for s, owner in _SUFFIXES.items() if owner == format]:
        del _SUFFIXES[suffix]


def reader_formats() -> tuple[str, ...]:
    """Every dataset format known now: the built-ins, then the registered ones."""
    return tuple(_READERS)


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
    if format is not None:
        chosen = format
    else:
        chosen = _SUFFIXES.get(path.suffix.lower()) or sniff_format(path)
    if chosen not in _READERS:
        raise DatasetError(
            path,
            f"unknown dataset format {chosen!r}; use one of: {', '.join(_READERS)} "
            "(add one with pytest_omnilmm.register_reader)",
        )
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
