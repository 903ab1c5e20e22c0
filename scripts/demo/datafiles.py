"""The demo eval split, and writing it in the formats people already hold.

``eval_split(seed)`` is pure (questions and image specs, no files). ``write_demo_data(root, seed)``
writes the five bundled datasets under ``root``:

- ``demo_vqa.jsonl`` + ``images/*.png``  native JSONL (single, multi-image and interleaved samples)
- ``demo_mcq.tsv``                     VLMEvalKit MCQ TSV with MMBench-style circular copies
- ``demo_yesno.tsv``                   MME-style yes/no pairs; the second row references the first's image
- ``textvqa/TextVQA_0.5.1_val.json`` + ``textvqa/train_images/<image_id>.jpg``
- ``docvqa/val_v1.0_withQT.json`` + ``docvqa/documents/*.png``
- ``demo_ocr.tsv``                      OCRBench-style TSV (answer column is a list-string)

Images are written with fixed encoder settings and no metadata, so the same seed gives identical bytes.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from scripts.demo.synth import (
    FORM_FIELDS,
    QA,
    ImageSpec,
    WordCard,
    form_page,
    make_docvqa,
    make_mcq,
    make_textvqa,
    make_yesno_pair,
    render,
    rotate_choices,
    vqa_single,
    vqa_two_images,
)

if TYPE_CHECKING:
    from PIL.Image import Image

EVAL_SEED = 20260
OCR_WORD_CATEGORY = "Regular Text Recognition"
OCR_FORM_CATEGORY = "Key Information Extraction"
# Per-dataset sizes: ~600 samples in all, so `pytest evals/` stays well under three minutes on 2 cores.
VQA_PER_CATEGORY = 30
VQA_TWO_IMAGE = 10
MCQ_BASE = 40
YESNO_PAIRS = 60
TEXTVQA_SIZE = 100
DOCVQA_PAGES = 40
DOCVQA_QUESTIONS = 100
OCR_WORDS = 40
OCR_FORMS = 20
JPEG_QUALITY = 90
TEXTVQA_FIRST_QID = 34602
DOCVQA_FIRST_QID = 49153


@dataclass(frozen=True)
class EvalSplit:
    """The eval questions per dataset; MCQ as base questions (circular copies are derived)."""

    vqa: tuple[QA, ...]
    mcq: tuple[QA, ...]
    yesno: tuple[QA, ...]  # pairs, Yes first
    textvqa: tuple[QA, ...]
    docvqa: tuple[QA, ...]
    ocr: tuple[QA, ...]

    def datasets(self) -> dict[str, tuple[QA, ...]]:
        """Every scored row per dataset name, MCQ with its circular copies."""
        return {
            "demo_vqa": self.vqa,
            "demo_mcq": tuple(q for base in self.mcq for q in circular_copies(base)),
            "demo_yesno": self.yesno,
            "textvqa": self.textvqa,
            "docvqa": self.docvqa,
            "demo_ocr": self.ocr,
        }

    def image_specs(self) -> frozenset[ImageSpec]:
        return frozenset(spec for rows in self.datasets().values() for qa in rows for spec in qa.images)


def circular_copies(qa: QA) -> list[QA]:
    return [rotate_choices(qa, k) for k in range(len(qa.choices))]


def eval_split(seed: int = EVAL_SEED) -> EvalSplit:
    """The eval questions for ``seed`` (pure: nothing is drawn or written)."""

    def rng(name: str) -> random.Random:
        return random.Random(f"{seed}:{name}")

    r = rng("vqa")
    vqa = [
        vqa_single(r, c) for c in ("colour", "shape", "count", "position") for _ in range(VQA_PER_CATEGORY)
    ]
    vqa += [vqa_two_images(r, interleaved=False) for _ in range(VQA_TWO_IMAGE)]
    vqa += [vqa_two_images(r, interleaved=True) for _ in range(VQA_TWO_IMAGE)]
    r = rng("mcq")
    mcq = [make_mcq(r) for _ in range(MCQ_BASE)]
    r = rng("yesno")
    yesno = [qa for _ in range(YESNO_PAIRS) for qa in make_yesno_pair(r)]
    r = rng("textvqa")
    textvqa = [make_textvqa(r) for _ in range(TEXTVQA_SIZE)]
    r = rng("docvqa")
    docvqa: list[QA] = []
    pages = [form_page(r) for _ in range(DOCVQA_PAGES)]
    while len(docvqa) < DOCVQA_QUESTIONS:
        for page in pages:
            if len(docvqa) == DOCVQA_QUESTIONS:
                break
            docvqa.append(make_docvqa(r, page, r.randrange(len(FORM_FIELDS))))
    docvqa = list(dict.fromkeys(docvqa))  # a page asked the same field twice counts once
    r = rng("ocr")
    ocr = [replace(make_textvqa(r), family="ocr", category=OCR_WORD_CATEGORY) for _ in range(OCR_WORDS)]
    ocr += [replace(make_docvqa(r), family="ocr", category=OCR_FORM_CATEGORY) for _ in range(OCR_FORMS)]
    return EvalSplit(tuple(vqa), tuple(mcq), tuple(yesno), tuple(textvqa), tuple(docvqa), tuple(ocr))


# ---------------------------------------------------------------- encoding


def encode(spec: ImageSpec) -> bytes:
    """The stored bytes of an image: JPEG for TextVQA word cards (as the real set), PNG otherwise."""
    img = render(spec)
    buf = io.BytesIO()
    if isinstance(spec, WordCard):
        img.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False, subsampling=2)
    else:
        img.save(buf, format="PNG", optimize=False, compress_level=9)
    return buf.getvalue()


def stored_image(spec: ImageSpec) -> Image:
    """The image as a reader of the stored file sees it (JPEG artefacts included)."""
    from PIL import Image as PILImage

    if not isinstance(spec, WordCard):
        return render(spec)
    with PILImage.open(io.BytesIO(encode(spec))) as img:
        return img.convert("RGB")


def _b64(spec: ImageSpec) -> str:
    return base64.b64encode(encode(spec)).decode("ascii")


# ---------------------------------------------------------------- writers


def _write_vqa(root: Path, rows: tuple[QA, ...]) -> int:
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for n, qa in enumerate(rows, start=1):
        sid = f"vqa-{n:04d}"
        names = (
            [f"images/{sid}.png"] if len(qa.images) == 1 else [f"images/{sid}-{i + 1}.png" for i in range(2)]
        )
        for name, spec in zip(names, qa.images, strict=True):
            (root / name).write_bytes(encode(spec))
        record: dict[str, object] = {"id": sid, "question": qa.question}
        if qa.parts is not None:
            record["content"] = [
                {"type": "image", "image": names[p]} if isinstance(p, int) else {"type": "text", "text": p}
                for p in qa.parts
            ]
        elif len(names) == 1:
            record["image"] = names[0]
        else:
            record["images"] = names
        record.update({"answers": list(qa.references), "category": qa.category, "split": "eval"})
        lines.append(json.dumps(record, ensure_ascii=False))
    (root / "demo_vqa.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def _write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        writer.writerows(rows)


def _write_mcq(root: Path, bases: tuple[QA, ...]) -> int:
    header = [
        "index",
        "image",
        "question",
        "hint",
        "A",
        "B",
        "C",
        "D",
        "answer",
        "category",
        "l2-category",
        "split",
    ]
    rows = []
    for n, base in enumerate(bases, start=1):
        image = _b64(base.images[0])
        for k, qa in enumerate(circular_copies(base)):
            options = dict(qa.choices)
            rows.append(
                [
                    str(n + 1_000_000 * k),
                    image,
                    qa.question,
                    qa.hint,
                    *(options.get(letter, "") for letter in "ABCD"),
                    qa.answer,
                    qa.category,
                    "perception",
                    "dev",
                ]
            )
    # Base questions first, then each rotation, as MMBench orders them.
    rows.sort(key=lambda row: int(row[0]))
    _write_tsv(root / "demo_mcq.tsv", header, rows)
    return len(rows)


def _write_yesno(root: Path, pairs: tuple[QA, ...]) -> int:
    rows = []
    for n, qa in enumerate(pairs, start=1):
        # The second question of a pair points at the first row's index: VLMEvalKit's "same image".
        image = _b64(qa.images[0]) if n % 2 == 1 else str(n - 1)
        rows.append([str(n), image, qa.question, qa.answer, qa.category])
    _write_tsv(root / "demo_yesno.tsv", ["index", "image", "question", "answer", "category"], rows)
    return len(rows)


def _write_textvqa(root: Path, rows: tuple[QA, ...], seed: int) -> int:
    folder = root / "textvqa"
    (folder / "train_images").mkdir(parents=True, exist_ok=True)
    ids = random.Random(f"{seed}:textvqa-ids")
    data = []
    for n, qa in enumerate(rows):
        image_id = f"{ids.getrandbits(64):016x}"
        (folder / "train_images" / f"{image_id}.jpg").write_bytes(encode(qa.images[0]))
        data.append(
            {
                "question": qa.question,
                "image_id": image_id,
                "image_classes": ["Sign", "Poster"],
                "flickr_original_url": "",
                "flickr_300k_url": "",
                "image_width": 224,
                "image_height": 224,
                "answers": list(qa.references),
                "question_tokens": qa.question.rstrip("?").split(),
                "question_id": TEXTVQA_FIRST_QID + n,
                "set_name": "val",
            }
        )
    doc = {"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": data}
    (folder / "TextVQA_0.5.1_val.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return len(data)


def _write_docvqa(root: Path, rows: tuple[QA, ...]) -> int:
    folder = root / "docvqa"
    (folder / "documents").mkdir(parents=True, exist_ok=True)
    page_ids: dict[ImageSpec, int] = {}
    data = []
    for n, qa in enumerate(rows):
        page = qa.images[0]
        if page not in page_ids:
            page_ids[page] = len(page_ids) + 1
            (folder / "documents" / f"demo{page_ids[page]:04d}_p1.png").write_bytes(encode(page))
        doc_id = page_ids[page]
        data.append(
            {
                "questionId": DOCVQA_FIRST_QID + n,
                "question": qa.question,
                "question_types": ["form"],
                "image": f"documents/demo{doc_id:04d}_p1.png",
                "docId": doc_id,
                "ucsf_document_id": f"demo{doc_id:04d}",
                "ucsf_document_page_no": "1",
                "answers": list(qa.references),
                "data_split": "val",
            }
        )
    doc = {"dataset_name": "docvqa", "dataset_split": "val", "dataset_version": "1.0", "data": data}
    (folder / "val_v1.0_withQT.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return len(data)


def _write_ocr(root: Path, rows: tuple[QA, ...]) -> int:
    # OCRBench keeps the accepted answers as a Python-literal list in one column.
    table = [
        [str(n), _b64(qa.images[0]), qa.question, repr([qa.answer]), qa.category]
        for n, qa in enumerate(rows, start=1)
    ]
    _write_tsv(root / "demo_ocr.tsv", ["index", "image", "question", "answer", "category"], table)
    return len(table)


def write_demo_data(root: Path, seed: int = EVAL_SEED) -> dict[str, int]:
    """Write the five demo eval datasets under ``root``; returns the number of rows per dataset."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    split = eval_split(seed)
    return {
        "demo_vqa": _write_vqa(root, split.vqa),
        "demo_mcq": _write_mcq(root, split.mcq),
        "demo_yesno": _write_yesno(root, split.yesno),
        "textvqa": _write_textvqa(root, split.textvqa, seed),
        "docvqa": _write_docvqa(root, split.docvqa),
        "demo_ocr": _write_ocr(root, split.ocr),
    }
