"""TextVQA annotation JSON (``TextVQA_0.5.1_val.json`` and friends).

``{"data": [{"question_id", "image_id", "question", "answers": [10 strings], "set_name", ...}]}``; the image
of an item is ``<image_id>.jpg`` in ``train_images/`` next to the JSON (TextVQA's val split uses the train
images), or ``test_images/`` for test items, unless ``image_root`` says where. Test files carry no answers:
their samples have no references (predictions only). Questions on the same image form one group.
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

_CONSUMED = frozenset({"question_id", "question", "answers", "set_name"})


def read_textvqa(
    path: Path, *, name: str, image_root: Path | None = None, limit_rows: int | None = None
) -> Iterator[Sample]:
    items = data_list(path, load_json_document(path), "TextVQA")
    seen: dict[str, int] = {}
    for position, item in enumerate(items[:limit_rows] if limit_rows is not None else items):
        where = f"data[{position}]"
        try:
            sample = _sample(item, name=name, path=path, image_root=image_root, origin=f"{path} {where}")
        except FieldProblem as problem:
            raise DatasetError(
                path, problem.message, row=position, field=problem.field, location=where, field_kind="field"
            ) from None
        if sample.id in seen:
            raise DatasetError(
                path,
                f"duplicate question_id {sample.id!r} (also data[{seen[sample.id]}]); ids must be unique",
                row=position,
                field="question_id",
                location=where,
                field_kind="field",
            )
        seen[sample.id] = position
        yield sample


def _sample(item: Any, *, name: str, path: Path, image_root: Path | None, origin: str) -> Sample:
    if not isinstance(item, dict):
        raise FieldProblem(None, f"expected an object per question, got {type(item).__name__}")
    for key in ("question_id", "image_id", "question"):
        if key not in item:
            raise FieldProblem(key, f"missing {key!r}; a TextVQA item has question_id, image_id, question")
    sid = sample_id(item["question_id"], "question_id")
    image_id = sample_id(item["image_id"], "image_id")
    question = required_text(item["question"], "question")
    split = optional_text(item.get("set_name"), "set_name")
    folder = image_root if image_root is not None else path.parent / _default_image_dir(split)
    image = ImageRef(path=image_file(folder, f"{image_id}.jpg", "image_id"), origin=origin)
    metadata = {k: v for k, v in item.items() if k not in _CONSUMED}
    metadata["question"] = question
    return Sample(
        id=sid,
        dataset=name,
        parts=(image, Text(question)),
        references=answer_list(item.get("answers"), "answers"),
        split=split,
        group=image_id,
        metadata=metadata,
    )


def _default_image_dir(split: str | None) -> str:
    return "test_images" if split == "test" else "train_images"
