"""The native format: one JSON object per line.

    {"id": "q1", "question": "What colour is the cat?", "image": "img/cat.png", "answers": ["black"]}
    {"id": "q2", "content": [{"type": "image", "image": "a.png"}, {"type": "text", "text": "and"},
                             {"type": "image", "image": "b.png"}], "answer": "B", "choices": ["x", "y"]}

``question`` may be spelled ``text``; images are ``image`` (one path), ``images`` (a list) or interleaved
with the text in ``content``. Paths are relative to the file's directory (or ``image_root``). ``answers``
(a list) or ``answer`` (one string) give the references; ``choices`` is ``{"A": ..., "B": ...}`` or a list
(lettered A, B, ...). ``category``, ``split`` and ``group`` are labels; every other key is metadata.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pytest_omnilmm.datasets._common import (
    FieldProblem,
    answer_list,
    binary_lines,
    broken_sample,
    image_file,
    optional_text,
    required_text,
    sample_id,
)
from pytest_omnilmm.datasets.errors import DatasetError
from pytest_omnilmm.sample import ImageRef, Part, Sample, Text

_SAMPLE_KEYS = ("id", "question", "text", "image", "images", "content", "answers", "choices")
_CONSUMED = frozenset((*_SAMPLE_KEYS, "category", "split", "group"))


def read_jsonl(
    path: Path, *, name: str, image_root: Path | None = None, limit_rows: int | None = None
) -> Iterator[Sample]:
    """One sample per line. A bad line (not JSON, not an object, a bad field) fails alone, as a sample of
    its own named ``line<N>``; a file with no readable line at all is refused as a whole (it is not JSONL)."""
    base = image_root if image_root is not None else path.parent
    seen: dict[str, int] = {}
    produced = 0
    held: list[tuple[DatasetError, Sample]] = []  # bad lines before the first good one
    for line_no, text in binary_lines(path):
        if limit_rows is not None and produced >= limit_rows:
            return
        if not text.strip():
            continue
        where = f"line {line_no}"
        try:
            sample = _line_sample(text, name=name, base=base, path=path, where=where, line_no=line_no)
        except DatasetError as exc:
            bad = broken_sample(name, f"line{line_no}", str(exc))
            if not seen:
                held.append((exc, bad))
                continue
            sample = bad
        for _, earlier in held:  # the file is JSONL after all: the earlier bad lines fail alone
            produced += 1
            yield earlier
        held.clear()
        if sample.id in seen:
            raise DatasetError(
                path,
                f"duplicate id {sample.id!r} (first on line {seen[sample.id]}); ids must be unique",
                row=line_no,
                field="id",
                location=where,
                field_kind="field",
            )
        seen[sample.id] = line_no
        produced += 1
        yield sample
    if held:
        raise held[0][0]


def _line_sample(text: str, *, name: str, base: Path, path: Path, where: str, line_no: int) -> Sample:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            path,
            f"not valid JSON: {exc.msg} (column {exc.colno}); each line must be one JSON object",
            row=line_no,
            location=where,
        ) from None
    except (ValueError, RecursionError) as exc:  # nesting past the recursion limit, 4300+ digit numbers
        raise DatasetError(
            path, f"cannot read this JSON: {_reason(exc)}", row=line_no, location=where
        ) from None
    if not isinstance(obj, dict):
        raise DatasetError(
            path,
            f"expected a JSON object ({{...}}), got {type(obj).__name__}; each line is one sample",
            row=line_no,
            location=where,
        )
    try:
        return _sample(obj, name=name, base=base, origin=f"{path} {where}")
    except FieldProblem as problem:
        raise DatasetError(
            path, problem.message, row=line_no, field=problem.field, location=where, field_kind="field"
        ) from None


def _sample(obj: dict[str, Any], *, name: str, base: Path, origin: str) -> Sample:
    if "id" not in obj:
        raise FieldProblem("id", "missing 'id'; every line needs a unique id")
    sid = sample_id(obj["id"], "id")
    if "content" in obj:
        for key in ("image", "images"):
            if key in obj:
                raise FieldProblem(key, f"give images inside 'content' or as '{key}', not both")
        parts = _content_parts(obj["content"], base, origin)
        question = "\n".join(p.text for p in parts if isinstance(p, Text))
        if "question" in obj or "text" in obj:
            key = "question" if "question" in obj else "text"
            question = required_text(obj[key], key)
    else:
        key = "question" if "question" in obj else "text"
        if key not in obj:
            raise FieldProblem("question", "missing 'question' (or 'text', or 'content')")
        question = required_text(obj[key], key)
        images = _image_parts(obj, base, origin)
        parts = (*images, Text(question))
    references = answer_list(obj["answers"] if "answers" in obj else obj.get("answer"), _answer_key(obj))
    # "answer" stays in metadata only when "answers" took precedence over it
    consumed = _CONSUMED if "answers" in obj else _CONSUMED | {"answer"}
    metadata = {k: v for k, v in obj.items() if k not in consumed}
    metadata["question"] = question
    return Sample(
        id=sid,
        dataset=name,
        parts=parts,
        references=references,
        choices=_choices(obj.get("choices")),
        category=optional_text(obj.get("category"), "category"),
        split=optional_text(obj.get("split"), "split"),
        group=optional_text(obj.get("group"), "group"),
        metadata=metadata,
    )


def _reason(exc: Exception) -> str:
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]


def _answer_key(obj: dict[str, Any]) -> str:
    return "answers" if "answers" in obj else "answer"


def _image_parts(obj: dict[str, Any], base: Path, origin: str) -> tuple[ImageRef, ...]:
    if "image" in obj and "images" in obj:
        raise FieldProblem("images", "give either 'image' or 'images', not both")
    if "image" in obj:
        names = [obj["image"]] if obj["image"] is not None else []
        key = "image"
    else:
        names = obj.get("images") or []
        key = "images"
        if not isinstance(names, list):
            raise FieldProblem(key, f"expected a list of image paths, got {type(names).__name__}")
    refs = []
    for i, rel in enumerate(names):
        field = key if key == "image" else f"images[{i}]"
        if not isinstance(rel, str):
            raise FieldProblem(field, f"expected an image path (a string), got {type(rel).__name__}")
        refs.append(ImageRef(path=image_file(base, rel, field), origin=f"{origin}, {field}"))
    return tuple(refs)


def _content_parts(content: Any, base: Path, origin: str) -> tuple[Part, ...]:
    if not isinstance(content, list) or not content:
        raise FieldProblem("content", "expected a non-empty list of {'type': 'image'|'text', ...} parts")
    parts: list[Part] = []
    for i, item in enumerate(content):
        field = f"content[{i}]"
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text":
            parts.append(Text(required_text(item.get("text"), f"{field}.text")))
        elif kind == "image":
            rel = required_text(item.get("image"), f"{field}.image")
            parts.append(ImageRef(path=image_file(base, rel, field), origin=f"{origin}, {field}"))
        else:
            raise FieldProblem(
                field, 'each part must be {"type": "text", "text": ...} or {"type": "image", "image": "path"}'
            )
    return tuple(parts)


def _choices(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        if len(value) > len(string.ascii_uppercase):
            raise FieldProblem("choices", f"{len(value)} choices; at most 26 (A to Z) are supported")
        pairs = list(zip(string.ascii_uppercase, value, strict=False))
    else:
        raise FieldProblem("choices", 'expected {"A": "...", "B": "..."} or a list of option texts')
    out = []
    for letter, text in pairs:
        if isinstance(text, bool) or not isinstance(text, (str, int, float)):
            raise FieldProblem(f"choices[{letter!r}]", f"an option must be text, got {type(text).__name__}")
        out.append((letter, str(text)))
    return tuple(out)
