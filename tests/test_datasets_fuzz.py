"""Hostile files: whatever the bytes, a reader returns samples or raises DatasetError, nothing else.

And the samples it returns hold up: unique ids, the dataset's name, a text part, and images whose bytes
are either readable or refused with a SampleError (never another exception).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_omnilmm.datasets import FORMATS, DatasetError, load_dataset
from pytest_omnilmm.datasets.vlmeval_tsv import _records
from pytest_omnilmm.sample import Sample, SampleError, Text

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

SUFFIX = {
    "jsonl": ".jsonl",
    "vlmeval_tsv": ".tsv",
    "textvqa": ".json",
    "docvqa": ".json",
    "parquet": ".parquet",
}
TINY_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(80))).decode()


def seeds() -> dict[str, bytes]:
    """One small valid file per text format, for mutation."""
    jsonl = "\n".join(
        json.dumps(o)
        for o in [
            {"id": "a", "question": "q?", "image": "a.png", "answers": ["x"], "choices": ["p", "q"]},
            {"id": 2, "content": [{"type": "image", "image": "b.png"}, {"type": "text", "text": "t"}]},
        ]
    )
    tsv = (
        "index\timage\tquestion\thint\tA\tB\tanswer\tcategory\n"
        f"1\t{TINY_B64}\tq?\tnan\tx\ty\tA\tc\n"
        "1000001\t1\tq?\t\ty\tx\tB\tc\n"
        f"2\t['{TINY_B64}']\tr?\th\t\t\t['a', 'b']\t\n"
    )
    textvqa = json.dumps(
        {
            "data": [
                {
                    "question_id": 1,
                    "image_id": "i",
                    "question": "q?",
                    "answers": ["a"] * 10,
                    "set_name": "val",
                }
            ]
        }
    )
    docvqa = json.dumps(
        {
            "dataset_split": "val",
            "data": [{"questionId": 1, "question": "q?", "image": "d/p.png", "answers": ["a"]}],
        }
    )
    return {
        "jsonl": jsonl.encode(),
        "vlmeval_tsv": tsv.encode(),
        "textvqa": textvqa.encode(),
        "docvqa": docvqa.encode(),
    }


SEEDS = seeds()


def check_samples(samples: list[Sample], folder: Path) -> None:
    assert len({s.id for s in samples}) == len(samples)
    for sample in samples:
        assert isinstance(sample.id, str) and sample.id and sample.dataset == "fuzz"
        assert any(isinstance(p, Text) for p in sample.parts)
        for image in sample.images:
            if image.path is not None and not (image.path.is_relative_to(folder) and image.path.is_file()):
                continue  # never open arbitrary paths a fuzzed file names (/dev/..., FIFOs)
            try:
                image.read_bytes()
            except SampleError:
                pass


def read(path: Path, fmt: str | None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            samples = load_dataset(path, name="fuzz", format=fmt)
        except DatasetError as err:
            assert "\n" not in str(err) and str(path) in str(err)
            return
    check_samples(samples, path.parent)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(data=st.binary(max_size=2000), fmt=st.sampled_from((*FORMATS, None)))
def test_random_bytes_as_any_format(folder: Path, data: bytes, fmt: str | None) -> None:
    path = folder / f"random{SUFFIX.get(fmt or '', '.bin')}"
    path.write_bytes(data)
    read(path, fmt)


@FUZZ
@given(
    fmt=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.binary(max_size=4), st.integers(0, 3)), max_size=6),
    cut=st.none() | st.integers(0, 10_000),
)
def test_mutated_valid_files(
    folder: Path, fmt: str, edits: list[tuple[int, bytes, int]], cut: int | None
) -> None:
    """Valid files with a few bytes replaced, inserted or removed, and perhaps cut short."""
    data = bytearray(SEEDS[fmt])
    for position, replacement, removed in edits:
        at = position % (len(data) + 1)
        data[at : at + removed] = replacement
    if cut is not None:
        del data[cut % (len(data) + 1) :]
    path = folder / f"mutated{SUFFIX[fmt]}"
    path.write_bytes(bytes(data))
    read(path, fmt)
    read(path, None)


CELL = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    st.sampled_from(
        ["", "nan", "None", "1", "2", "1000001", "[", "[]", "['a', 'b']", "[1, [2]]", '"', "\t", "\n"]
    ),
    st.just(TINY_B64),
    st.just(f"['{TINY_B64}', '{TINY_B64}']"),
    st.just("a.png"),
)
COLUMNS = [
    "index",
    "image",
    "image_path",
    "question",
    "hint",
    "A",
    "B",
    "C",
    "answer",
    "category",
    "split",
    "x",
]


@FUZZ
@given(
    header=st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=8),
    rows=st.lists(st.lists(CELL, max_size=9), max_size=8),
    quoted=st.booleans(),
    limit=st.none() | st.integers(0, 4),
)
def test_random_tsv_rows(
    folder: Path, header: list[str], rows: list[list[str]], quoted: bool, limit: int | None
) -> None:
    if quoted:  # as pandas writes it: cells with tabs, newlines or quotes are quoted
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        text = buffer.getvalue()
    else:  # as a careless script writes it
        text = "\n".join("\t".join(r) for r in [header, *rows]) + "\n"
    path = folder / "rows.tsv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            samples = load_dataset(path, name="fuzz", limit_rows=limit)
        except DatasetError as err:
            assert "\n" not in str(err)
            return
    check_samples(samples, folder)
    if limit is not None:
        assert len(samples) <= limit


@FUZZ
@given(text=st.text(alphabet='ab\t"\n\r \x00[]', max_size=60))
def test_tsv_fast_split_reads_exactly_what_csv_reads(folder: Path, text: str) -> None:
    """The TSV reader splits quote-free lines itself (for speed); the records must equal csv's."""
    path = folder / "split.tsv"
    path.write_text(text, encoding="utf-8", newline="")
    with path.open(encoding="utf-8", newline="") as f:
        expected = list(csv.reader(f, delimiter="\t"))
    with path.open(encoding="utf-8", newline="") as f:
        assert [cells for _, cells in _records(path, f)] == expected
