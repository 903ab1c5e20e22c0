"""Grouping on rows laid out as VLMEvalKit's released TSVs are, checked against its reference rules.

* MME (``vlmeval/dataset/utils/yorn.py``, ``MME_rating``): the two questions of an image are paired by
  ``(category, image_path)``. In the released MME.tsv a question's ``image`` cell holds base64 or the
  ``index`` of a row holding the same image; that back-reference is not the pairing key.
* MMBench circular evaluation (``vlmeval/dataset/image_mcq.py`` / ``utils/multiple_choice.py``): rotated
  copies of question i are written as index ``i + k * 10**6`` and grouped by ``index % 10**6``, never by
  image: two questions sharing an image are two groups.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_omnilmm.datasets import load_dataset
from pytest_omnilmm.metrics.aggregate import ScoredRow, dataset_aggregates

from .test_datasets import BLUE, GREEN, RED, b64png, by_id, write_tsv

MME_HEADER = ["index", "category", "image_path", "question", "answer", "image"]


def _rows(samples: dict, values: dict[str, float]) -> list[ScoredRow]:
    return [
        ScoredRow(sample_id=i, value=v, group=samples[i].group, category=samples[i].category)
        for i, v in values.items()
    ]


def test_mme_pairs_by_category_and_image_path_not_by_back_reference(tmp_path: Path) -> None:
    red, green = b64png(RED), b64png(GREEN)
    path = write_tsv(
        tmp_path / "MME.tsv",
        MME_HEADER,
        [
            # color/1.jpg: both questions carry the image themselves (no back-reference)
            [1, "color", "color/1.jpg", "Is it red? Please answer yes or no.", "Yes", red],
            [2, "color", "color/1.jpg", "Is it blue? Please answer yes or no.", "No", red],
            # count/2.jpg is the same picture: its rows point back at row 1, the first row holding it
            [3, "count", "count/2.jpg", "Is there one square? Please answer yes or no.", "Yes", "1"],
            [4, "count", "count/2.jpg", "Are there two squares? Please answer yes or no.", "No", "1"],
            # color/3.jpg: a second image of the category, its second question pointing back
            [5, "color", "color/3.jpg", "Is it green? Please answer yes or no.", "Yes", green],
            [6, "color", "color/3.jpg", "Is it red? Please answer yes or no.", "No", "5"],
        ],
    )
    samples = by_id(load_dataset(path, name="mme"))
    right = {"1": 1.0, "2": 0.0, "3": 1.0, "4": 1.0, "5": 1.0, "6": 1.0}
    agg = dataset_aggregates("mme", _rows(samples, right), n_boot=200)
    # By hand, MME_rating: per category acc*100 + acc_plus*100 (acc_plus over its images).
    # color: acc 3/4 = 75, acc+ 1/2 (color/3.jpg) = 50 -> 125; count: 100 + 100 -> 200; total 325.
    assert agg["score/color"].mean == pytest.approx(125.0)
    assert agg["score/count"].mean == pytest.approx(200.0)
    assert agg["score"].mean == pytest.approx(325.0)
    assert agg["acc"].mean == pytest.approx(5 / 6)
    assert agg["acc_plus"].mean == pytest.approx(2 / 3) and agg["acc_plus"].n == 3


def test_mme_without_image_path_pairs_by_the_resolved_image(tmp_path: Path) -> None:
    red, blue = b64png(RED), b64png(BLUE)
    path = write_tsv(
        tmp_path / "MME.tsv",
        ["index", "category", "question", "answer", "image"],
        [
            [1, "color", "Is it red? Please answer yes or no.", "Yes", red],
            [2, "color", "Is it blue? Please answer yes or no.", "No", red],  # its own copy of the image
            [3, "color", "Is it blue? Please answer yes or no.", "Yes", blue],
            [4, "color", "Is it red? Please answer yes or no.", "No", "3"],
        ],
    )
    samples = by_id(load_dataset(path, name="mme"))
    assert samples["1"].group == samples["2"].group != samples["3"].group == samples["4"].group
    agg = dataset_aggregates("mme", _rows(samples, {"1": 1.0, "2": 1.0, "3": 1.0, "4": 0.0}), n_boot=200)
    assert agg["acc_plus"].mean == pytest.approx(0.5) and agg["score"].mean == pytest.approx(75 + 50)

    # and the run's summary says the pairing fell back to the image (issue 13: "say so in the summary")
    from pytest_omnilmm.records import Record
    from pytest_omnilmm.results.summary import build_summary

    def record(sid: str, with_path: bool) -> Record:
        group = f"image_path:x/{sid}.jpg" if with_path else samples[sid].group
        return Record(
            sid, "mme", "base", "", "fp", "k", "h", "s", "Yes", scores={"mme": 1.0}, metric="mme", group=group
        )

    hashed = build_summary([record(i, False) for i in samples], {"checkpoints": {}}, "run")["results"][0]
    assert "no image_path column" in hashed["notes"][0]
    pathed = build_summary([record(i, True) for i in samples], {"checkpoints": {}}, "run")["results"][0]
    assert "notes" not in pathed


def test_mmbench_circular_groups_by_index_not_by_shared_image(tmp_path: Path) -> None:
    header = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "l2-category"]
    img = b64png(RED)
    rows = [
        [1, "What colour is it?", "nan", "red", "blue", "green", "nan", "A", "attribute", img, "fine"],
        # another question on the same picture: its image cell points back at row 1
        [2, "What shape is it?", "nan", "square", "circle", "nan", "nan", "A", "attribute", "1", "fine"],
        [1000001, "What colour is it?", "nan", "blue", "green", "red", "nan", "C", "attribute", "1", "fine"],
        [2000001, "What colour is it?", "nan", "green", "red", "blue", "nan", "B", "attribute", "1", "fine"],
        [
            1000002,
            "What shape is it?",
            "nan",
            "circle",
            "square",
            "nan",
            "nan",
            "B",
            "attribute",
            "1",
            "fine",
        ],
    ]
    samples = by_id(load_dataset(write_tsv(tmp_path / "MMBench_DEV_EN.tsv", header, rows), name="mmbench"))
    assert {i: s.group for i, s in samples.items()} == {
        "1": "1",
        "1000001": "1",
        "2000001": "1",
        "2": "2",
        "1000002": "2",
    }
    # question 1 right in every rotation, question 2 wrong in one: circular 1/2 (merged by image: 0/1).
    values = {"1": 1.0, "1000001": 1.0, "2000001": 1.0, "2": 1.0, "1000002": 0.0}
    agg = dataset_aggregates("mcq", _rows(samples, values), n_boot=200)
    assert agg["circular_accuracy"].mean == pytest.approx(0.5) and agg["circular_accuracy"].n == 2
    assert agg["vanilla_accuracy"].mean == pytest.approx(1.0) and agg["vanilla_accuracy"].n == 2


def test_ocrbench_reports_vlmevalkit_counts(tmp_path: Path) -> None:
    """OCRBench.evaluate: Text Recognition = right answers in the six recognition categories, Final Score
    = right answers overall (a count, not a mean), Final Score Norm = Final Score / 10."""
    from pytest_omnilmm.metrics.ocrbench import ocrbench

    img = b64png(RED)
    rows = [
        [0, img, "What is written?", "['STOP']", "Regular Text Recognition"],
        [1, "0", "What is written?", "['exit']", "Artistic Text Recognition"],
        [2, img, "What digits?", "['0042']", "Digit String Recognition"],
        [3, img, "What is the title?", "['Annual report']", "Doc-oriented VQA"],
        [4, img, "Whose name?", "['Ann Lee']", "Key Information Extraction"],
        [5, img, "Write the formula.", "['x^{2}+1']", "Handwritten Mathematical Expression Recognition"],
    ]
    header = ["index", "image", "question", "answer", "category"]
    samples = by_id(load_dataset(write_tsv(tmp_path / "OCRBench.tsv", header, rows), name="ocrbench"))
    predictions = {
        "0": "It says stop.",  # contains "stop": right
        "1": "exlt",  # wrong
        "2": "0042",  # right
        "3": "The Annual Report 2020",  # right (case-insensitive containment)
        "4": "Lee",  # wrong
        "5": "x ^ {2} + 1",  # right: spaces removed on both sides
    }
    values = {i: ocrbench(p, samples[i].references, samples[i].category) for i, p in predictions.items()}
    agg = dataset_aggregates("ocrbench", _rows(samples, values), n_boot=200)
    assert agg["Text Recognition"].mean == pytest.approx(2)
    assert agg["Final Score"].mean == pytest.approx(4)
    assert agg["Final Score Norm"].mean == pytest.approx(0.4)
    assert agg["ocrbench"].mean == pytest.approx(4 / 6)  # the headline stays the mean in [0, 1]


def _docvqa(path: Path, images: list[str]) -> Path:
    import json

    items = [
        {
            "questionId": 100 + i,
            "question": "What is the title?",
            "image": rel,
            "docId": i,
            "answers": ["Annual report"],
            "question_types": ["layout"],
            "data_split": "val",
        }
        for i, rel in enumerate(images)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"dataset_name": "docvqa", "dataset_split": "val", "data": items}))
    return path


def test_docvqa_as_released_finds_images_in_the_sibling_images_folder(tmp_path: Path) -> None:
    from PIL import Image

    # spdocvqa_qas/val_v1.0_withQT.json names documents/x.png; the pages are in spdocvqa_images/documents/.
    pages = tmp_path / "spdocvqa_images" / "documents"
    pages.mkdir(parents=True)
    Image.new("RGB", (20, 10), RED).save(pages / "p1.png")
    qas = _docvqa(
        tmp_path / "spdocvqa_qas" / "val_v1.0_withQT.json", ["documents/p1.png", "documents/gone.png"]
    )
    found, missing = load_dataset(qas, name="docvqa")
    assert found.images[0].path == pages / "p1.png"
    assert found.images[0].read_bytes()[:4] == b"\x89PNG"
    # A missing page fails that sample alone, naming every place tried.
    from pytest_omnilmm.sample import SampleError

    with pytest.raises(SampleError) as info:
        missing.images[0].read_bytes()
    message = str(info.value)
    for tried in (
        tmp_path / "spdocvqa_qas" / "documents" / "gone.png",
        tmp_path / "documents" / "gone.png",
        tmp_path / "spdocvqa_images" / "documents" / "gone.png",
    ):
        assert str(tried) in message
    assert "--data NAME=PATH,images=DIR" in message


def test_docvqa_images_elsewhere_with_an_image_root(tmp_path: Path) -> None:
    from PIL import Image

    from pytest_omnilmm.config import parse_data

    elsewhere = tmp_path / "scans"
    (elsewhere / "documents").mkdir(parents=True)
    Image.new("RGB", (20, 10), GREEN).save(elsewhere / "documents" / "p1.png")
    qas = _docvqa(tmp_path / "qas" / "val.json", ["documents/p1.png"])
    data, images = parse_data([f"docvqa={qas},images=scans", "textvqa=t.json"], base=tmp_path)
    assert data == {"docvqa": qas, "textvqa": tmp_path / "t.json"} and images == {"docvqa": elsewhere}
    (sample,) = load_dataset(qas, name="docvqa", image_root=images["docvqa"])
    assert sample.images[0].path == elsewhere / "documents" / "p1.png"
