"""DocVQA annotation JSON (``val_v1.0_withQT.json``, ``test_v1.0.json``).

``{"dataset_split": "val", "data": [{"questionId", "question", "image": "documents/x.png", "answers",
"question_types", "docId", ...}]}``. Image paths are looked up, in order, under ``image_root`` when given,
else under the JSON's folder, its parent, and any ``*_images/`` folder beside the JSON or beside its folder
(the released layout: ``spdocvqa_qas/val_v1.0_withQT.json`` with ``spdocvqa_images/documents/x.png``).
Test files carry no answers: their samples have no references (predictions only, no score). The first
question type is the category; questions on the same page image form one group.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pytest_omnilmm.datasets._common import (
    FieldProblem,
    answer_list,
    data_list,
    image_file,
    load_json_document,
    optional_text,
    required_text,
    sample_id,
)
from pytest_omnilmm.datasets.errors import DatasetError
from pytest_omnilmm.sample import ImageRef, Sample, Text

_CONSUMED = frozenset({"questionId", "question", "answers", "data_split"})


def read_docvqa(
    path: Path, *, name: str, image_root: Path | None = None, limit_rows: int | None = None
) -> Iterator[Sample]:
    document = load_json_document(path)
    items = data_list(path, document, "DocVQA")
    default_split = document.get("dataset_split")
    bases = image_bases(path, image_root)
    seen: dict[str, int] = {}
    for position, item in enumerate(items[:limit_rows] if limit_rows is not None else items):
        where = f"data[{position}]"
        try:
            origin = f"{path} {where}"
            sample = _sample(item, name=name, bases=bases, default_split=default_split, origin=origin)
        except FieldProblem as problem:
            raise DatasetError(
                path, problem.message, row=position, field=problem.field, location=where, field_kind="field"
            ) from None
        if sample.id in seen:
            raise DatasetError(
                path,
                f"duplicate questionId {sample.id!r} (also data[{seen[sample.id]}]); ids must be unique",
                row=position,
                field="questionId",
                location=where,
                field_kind="field",
            )
        seen[sample.id] = position
        yield sample


def image_bases(path: Path, image_root: Path | None) -> tuple[Path, ...]:
    """The folders an image path is tried under, in order (see the module docstring)."""
    if image_root is not None:
        return (image_root,)
    here = path.parent
    siblings = [d for folder in (here, here.parent) for d in sorted(folder.glob("*_images")) if d.is_dir()]
    return tuple(dict.fromkeys((here, here.parent, *siblings)))


def _resolve(bases: tuple[Path, ...], rel: str, origin: str) -> ImageRef:
    candidates = [image_file(base, rel, "image") for base in bases]
    found = next((c for c in candidates if c.is_file()), None)
    if found is not None:
        return ImageRef(path=found, origin=origin)
    tried = ", ".join(str(c) for c in candidates)
    # Not found anywhere: the sample fails alone when its image is read, naming every place tried.
    return ImageRef(
        path=candidates[0],
        origin=f"{origin}; tried {tried}; give the image folder with --data NAME=PATH,images=DIR",
    )


def _sample(item: Any, *, name: str, bases: tuple[Path, ...], default_split: Any, origin: str) -> Sample:
    if not isinstance(item, dict):
        raise FieldProblem(None, f"expected an object per question, got {type(item).__name__}")
    for key in ("questionId", "question", "image"):
        if key not in item:
            raise FieldProblem(key, f"missing {key!r}; a DocVQA item has questionId, question, image")
    sid = sample_id(item["questionId"], "questionId")
    question = required_text(item["question"], "question")
    rel = required_text(item["image"], "image")
    types = item.get("question_types") or []
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise FieldProblem("question_types", "expected a list of strings")
    metadata = {k: v for k, v in item.items() if k not in _CONSUMED}
    metadata["question"] = question
    return Sample(
        id=sid,
        dataset=name,
        parts=(_resolve(bases, rel, origin), Text(question)),
        references=answer_list(item.get("answers"), "answers"),
        category=types[0] if types else None,
        split=optional_text(item.get("data_split", default_split), "data_split"),
        group=rel,
        metadata=metadata,
    )
