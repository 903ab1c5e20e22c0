"""The dataset readers on real files built in tmp_path: valid files of every format, and each broken one."""

from __future__ import annotations

import base64
import csv
import io
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pytest_omnilmm.datasets import (
    FORMATS,
    DatasetError,
    DatasetWarning,
    iter_dataset,
    load_dataset,
    sniff_format,
)
from pytest_omnilmm.sample import ImageRef, Sample, SampleError, Text


def png(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (12, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def b64png(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (12, 10)) -> str:
    return base64.b64encode(png(color, size)).decode("ascii")


RED, GREEN, BLUE = (200, 30, 30), (30, 200, 30), (30, 30, 200)


def write_tsv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, objects: list[Any]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    return path


def pixel(ref: ImageRef) -> tuple[int, int, int]:
    return ref.load().getpixel((0, 0))


def by_id(samples: list[Sample]) -> dict[str, Sample]:
    return {s.id: s for s in samples}


def error_of(path: Path, **kwargs: Any) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        load_dataset(path, name="d", **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return info.value


@pytest.fixture
def count_decodes(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts PIL.Image.open calls (the real function still runs)."""
    calls = {"open": 0}
    real_open = Image.open

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls["open"] += 1
        return real_open(*args, **kwargs)

    monkeypatch.setattr(Image, "open", counted)
    return calls


# --- native JSONL -----------------------------------------------------------------------------------------


def test_jsonl_reads_every_field_and_keeps_the_part_order(
    tmp_path: Path, count_decodes: dict[str, int]
) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "red.png").write_bytes(png(RED))
    (tmp_path / "img" / "blue.png").write_bytes(png(BLUE))
    path = tmp_path / "data.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps(
                    {"id": "q1", "question": "Colour?", "image": "img/red.png", "answers": ["red", "Red"]}
                ),
                "",
                "   ",
                json.dumps(
                    {
                        "id": 2,
                        "text": "Which one?",
                        "images": ["img/red.png", "img/blue.png"],
                        "answer": "B",
                        "choices": ["a red square", "a blue square"],
                        "category": "colour",
                        "split": "dev",
                        "group": 7,
                        "source": "handmade",
                    }
                ),
                json.dumps(
                    {
                        "id": "q3",
                        "content": [
                            {"type": "text", "text": "Compare"},
                            {"type": "image", "image": "img/blue.png"},
                            {"type": "text", "text": "with"},
                            {"type": "image", "image": "img/red.png"},
                        ],
                        "choices": {"A": "same", "B": "different"},
                        "answers": ["B"],
                    }
                ),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    samples = load_dataset(path, name="mine")
    assert [s.id for s in samples] == ["q1", "2", "q3"]
    q1, q2, q3 = samples
    assert all(s.dataset == "mine" for s in samples)
    assert isinstance(q1.parts[0], ImageRef) and q1.parts[1] == Text("Colour?")
    assert q1.references == ("red", "Red") and q1.choices == () and q1.group is None
    assert q2.choices == (("A", "a red square"), ("B", "a blue square"))
    assert q2.references == ("B",)
    assert (q2.category, q2.split, q2.group) == ("colour", "dev", "7")
    assert q2.metadata["source"] == "handmade" and q2.metadata["question"] == "Which one?"
    assert [type(p).__name__ for p in q3.parts] == ["Text", "ImageRef", "Text", "ImageRef"]
    assert q3.text == "Compare\nwith"
    assert count_decodes["open"] == 0  # nothing decoded while reading
    assert pixel(q2.images[1]) == BLUE and pixel(q3.images[0]) == BLUE and pixel(q3.images[1]) == RED
    assert q1.images[0].path == tmp_path / "img" / "red.png"


def test_jsonl_image_root_overrides_the_file_directory(tmp_path: Path) -> None:
    root = tmp_path / "elsewhere"
    root.mkdir()
    (root / "a.png").write_bytes(png(GREEN))
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "question": "?", "image": "a.png"}])
    (sample,) = load_dataset(path, name="d", image_root=root)
    assert pixel(sample.images[0]) == GREEN


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ({"question": "no id"}, "id", "missing 'id'"),
        ({"id": "a b", "question": "?"}, "id", "whitespace"),
        ({"id": 1.5, "question": "?"}, "id", "string or an integer"),
        ({"id": "x"}, "question", "missing 'question'"),
        ({"id": "x", "question": 3}, "question", "expected a string"),
        ({"id": "x", "question": "?", "images": "a.png"}, "images", "list of image paths"),
        ({"id": "x", "question": "?", "image": "a.png", "images": []}, "images", "not both"),
        (
            {"id": "x", "content": [{"type": "text", "text": "a"}, {"type": "video"}]},
            "content[1]",
            "each part",
        ),
        ({"id": "x", "question": "?", "answers": [{"a": 1}]}, "answers", "strings"),
        ({"id": "x", "question": "?", "choices": "A or B"}, "choices", "expected"),
        ({"id": "x", "question": "?", "image": "a\x00.png"}, "image", "NUL"),
    ],
)
def test_jsonl_bad_sample_names_line_and_field(
    tmp_path: Path, line: dict[str, Any], field: str, words: str
) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": "ok", "question": "fine"}, line])
    good, bad = load_dataset(path, name="d")  # the bad line fails alone; the good one runs
    assert (good.id, bad.id) == ("ok", "line2")
    message = row_problem(bad)
    assert message.startswith(str(path))
    assert f"line 2, field {field!r}" in message and words in message


def test_jsonl_syntax_errors_and_non_objects_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "question": "?"}\n{"id": "b", "question": \n', encoding="utf-8")
    _, bad = load_dataset(path, name="d")
    assert bad.id == "line2" and "line 2" in row_problem(bad) and "not valid JSON" in row_problem(bad)
    path.write_text('["not", "an", "object"]\n{"id": "a", "question": "?"}\n', encoding="utf-8")
    bad, good = load_dataset(path, name="d")  # a bad first line is kept once a good line follows
    assert (bad.id, good.id) == ("line1", "a") and "expected a JSON object" in row_problem(bad)
    # No readable line at all: not JSONL, the whole file is refused in one line.
    path.write_text('["not", "an", "object"]\n{"id": \n', encoding="utf-8")
    err = error_of(path)
    assert err.row == 1 and "expected a JSON object" in str(err)


def test_jsonl_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [{"id": 5, "question": "a"}, {"id": "x", "question": "b"}, {"id": "5", "question": "c"}],
    )
    err = error_of(path)
    assert (err.row, err.field) == (3, "id")
    assert "duplicate id '5' (first on line 1)" in str(err)


def test_jsonl_not_utf8_says_line_and_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    first = b'{"id": "a", "question": "caf\xc3\xa9"}\n'
    path.write_bytes(first + b'{"id": "b", "question": "caf\xe9"}\n')
    err = error_of(path)
    assert err.row == 2
    offset = len(first) + len(b'{"id": "b", "question": "caf')
    assert f"line 2: not valid UTF-8 at byte offset {offset}" in str(err)


def test_jsonl_limit_rows_and_streaming(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": i, "question": "?"} for i in range(5)] + ["broken"])
    assert [s.id for s in load_dataset(path, name="d", limit_rows=3)] == ["0", "1", "2"]
    stream = iter_dataset(path, name="d")
    assert next(stream).id == "0"  # the first samples arrive before the broken last line is read
    rest = list(stream)
    assert [s.id for s in rest] == ["1", "2", "3", "4", "line6"]
    assert "line 6" in row_problem(rest[-1])


# --- VLMEvalKit TSV ---------------------------------------------------------------------------------------

MCQ_HEADER = [
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


def test_tsv_multiple_choice_columns(tmp_path: Path, count_decodes: dict[str, int]) -> None:
    path = write_tsv(
        tmp_path / "MMBench_DEV_EN.tsv",
        [*MCQ_HEADER, "comment"],
        [
            [
                0,
                b64png(RED),
                "What colour is it?",
                "nan",
                "red",
                "blue",
                "",
                "",
                "A",
                "attr",
                "colour",
                "dev",
                "x",
            ],
            [
                1,
                b64png(BLUE),
                "And this?",
                "A hint.",
                "red",
                "N/A",
                "blue",
                "green",
                "C",
                "attr",
                "colour",
                "dev",
                "",
            ],
        ],
    )
    first, second = load_dataset(path, name="mmbench")
    assert first.id == "0" and first.dataset == "mmbench"
    assert first.choices == (("A", "red"), ("B", "blue"))  # empty option cells are no option
    assert second.choices == (("A", "red"), ("C", "blue"), ("D", "green"))  # "N/A" is NaN for pandas
    assert first.references == ("A",) and second.references == ("C",)
    assert (first.category, first.split, first.group) == ("attr", "dev", "0")
    assert first.metadata["hint"] is None and second.metadata["hint"] == "A hint."
    assert first.metadata["question"] == "What colour is it?"
    assert first.metadata["l2-category"] == "colour" and first.metadata["comment"] == "x"
    assert "image" not in first.metadata and "A" not in first.metadata
    assert isinstance(first.parts[0], ImageRef) and first.parts[1] == Text("What colour is it?")
    assert count_decodes["open"] == 0
    assert pixel(first.images[0]) == RED and pixel(second.images[0]) == BLUE
    assert "MMBench_DEV_EN.tsv row 2 (line 3, index '1'), column 'image'" in second.images[0].origin


def test_tsv_image_references_share_one_image_and_one_group(tmp_path: Path) -> None:
    red = b64png(RED)
    path = write_tsv(
        tmp_path / "MME.tsv",
        ["index", "image", "question", "answer", "category"],
        [
            ["q0", "q1", "Is it red? Please answer yes or no.", "Yes", "color"],  # refers forward
            ["q1", red, "Is it blue? Please answer yes or no.", "No", "color"],
            ["q2", "q1", "Is it a square?", "Yes", "shape"],
        ],
    )
    samples = by_id(load_dataset(path, name="mme"))
    assert samples["q0"].images[0].b64 is samples["q1"].images[0].b64  # the same string, not a copy
    assert pixel(samples["q2"].images[0]) == RED
    # No image_path column: grouped by the resolved image's content (MME_rating's image_path stand-in).
    assert len({s.group for s in samples.values()}) == 1
    assert "(the image of index 'q1')" in samples["q0"].images[0].origin
    assert samples["q1"].references == ("No",)


def test_tsv_circular_copies_group_with_their_question(tmp_path: Path) -> None:
    path = write_tsv(
        tmp_path / "MMBench.tsv",
        ["index", "image", "question", "A", "B", "answer"],
        [
            [12, b64png(), "Q?", "x", "y", "A"],
            [1000012, "12", "Q?", "y", "x", "B"],
            [2000012, b64png(GREEN), "Q?", "x", "y", "A"],
            [13, b64png(), "R?", "x", "y", "A"],
        ],
    )
    groups = {s.id: s.group for s in load_dataset(path, name="d")}
    assert groups == {"12": "12", "1000012": "12", "2000012": "12", "13": "13"}


def test_tsv_image_lists_and_list_answers(tmp_path: Path) -> None:
    two = str([b64png(RED), b64png(GREEN)])  # VLMEvalKit writes Python reprs
    path = write_tsv(
        tmp_path / "d.tsv",
        ["index", "image", "question", "answer"],
        [[1, two, "Compare.", "['red and green', 'green and red']"], [2, "1", "Again.", "[unclosed"]],
    )
    first, second = load_dataset(path, name="d")
    assert [pixel(i) for i in first.images] == [RED, GREEN]
    assert first.references == ("red and green", "green and red")
    assert len(second.images) == 2 and second.group == first.group
    assert second.references == ("[unclosed",)  # not a list: taken as the string it is
    assert first.images[1].origin.endswith("column 'image'[1]")


def test_tsv_image_path_relative_to_the_tsv_or_image_root(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(png(BLUE))
    path = write_tsv(
        tmp_path / "d.tsv",
        ["index", "image_path", "question"],
        [[1, "imgs/a.png", "?"], [2, "['imgs/a.png', 'imgs/a.png']", "?"]],
    )
    first, second = load_dataset(path, name="d")
    assert first.images[0].path == tmp_path / "imgs" / "a.png" and pixel(first.images[0]) == BLUE
    assert len(second.images) == 2
    root = tmp_path / "imgs"
    write_tsv(path, ["index", "image_path", "question"], [[1, "a.png", "?"]])
    (sample,) = load_dataset(path, name="d", image_root=root)
    assert pixel(sample.images[0]) == BLUE


def test_tsv_image_column_wins_over_image_path_and_empty_image_falls_back(tmp_path: Path) -> None:
    (tmp_path / "b.png").write_bytes(png(BLUE))
    path = write_tsv(
        tmp_path / "d.tsv",
        ["index", "image", "image_path", "question"],
        [[1, b64png(RED), "b.png", "?"], [2, "", "b.png", "?"]],
    )
    first, second = load_dataset(path, name="d")
    assert pixel(first.images[0]) == RED and first.metadata["image_path"] == "b.png"
    assert pixel(second.images[0]) == BLUE


def test_tsv_rows_without_any_image_are_skipped_with_a_warning(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "d.tsv", ["index", "image", "question"], [[1, b64png(), "?"], [2, "", "?"]])
    with pytest.warns(DatasetWarning, match=r"1 row\(s\) have neither.*row 2 \(line 3, index '2'\)"):
        samples = load_dataset(path, name="d")
    assert [s.id for s in samples] == ["1"]


def test_tsv_field_over_the_csv_default_limit(tmp_path: Path) -> None:
    big = b64png(size=(400, 400))
    noise = base64.b64encode(bytes(range(256)) * 600).decode()  # > 131,072 characters
    assert len(noise) > 131_072
    path = write_tsv(tmp_path / "d.tsv", ["index", "image", "question"], [[1, noise, "?"], [2, big, "?"]])
    first, second = load_dataset(path, name="d")
    assert first.images[0].b64 == noise and second.images[0].load().size == (400, 400)


def test_tsv_missing_columns_are_named_with_the_columns_found(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "d.tsv", ["id", "picture", "question"], [[1, "x", "?"]])
    err = error_of(path)
    assert err.field == "index, image (or image_path)" and err.row is None
    assert "missing required column(s) index, image (or image_path)" in str(err)
    assert "found columns 'id', 'picture', 'question'" in str(err)


def test_tsv_duplicate_index_names_both_rows(tmp_path: Path) -> None:
    path = write_tsv(
        tmp_path / "d.tsv", ["index", "image", "question"], [[7, b64png(), "a"], [8, "7", "b"], [7, "7", "c"]]
    )
    err = error_of(path)
    assert (err.row, err.field) == (3, "index")
    assert "row 3 (line 4, index '7'), column 'index': duplicate index '7' (also row 1)" in str(err)


def row_problem(sample: Sample) -> str:
    """The one line a sample built from an unreadable row fails with (when its image is read)."""
    with pytest.raises(SampleError) as info:
        sample.images[0].read_bytes()
    message = str(info.value)
    assert "\n" not in message and "object at 0x" not in message
    return message


def test_tsv_reference_to_a_missing_index_fails_that_row_alone(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "d.tsv", ["index", "image", "question"], [[1, b64png(), "a"], [2, "99", "b"]])
    good, bad = load_dataset(path, name="d")
    assert pixel(good.images[0]) == (200, 30, 30)  # the other row is read and runs
    message = row_problem(bad)
    assert bad.id == "2" and message.startswith(str(path))
    assert "row 2 (line 3, index '2'): column 'image': '99' is too short to be a base64 image" in message
    assert "no row has that index" in message


def test_tsv_reference_to_a_row_without_image_fails_that_row_alone(tmp_path: Path) -> None:
    path = write_tsv(
        tmp_path / "d.tsv",
        ["index", "image", "question"],
        [[1, b64png(), "a"], [2, "1", "b"], [3, "2", "c"], [4, "4", "self"]],
    )
    samples = by_id(load_dataset(path, name="d"))
    assert set(samples) == {"1", "2", "3", "4"}
    assert pixel(samples["2"].images[0]) == (200, 30, 30)
    assert "row 3 (line 4, index '3')" in row_problem(samples["3"])
    assert "refers on to '1'" in row_problem(samples["3"])
    assert "row 4 (line 5, index '4')" in row_problem(samples["4"])


def test_tsv_bad_base64_fails_only_that_sample_when_loaded(tmp_path: Path) -> None:
    path = write_tsv(
        tmp_path / "d.tsv",
        ["index", "image", "question"],
        [
            [1, b64png(RED), "a"],
            [2, "this is not base64 at all, not even close, and long enough to be one!!", "b"],
        ],
    )
    good, bad = load_dataset(path, name="d")  # reading succeeds: nothing is decoded yet
    assert pixel(good.images[0]) == RED
    with pytest.raises(
        SampleError, match=r"not valid base64 \(.*d\.tsv row 2 \(line 3, index '2'\), column 'image'\)"
    ):
        bad.images[0].load()


def test_tsv_missing_or_corrupt_image_file_fails_only_that_sample(tmp_path: Path) -> None:
    (tmp_path / "ok.png").write_bytes(png(GREEN))
    (tmp_path / "cut.png").write_bytes(png(GREEN, (64, 64))[:60])
    path = write_tsv(
        tmp_path / "d.tsv",
        ["index", "image_path", "question"],
        [[1, "ok.png", "a"], [2, "gone.png", "b"], [3, "cut.png", "c"]],
    )
    ok, gone, cut = load_dataset(path, name="d")
    assert pixel(ok.images[0]) == GREEN
    with pytest.raises(SampleError, match=r"cannot read image .*gone\.png \(.*row 2 .*column 'image_path'\)"):
        gone.images[0].load()
    with pytest.raises(SampleError, match=r"cut\.png cannot be decoded"):
        cut.images[0].load()


def test_tsv_not_utf8_says_line_and_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    head = b"index\timage\tquestion\n"
    before = b"1\timg\tna"
    path.write_bytes(head + before + b"\xefve?\n")
    err = error_of(path)
    assert err.row == 2
    assert f"line 2: not valid UTF-8 at byte offset {len(head) + len(before)}" in str(err)


def test_tsv_structural_errors_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    path.write_text("index\timage\tquestion\n1\tAAAA\tq\textra\n", encoding="utf-8")
    err = error_of(path)
    assert err.row == 1 and "has 4 fields but the header has 3 columns" in str(err)
    path.write_text("", encoding="utf-8")
    assert "empty file" in str(error_of(path))
    path.write_text("index\tindex\timage\tquestion\n", encoding="utf-8")
    assert "['index'] more than once" in str(error_of(path))
    path.write_text("index\timage\tquestion\n\tAAAA\tq\n", encoding="utf-8")
    err = error_of(path)
    assert err.field == "index" and "id is empty" in str(err)


def test_tsv_quoted_fields_blank_lines_crlf_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    image = b64png()
    quoted = '"two\tlines\nwith ""quotes"""'
    text = f"\ufeffindex\timage\tquestion\r\n1\t{image}\t{quoted}\r\n\r\n2\t{image}\tplain\r\n"
    path.write_text(text, encoding="utf-8", newline="")
    first, second = load_dataset(path, name="d")
    assert first.metadata["question"] == 'two\tlines\nwith "quotes"'
    assert second.id == "2" and second.text == "plain"
    assert "row 2 (line 5, index '2')" in second.images[0].origin  # a quoted newline spans lines


def test_tsv_limit_rows_still_resolves_references_beyond_the_limit(tmp_path: Path) -> None:
    path = write_tsv(
        tmp_path / "d.tsv",
        ["index", "image", "question"],
        [[1, "3", "a"], [2, b64png(), "b"], [3, b64png(BLUE), "c"], [4, "99", "broken but unread"]],
    )
    samples = load_dataset(path, name="d", limit_rows=2)
    assert [s.id for s in samples] == ["1", "2"]
    assert pixel(samples[0].images[0]) == BLUE
    assert load_dataset(path, name="d", limit_rows=0) == []


# --- TextVQA ----------------------------------------------------------------------------------------------


def textvqa_document(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": items}


def textvqa_item(qid: int, image_id: str, answers: list[str] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "question_id": qid,
        "image_id": image_id,
        "question": f"what is written on sign {qid}?",
        "image_classes": ["Sign"],
        "set_name": "val",
    }
    if answers is not None:
        item["answers"] = answers
    return item


def test_textvqa_reads_questions_answers_and_images(tmp_path: Path) -> None:
    (tmp_path / "train_images").mkdir()
    (tmp_path / "train_images" / "abc123.jpg").write_bytes(png(GREEN))
    ten = ["stop"] * 7 + ["stop sign"] * 3
    path = tmp_path / "TextVQA_0.5.1_val.json"
    items = [
        textvqa_item(34602, "abc123", ten),
        textvqa_item(34603, "abc123", ten),
        textvqa_item(5, "def", ten),
    ]
    path.write_text(json.dumps(textvqa_document(items)), encoding="utf-8")
    samples = load_dataset(path, name="textvqa")
    assert [s.id for s in samples] == ["34602", "34603", "5"]
    first = samples[0]
    assert first.references == tuple(ten) and first.split == "val" and first.group == "abc123"
    assert first.images[0].path == tmp_path / "train_images" / "abc123.jpg"
    assert pixel(first.images[0]) == GREEN  # the decoder reads content, not the extension
    assert first.metadata["image_classes"] == ["Sign"] and first.metadata["image_id"] == "abc123"
    assert first.metadata["question"] == first.text == "what is written on sign 34602?"
    assert {s.group for s in samples} == {"abc123", "def"}
    root = tmp_path / "mine"
    root.mkdir()
    assert load_dataset(path, name="t", image_root=root)[0].images[0].path == root / "abc123.jpg"


def test_textvqa_test_split_has_no_references_and_uses_test_images(tmp_path: Path) -> None:
    path = tmp_path / "TextVQA_0.5.1_test.json"
    item = textvqa_item(1, "img1")
    item["set_name"] = "test"
    path.write_text(json.dumps(textvqa_document([item])), encoding="utf-8")
    (sample,) = load_dataset(path, name="textvqa")
    assert sample.references == () and sample.images[0].path == tmp_path / "test_images" / "img1.jpg"


@pytest.mark.parametrize(
    ("content", "words", "row", "field"),
    [
        ('[{"question_id": 1}]', "expected an object with a 'data' list", None, None),
        ('{"questions": []}', "expected an object with a 'data' list", None, None),
        (
            '{"data": [{"question_id": 1, "image_id": "a", "question": "?"}, {"image_id": "b"}]}',
            "missing 'question_id'",
            1,
            "question_id",
        ),
        (
            '{"data": [{"question_id": 1, "image_id": "a", "question": "?", "answers": "x"}, 3]}',
            "expected an object per question",
            1,
            None,
        ),
        (
            '{"data": [{"question_id": 1, "image_id": "a", "question": "?"}, '
            '{"question_id": 1, "image_id": "b", "question": "?"}]}',
            "duplicate question_id '1' (also data[0])",
            1,
            "question_id",
        ),
        ('{"data": [\n{"question_id": 1,,}]}', "not valid JSON", 2, None),
    ],
)
def test_textvqa_broken_files(
    tmp_path: Path, content: str, words: str, row: int | None, field: str | None
) -> None:
    path = tmp_path / "TextVQA_0.5.1_val.json"
    path.write_text(content, encoding="utf-8")
    err = error_of(path)
    assert words in str(err) and (err.row, err.field) == (row, field)
    if field is not None:
        assert f"data[{row}], field {field!r}" in str(err)


def test_json_annotation_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "TextVQA_0.5.1_val.json"
    before = b'{"data": [\n{"question": "'
    path.write_bytes(before + b'\xff\xfe"}]}')
    err = error_of(path)
    assert err.row == 2 and f"line 2: not valid UTF-8 at byte offset {len(before)}" in str(err)


# --- DocVQA -----------------------------------------------------------------------------------------------


def docvqa_item(qid: int, image: str, answers: list[str] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "questionId": qid,
        "question": f"What is the date on page {qid}?",
        "question_types": ["layout", "others"],
        "image": image,
        "docId": 14465,
        "ucsf_document_id": "txpp0227",
        "ucsf_document_page_no": "10",
    }
    if answers is not None:
        item["answers"] = answers
    return item


def test_docvqa_val_and_test_files(tmp_path: Path) -> None:
    (tmp_path / "documents").mkdir()
    (tmp_path / "documents" / "p1.png").write_bytes(png(BLUE))
    val = tmp_path / "val_v1.0_withQT.json"
    items = [
        docvqa_item(49153, "documents/p1.png", ["1/8/93", "January 8, 1993"]),
        docvqa_item(3, "documents/p1.png", ["x"]),
    ]
    val.write_text(
        json.dumps({"dataset_name": "docvqa", "dataset_split": "val", "data": items}), encoding="utf-8"
    )
    first, second = load_dataset(val, name="docvqa")
    assert first.id == "49153" and first.references == ("1/8/93", "January 8, 1993")
    assert first.category == "layout" and first.metadata["question_types"] == ["layout", "others"]
    assert first.split == "val" and first.group == second.group == "documents/p1.png"
    assert pixel(first.images[0]) == BLUE and first.metadata["docId"] == 14465
    test = tmp_path / "test_v1.0.json"
    item = docvqa_item(9, "documents/p9.png")
    del item["question_types"]
    test.write_text(json.dumps({"dataset_split": "test", "data": [item]}), encoding="utf-8")
    (only,) = load_dataset(test, name="docvqa")
    assert only.references == () and only.category is None and only.split == "test"
    with pytest.raises(SampleError, match=r"p9\.png"):  # missing page image: only at load time
        only.images[0].load()


def test_docvqa_broken_items(tmp_path: Path) -> None:
    path = tmp_path / "val_v1.0_withQT.json"
    bad = docvqa_item(2, "documents/a.png")
    del bad["image"]
    path.write_text(json.dumps({"data": [docvqa_item(1, "documents/a.png"), bad]}), encoding="utf-8")
    err = error_of(path)
    assert (err.row, err.field) == (1, "image") and "data[1], field 'image': missing 'image'" in str(err)
    bad = docvqa_item(2, "documents/a.png")
    bad["question_types"] = "layout"
    path.write_text(json.dumps({"data": [bad]}), encoding="utf-8")
    assert error_of(path).field == "question_types"


# --- parquet ----------------------------------------------------------------------------------------------


def test_parquet_round_trip_hf_image_structs_in_several_row_groups(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "side.png").write_bytes(png(GREEN))
    raw = [png(RED), None, png(BLUE)]
    table = pa.table(
        {
            "question_id": [10, 11, 12],
            "question": ["a?", "b?", "c?"],
            "image": [
                {"bytes": raw[0], "path": "r.png"},
                {"bytes": None, "path": "side.png"},
                {"bytes": raw[2], "path": None},
            ],
            "answers": [["x", "y"], ["z"], []],
            "image_id": ["i1", "i1", "i2"],
            "ocr_tokens": [["A"], [], ["B", "C"]],
        }
    )
    path = tmp_path / "textvqa.parquet"
    pq.write_table(table, path, row_group_size=1)
    assert pq.ParquetFile(path).num_row_groups == 3
    samples = load_dataset(path, name="pq")
    assert [s.id for s in samples] == ["10", "11", "12"]
    assert base64.b64decode(samples[0].images[0].b64) == raw[0]
    assert pixel(samples[0].images[0]) == RED
    assert samples[1].images[0].path == tmp_path / "side.png" and pixel(samples[1].images[0]) == GREEN
    assert [s.references for s in samples] == [("x", "y"), ("z",), ()]
    assert [s.group for s in samples] == ["i1", "i1", "i2"]
    assert samples[2].metadata["ocr_tokens"] == ["B", "C"] and "image" not in samples[2].metadata
    assert samples[0].text == "a?" and samples[0].metadata["question"] == "a?"
    assert [s.id for s in load_dataset(path, name="pq", limit_rows=2)] == ["10", "11"]


def test_parquet_mmbench_layout_with_binary_images(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "index": [3, 1000003],
            "question": ["Which?", "Which?"],
            "hint": [None, "look"],
            "A": ["cat", "dog"],
            "B": ["dog", "cat"],
            "C": [None, None],
            "answer": ["B", "A"],
            "category": ["animals", "animals"],
            "picture": pa.array([png(RED), png(BLUE)], type=pa.binary()),
        }
    )
    path = tmp_path / "mmbench.parquet"
    pq.write_table(table, path)
    first, second = load_dataset(path, name="mmb")
    assert first.choices == (("A", "cat"), ("B", "dog")) and first.references == ("B",)
    assert first.metadata["hint"] is None and second.metadata["hint"] == "look"
    assert first.group == second.group == "3" and first.category == "animals"
    assert pixel(second.images[0]) == BLUE


def test_parquet_broken_files(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"qid": [1], "question": ["?"]}), path)
    err = error_of(path)
    assert "missing required column(s)" in str(err) and "question_id or questionId or index or id" in str(err)
    assert "an image column" in str(err) and "found columns ['qid', 'question']" in str(err)
    pq.write_table(pa.table({"id": [1, 1], "question": ["?", "?"], "image": [png(), png()]}), path)
    err = error_of(path)
    assert (err.row, err.field) == (2, "id") and "duplicate id '1' (also row 1)" in str(err)
    path.write_bytes(b"PAR1 this is not really parquet")
    assert "not a readable parquet file" in str(error_of(path))


def test_parquet_without_pyarrow_says_which_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "d.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # what an environment without pyarrow looks like
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    assert "pip install 'pytest-omnilmm[parquet]'" in str(error_of(path))


# --- sniffing and the entry point -------------------------------------------------------------------------


def test_sniff_by_name(tmp_path: Path) -> None:
    cases = {
        "a.jsonl": "jsonl",
        "MMBench_DEV_EN.tsv": "vlmeval_tsv",
        "x.parquet": "parquet",
        "TextVQA_0.5.1_val.json": "textvqa",
        "val_v1.0_withQT.json": "docvqa",
        "test_v1.0.json": "docvqa",
        "my_docvqa.json": "docvqa",
    }
    for name, expected in cases.items():
        (tmp_path / name).write_text("", encoding="utf-8")
        assert sniff_format(tmp_path / name) == expected, name


def test_sniff_by_content(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def sniffed(name: str, content: str | bytes) -> str:
        path = tmp_path / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return sniff_format(path)

    assert sniffed("a.txt", '{"id": 1, "question": "?"}\n{"id": 2, "question": "?"}\n') == "jsonl"
    assert sniffed("b", "index\timage\tquestion\n1\tAAAA\t?\n") == "vlmeval_tsv"
    assert sniffed("c.json", json.dumps(textvqa_document([textvqa_item(1, "a")]), indent=2)) == "textvqa"
    assert sniffed("d.json", json.dumps({"data": [docvqa_item(1, "a.png")]})) == "docvqa"
    assert sniffed("e.json", "{\n" + json.dumps({"data": [docvqa_item(1, "a.png")]})[1:]) == "docvqa"
    pq.write_table(pa.table({"id": [1]}), tmp_path / "f.bin")
    assert sniff_format(tmp_path / "f.bin") == "parquet"
    with pytest.raises(DatasetError) as info:
        sniffed("g.csv", "a,b,c\n1,2,3\n")
    assert "pass --data-format with one of: jsonl, vlmeval_tsv, textvqa, docvqa, parquet" in str(info.value)


def test_load_dataset_sniffs_and_checks_its_arguments(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.data", [{"id": "a", "question": "?"}])
    assert [s.id for s in load_dataset(path, name="d")] == ["a"]
    assert [s.id for s in load_dataset(str(path), name="d", format="jsonl")] == ["a"]
    assert "unknown dataset format 'csv'" in str(error_of(path, format="csv"))
    assert "no such file" in str(error_of(tmp_path / "absent.jsonl"))
    with pytest.raises(DatasetError, match="is a directory"):
        load_dataset(tmp_path, name="d")
    with pytest.raises(DatasetError, match="image root is not a directory"):
        load_dataset(path, name="d", image_root=tmp_path / "nope")
    with pytest.raises(ValueError, match="limit_rows"):
        load_dataset(path, name="d", limit_rows=-1)
    assert FORMATS == ("jsonl", "vlmeval_tsv", "textvqa", "docvqa", "parquet")


def test_a_file_read_as_the_wrong_format_says_so(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "question": "?"}])
    assert "missing required column(s) index" in str(error_of(path, format="vlmeval_tsv"))
    assert "expected an object with a 'data' list" in str(error_of(path, format="docvqa"))
    assert "not a readable parquet file" in str(error_of(path, format="parquet"))


def test_dataset_error_attributes_and_pickling() -> None:
    err = DatasetError("f.tsv", "not valid base64;\n decode it", row=12, field="image")
    assert str(err) == "f.tsv: row 12, column 'image': not valid base64; decode it"
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.file, copy.row, copy.field, str(copy)) == ("f.tsv", 12, "image", str(err))
    assert str(DatasetError("f.json", "bad")) == "f.json: bad"


def test_hostile_json_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("[" * 100_000 + "\n", encoding="utf-8")
    assert "line 1: cannot read this JSON: nested too deeply" in str(error_of(path))
    path.write_text('{"id": ' + "9" * 5000 + ', "question": "?"}\n', encoding="utf-8")
    assert "line 1: cannot read this JSON: Exceeds the limit (4300 digits)" in str(error_of(path))
    path = tmp_path / "val_v1.0_withQT.json"
    path.write_text('{"data": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    assert "cannot read this JSON (nested too deeply)" in str(error_of(path))
    path = tmp_path / "d.tsv"
    path.write_text(f"index\timage\tquestion\n1\t{'[' * 5000}{']' * 5000}\tq\n", encoding="utf-8")
    (bad,) = load_dataset(path, name="d")  # one bad row: that sample fails alone
    assert "column 'image': starts with '[' but is not a valid list of strings" in row_problem(bad)


def test_parquet_image_lists_and_bad_image_cells(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "multi.parquet"
    images = [[{"bytes": png(RED), "path": None}, {"bytes": png(GREEN), "path": None}], []]
    pq.write_table(pa.table({"id": ["m1", "m2"], "question": ["both?", "none?"], "images": images}), path)
    first, second = load_dataset(path, name="d")
    assert [pixel(i) for i in first.images] == [RED, GREEN] and second.images == ()
    assert first.images[1].origin.endswith("row 1, column 'images'[1]")
    pq.write_table(pa.table({"id": ["a"], "question": ["?"], "image": [12]}), path)
    err = error_of(path)
    assert (err.row, err.field) == (1, "image") and "expected image bytes" in str(err)
