"""The predictions table: columns, one file per (checkpoint, dataset), text that looks like a formula."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl

from pytest_omnilmm.controller.predictions import COLUMNS, write_predictions
from pytest_omnilmm.records import Record


def _record(sample_id: str, checkpoint: str, prediction: str | None, error: str | None = None) -> Record:
    return Record(
        sample_id=sample_id,
        dataset="textvqa",
        checkpoint=checkpoint,
        checkpoint_path=f"/ckpts/{checkpoint}.safetensors",
        fingerprint="f",
        key="k",
        sample_hash="h",
        settings_hash="s",
        prediction=prediction,
        references=["yes", "Yes"],
        scores={"vqa_accuracy": 0.0 if error else 1.0},
        metric="vqa_accuracy",
        error=error,
        latency_s=0.25,
        batch_size=4,
        extra={"question": 'what, "exactly"?\nsecond line'},
    )


def test_tables_per_checkpoint_and_dataset_with_every_column(tmp_path: Path) -> None:
    records = [
        _record("2", "ckpt0", "=1+1"),
        _record("1", "ckpt0", None, error="image x.png: truncated file"),
        _record("1", "ckpt1", "yes\x01\x1b"),
    ]
    written = write_predictions(tmp_path, records)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "predictions/ckpt0/textvqa.csv",
        "predictions/ckpt0/textvqa.xlsx",
        "predictions/ckpt1/textvqa.csv",
        "predictions/ckpt1/textvqa.xlsx",
    ]
    with (tmp_path / "predictions/ckpt0/textvqa.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == COLUMNS
    assert [r["id"] for r in rows] == ["1", "2"]  # sorted by sample id
    first, second = rows
    assert first["prediction"] == "" and first["error"] == "image x.png: truncated file"
    assert first["score"] == "0.0" and second["score"] == "1.0"
    assert first["question"] == 'what, "exactly"?\nsecond line'  # quoting survives commas, quotes, newlines
    assert first["answers"] == '["yes", "Yes"]'
    assert first["batch_latency_s"] == "0.25" and first["batch_size"] == "4"
    assert first["checkpoint_path"] == "/ckpts/ckpt0.safetensors"
    sheet = openpyxl.load_workbook(tmp_path / "predictions/ckpt0/textvqa.xlsx").active
    prediction = sheet.cell(row=3, column=COLUMNS.index("prediction") + 1)
    assert prediction.value == "=1+1" and prediction.data_type == "s"  # text, not a formula
    # Control characters XLSX cannot hold are replaced there; the CSV keeps the exact text.
    other = openpyxl.load_workbook(tmp_path / "predictions/ckpt1/textvqa.xlsx").active
    assert other.cell(row=2, column=COLUMNS.index("prediction") + 1).value == "yes\ufffd\ufffd"
    with (tmp_path / "predictions/ckpt1/textvqa.csv").open(encoding="utf-8", newline="") as fh:
        assert next(csv.DictReader(fh))["prediction"] == "yes\x01\x1b"
