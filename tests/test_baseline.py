"""Baseline files: what is saved, that it round-trips, and the one-line errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_omnilmm.gate import GateSettings, compare
from pytest_omnilmm.gate.baseline import (
    BASELINE_VERSION,
    Baseline,
    BaselineError,
    build_baseline,
    load_baseline,
    save_baseline,
)
from pytest_omnilmm.records import Record


def rec(sid: str, score: float | None, *, ckpt: str = "ckpt0", dataset: str = "textvqa", **kw: Any) -> Record:
    metric = kw.pop("metric", "vqa_accuracy")
    error = kw.get("error")
    return Record(
        sample_id=sid,
        dataset=dataset,
        checkpoint=ckpt,
        checkpoint_path=f"/ckpts/{ckpt}.safetensors",
        fingerprint=f"fp-{ckpt}",
        key=f"k-{sid}",
        sample_hash=f"h-{sid}",
        settings_hash="s",
        prediction=kw.pop("prediction", f"pred {sid}"),
        scores={} if error else {metric: score, "exact_match": 1.0},
        metric=metric,
        **kw,
    )


RUN_INFO: dict[str, Any] = {
    "generation": {
        "generate_method": "chat",
        "max_new_tokens": 16,
        "num_beams": 1,
        "dtype": "bfloat16",
        "batch_size": 8,
    },
    "metric_flavor": "vlmevalkit",
    "model_path": "openbmb/MiniCPM-V-4_6",
    "checkpoints": {
        "ckpt0": {"path": "/ckpts/ckpt0.safetensors", "fingerprint": "fp-ckpt0"},
        "ckpt1": {"path": "/ckpts/ckpt1.safetensors", "fingerprint": "fp-ckpt1"},
    },
    "versions": {"torch": "2.14.1", "transformers": "5.24.0", "pytest_omnilmm": "0.1.0", "python": "3.12.3"},
    "git": {"commit": "0123abc", "dirty": True},
    "hardware": {"device": "cuda", "device_name": "NVIDIA H200"},
    "perf": {
        "ckpt0": {
            "p50_latency_s": 0.2,
            "p90_latency_s": 0.3,
            "p99_latency_s": 0.4,
            "samples_per_s": 40.0,
            "tokens_per_s": 300.0,
            "peak_memory_mb": 9000.0,
            "load_time_s": 12.0,
        },
        "ckpt1": {"p50_latency_s": 0.25, "samples_per_s": 35.0},
    },
}


def records(ckpt: str = "ckpt0") -> list[Record]:
    out = [
        rec(f"q{i}", [0.0, 1 / 3, 2 / 3, 1.0][i % 4], ckpt=ckpt, group=f"img{i // 2}", category="ocr")
        for i in range(40)
    ]
    out.append(rec("q-err", None, ckpt=ckpt, error="image missing"))
    out.append(rec("q-nan", float("nan"), ckpt=ckpt))
    out += [rec(f"d{i}", float(i % 2), ckpt=ckpt, dataset="docvqa", metric="anls") for i in range(10)]
    return out


def test_build_baseline_holds_what_the_gate_and_people_need() -> None:
    data = build_baseline(records(), RUN_INFO, n_boot=500)
    assert data["version"] == BASELINE_VERSION
    assert data["checkpoint"] == {
        "label": "ckpt0",
        "path": "/ckpts/ckpt0.safetensors",
        "fingerprint": "fp-ckpt0",
    }
    assert data["generation"]["max_new_tokens"] == 16 and data["metric_flavor"] == "vlmevalkit"
    assert data["git"] == {"commit": "0123abc", "dirty": True}
    assert data["versions"]["transformers"] == "5.24.0" and data["hardware"]["device_name"] == "NVIDIA H200"
    assert data["perf"]["p50_latency_s"] == 0.2 and data["perf"]["peak_memory_mb"] == 9000.0
    tv = data["datasets"]["textvqa"]
    assert tv["metric"] == "vqa_accuracy" and tv["metric_flavor"] == "vlmevalkit" and tv["n_errors"] == 1
    expected = {
        "score": 1.0,
        "sample_hash": "h-q3",
        "group": "img1",
        "prediction": "pred q3",
        "category": "ocr",
    }
    assert tv["samples"]["q3"] == {**expected, "error": None, "image_hash": None}
    assert tv["samples"]["q-err"]["score"] == 0.0 and tv["samples"]["q-err"]["error"] == "image missing"
    assert tv["samples"]["q-nan"]["score"] is None  # an undefined score is not a zero
    agg = tv["aggregate"]
    assert agg["n"] == 41 and agg["n_groups"] == 21 and agg["level"] == 0.95
    assert agg["mean"] == pytest.approx((10 * (0 + 1 / 3 + 2 / 3 + 1)) / 41)
    assert agg["ci_low"] < agg["mean"] < agg["ci_high"]
    assert data["datasets"]["docvqa"]["metric"] == "anls"


def test_sweep_baseline_needs_a_checkpoint() -> None:
    sweep = records("ckpt0") + records("ckpt1")
    with pytest.raises(BaselineError, match=r"holds 2 checkpoints \(ckpt0, ckpt1\); name the one to save"):
        build_baseline(sweep, RUN_INFO)
    with pytest.raises(BaselineError, match="checkpoint 'ckpt9': this run holds ckpt0, ckpt1"):
        build_baseline(sweep, RUN_INFO, checkpoint="ckpt9")
    data = build_baseline(sweep, RUN_INFO, checkpoint="ckpt1", n_boot=200)
    assert data["checkpoint"]["fingerprint"] == "fp-ckpt1" and data["perf"]["p50_latency_s"] == 0.25
    with pytest.raises(BaselineError, match="no records"):
        build_baseline([], RUN_INFO)


def test_build_refuses_ambiguous_records() -> None:
    dup = [*records(), rec("q1", 1.0)]
    with pytest.raises(BaselineError, match="sample id 'q1' appears twice"):
        build_baseline(dup, RUN_INFO)
    mixed = [*records(), rec("x", 1.0, metric_flavor="omnilmm")]
    with pytest.raises(BaselineError, match="mix metric flavours"):
        build_baseline(mixed, RUN_INFO)


def test_round_trip_is_sorted_one_line_per_sample_and_stable(tmp_path: Path) -> None:
    data = build_baseline(records(), RUN_INFO, n_boot=200)
    path = save_baseline(tmp_path / "sub" / "baseline.json", data)
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == json.loads(json.dumps(data))
    sample_lines = [line for line in text.splitlines() if '"sample_hash"' in line]
    assert len(sample_lines) == 52  # every sample on its own line
    assert sample_lines[0].strip().startswith('"d0": {"category": null')
    keys = [line.strip().split('"')[1] for line in text.splitlines() if line.startswith('  "')]
    assert keys == sorted(keys)
    save_baseline(path, build_baseline(records(), RUN_INFO, n_boot=200))
    assert path.read_text(encoding="utf-8") == text  # the same run saves the same bytes
    assert [p.name for p in path.parent.iterdir()] == ["baseline.json"]  # no temp file left behind

    loaded = load_baseline(path)
    assert isinstance(loaded, Baseline) and loaded.source == str(path)
    assert loaded.checkpoint["fingerprint"] == "fp-ckpt0" and loaded.generation["dtype"] == "bfloat16"
    sample = loaded.datasets["textvqa"].samples["q3"]
    assert (sample.score, sample.group, sample.prediction) == (1.0, "img1", "pred q3")
    assert loaded.datasets["textvqa"].samples["q-nan"].score is None
    # and the loaded baseline gates its own run as a pass
    assert not compare(loaded, records(), RUN_INFO, GateSettings()).failed


def _check(err: pytest.ExceptionInfo[BaselineError], path: Path, *fragments: str) -> None:
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message


def test_missing_empty_and_broken_files(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    with pytest.raises(BaselineError) as err:
        load_baseline(path)
    _check(err, path, "not found", f"--save-baseline {path}")
    path.write_text("  \n")
    with pytest.raises(BaselineError) as err:
        load_baseline(path)
    _check(err, path, "is empty", "--save-baseline")
    path.write_text('{"version": 1,\n "datasets": {')
    with pytest.raises(BaselineError) as err:
        load_baseline(path)
    _check(err, path, "not valid JSON (line 2", "--save-baseline")
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(BaselineError) as err:
        load_baseline(path)
    _check(err, path, "not a text file")
    with pytest.raises(BaselineError) as err:
        load_baseline(tmp_path)
    _check(err, tmp_path, "is a directory")


def _good() -> dict[str, Any]:
    return json.loads(json.dumps(build_baseline(records(), RUN_INFO, n_boot=200)))


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: [1, 2], "is a JSON list"),
        (lambda d: {k: v for k, v in d.items() if k != "kind"}, "not a pytest-omnilmm baseline"),
        (lambda d: {**d, "version": 2}, "'version' is 2; this pytest-omnilmm reads version 1"),
        (lambda d: {**d, "datasets": {}}, "'datasets' is missing or empty"),
        (lambda d: {**d, "perf": []}, "'perf' must be an object"),
        (
            lambda d: {**d, "datasets": {"textvqa": {**d["datasets"]["textvqa"], "samples": {}}}},
            "datasets.textvqa.samples is missing or empty",
        ),
        (
            lambda d: {**d, "datasets": {"textvqa": {**d["datasets"]["textvqa"], "metric": None}}},
            "datasets.textvqa.metric is missing",
        ),
        (
            lambda d: {**d, "datasets": {"x": {"metric": "m", "samples": {"s1": {"score": "hi"}}}}},
            "datasets.x.samples['s1'].score is 'hi', expected a number or null",
        ),
        (
            lambda d: {**d, "datasets": {"x": {"metric": "m", "samples": {"s1": {"score": 1.0}}}}},
            "datasets.x.samples['s1'].sample_hash is missing",
        ),
    ],
)
def test_wrong_schema_is_refused_with_the_field(tmp_path: Path, mutate: Any, fragment: str) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps(mutate(_good())))
    with pytest.raises(BaselineError) as err:
        load_baseline(path)
    _check(err, path, fragment, "regenerate it with --save-baseline")


def test_save_refuses_values_that_are_not_json(tmp_path: Path) -> None:
    data = _good()
    data["perf"]["p50_latency_s"] = float("nan")
    with pytest.raises(BaselineError, match="not plain JSON"):
        save_baseline(tmp_path / "b.json", data)
    assert not (tmp_path / "b.json").exists()
