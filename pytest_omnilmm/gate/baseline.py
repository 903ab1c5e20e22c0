"""Baseline files: what a shipped checkpoint scored, sample by sample, as plain diff-friendly JSON.

A baseline is written by ``--save-baseline PATH`` and read by ``--baseline PATH``. It keeps, per
dataset, the primary metric's aggregate with its CI and every sample's score, content hash, image
cluster and prediction, so a later run can be compared pair by pair (see ``compare.py``). Keys are
sorted and each sample sits on one line, so a regenerated baseline diffs sample by sample in review.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..records import clean_score, record_score

if TYPE_CHECKING:
    from pytest_omnilmm.records import Record

BASELINE_VERSION = 1
BASELINE_KIND = "pytest-omnilmm baseline"
REGEN_HINT = "regenerate it with --save-baseline"


class BaselineError(Exception):
    """A baseline cannot be written or read; the message is one line: where, what, what to do."""


@dataclass(frozen=True)
class BaselineSample:
    """One sample's result in the baseline; ``score`` is None when the metric was undefined for it."""

    score: float | None
    sample_hash: str
    group: str | None = None
    prediction: str | None = None
    category: str | None = None
    error: str | None = None
    image_hash: str | None = None  # sha256 of the sample's images: the gate's cluster when no group is set


@dataclass(frozen=True)
class BaselineDataset:
    name: str
    metric: str  # the primary metric, the one the gate compares
    metric_flavor: str
    aggregate: Mapping[str, Any]  # mean, ci_low, ci_high, n, n_groups, level
    samples: Mapping[str, BaselineSample]


@dataclass(frozen=True)
class Baseline:
    """A validated baseline file (``source`` is the file it came from, for messages)."""

    source: str
    checkpoint: Mapping[str, Any]  # label, path, fingerprint
    model_path: str
    generation: Mapping[str, Any]
    metric_flavor: str
    versions: Mapping[str, Any]
    git: Mapping[str, Any]
    hardware: Mapping[str, Any]
    perf: Mapping[str, Any]
    datasets: Mapping[str, BaselineDataset]

    @classmethod
    def from_dict(cls, data: Any, source: str = "<baseline>") -> Baseline:
        """Validate a parsed baseline; raise ``BaselineError`` naming the first wrong field."""
        return _parse(data, source)


# --------------------------------------------------------------------------------------------- build


def build_baseline(
    records: Sequence[Record],
    run_info: Mapping[str, Any],
    *,
    checkpoint: str | None = None,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """The baseline of one checkpoint of a run, as plain JSON-able values.

    A sweep holds several checkpoints; ``checkpoint`` picks the one (its role label) and may be left
    out only when the run holds exactly one.
    """
    labels = sorted({r.checkpoint for r in records})
    if not labels:
        raise BaselineError("cannot save a baseline: this run produced no records; run some eval cases first")
    if checkpoint is None:
        if len(labels) > 1:
            raise BaselineError(
                f"cannot save a baseline: this run holds {len(labels)} checkpoints ({', '.join(labels)}); "
                "name the one to save"
            )
        checkpoint = labels[0]
    elif checkpoint not in labels:
        raise BaselineError(
            f"cannot save a baseline of checkpoint {checkpoint!r}: this run holds {', '.join(labels)}"
        )
    mine = [r for r in records if r.checkpoint == checkpoint]
    by_dataset: dict[str, list[Record]] = {}
    for rec in mine:
        by_dataset.setdefault(rec.dataset, []).append(rec)

    datasets = {
        name: _dataset_entry(name, recs, level=level, n_boot=n_boot, seed=seed)
        for name, recs in sorted(by_dataset.items())
    }
    first = mine[0]
    ckpt_info = dict((run_info.get("checkpoints") or {}).get(checkpoint) or {})
    perf = (run_info.get("perf") or {}).get(checkpoint) or {}
    return {
        "kind": BASELINE_KIND,
        "version": BASELINE_VERSION,
        "checkpoint": {
            "label": checkpoint,
            "path": ckpt_info.get("path", first.checkpoint_path),
            "fingerprint": ckpt_info.get("fingerprint", first.fingerprint),
        },
        "model_path": str(run_info.get("model_path", "")),
        "generation": dict(run_info.get("generation") or {}),
        "metric_flavor": str(run_info.get("metric_flavor", first.metric_flavor)),
        "versions": dict(run_info.get("versions") or {}),
        "git": dict(run_info.get("git") or {"commit": None, "dirty": None}),
        "hardware": dict(run_info.get("hardware") or {}),
        "perf": dict(perf),
        "datasets": datasets,
    }


def _dataset_entry(name: str, recs: list[Record], *, level: float, n_boot: int, seed: int) -> dict[str, Any]:
    metrics = sorted({r.metric for r in recs if r.metric})
    if len(metrics) != 1:
        found = ", ".join(metrics) if metrics else "none"
        raise BaselineError(
            f"cannot save a baseline for dataset {name!r}: its records need one primary metric, found {found}"
        )
    metric = metrics[0]
    flavors = sorted({r.metric_flavor for r in recs})
    if len(flavors) != 1:
        raise BaselineError(
            f"cannot save a baseline for dataset {name!r}: its records mix metric flavours "
            f"({', '.join(flavors)}); use one --metric-flavor"
        )
    samples: dict[str, dict[str, Any]] = {}
    for rec in sorted(recs, key=lambda r: r.sample_id):
        if rec.sample_id in samples:
            raise BaselineError(
                f"cannot save a baseline for dataset {name!r}: sample id {rec.sample_id!r} appears twice "
                "(overlapping shards or a duplicated row?); sample ids must be unique per dataset"
            )
        samples[rec.sample_id] = {
            "score": record_score(rec, metric),
            "sample_hash": rec.sample_hash,
            "group": rec.group,
            "image_hash": rec.image_hash,
            "prediction": rec.prediction,
            "category": rec.category,
            "error": rec.error,
        }
    scored = [(sid, s) for sid, s in samples.items() if s["score"] is not None]
    values = [float(s["score"]) for _, s in scored]
    groups = [s["group"] if s["group"] is not None else f"\0{sid}" for sid, s in scored]
    agg = _aggregate(values, groups, level=level, n_boot=n_boot, seed=seed)
    return {
        "metric": metric,
        "metric_flavor": flavors[0],
        "aggregate": {**agg, "level": level},
        "n_errors": sum(1 for s in samples.values() if s["error"] is not None),
        "samples": samples,
    }


def _aggregate(
    values: list[float], groups: list[str], *, level: float, n_boot: int, seed: int
) -> dict[str, Any]:
    if not values:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0, "n_groups": 0}
    from pytest_omnilmm.metrics.bootstrap import bootstrap_ci  # the run summary's bootstrap

    agg = bootstrap_ci(values, groups, n_boot=n_boot, seed=seed, level=level)
    return {
        "mean": _plain(agg.mean),
        "ci_low": _plain(agg.ci_low),
        "ci_high": _plain(agg.ci_high),
        "n": int(agg.n),
        "n_groups": int(agg.n_groups),
    }


def _plain(value: Any) -> float | None:
    return None if value is None else clean_score(float(value))


# ---------------------------------------------------------------------------------------- write/read


def dumps_baseline(baseline: Mapping[str, Any]) -> str:
    """JSON text with sorted keys, indented, and one line per sample (so diffs are per sample)."""
    return _encode(baseline, 0, ()) + "\n"


def _encode(value: Any, level: int, path: tuple[str, ...]) -> str:
    one_sample = len(path) == 4 and path[0] == "datasets" and path[2] == "samples"
    if isinstance(value, Mapping) and value and not one_sample:
        pad = "  " * (level + 1)
        items = [
            f"{pad}{json.dumps(str(k), ensure_ascii=False)}: {_encode(value[k], level + 1, (*path, str(k)))}"
            for k in sorted(value, key=str)
        ]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    return json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False, separators=(", ", ": "))


def save_baseline(path: Path | str, baseline: Mapping[str, Any]) -> Path:
    """Write atomically (temp file + rename), so an interrupted save never leaves half a baseline."""
    path = Path(path)
    try:
        text = dumps_baseline(baseline)
    except (TypeError, ValueError) as exc:
        raise BaselineError(f"{path}: cannot write the baseline, a value is not plain JSON ({exc})") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise BaselineError(f"{path}: cannot write the baseline ({exc.strerror or exc})") from None
    return path


def load_baseline(path: Path | str) -> Baseline:
    path = Path(path)
    if not path.exists():
        raise BaselineError(f"{path}: baseline file not found; create it with --save-baseline {path}")
    if path.is_dir():
        raise BaselineError(f"{path}: is a directory, not a baseline file; pass the JSON file's path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BaselineError(f"{path}: not a text file, so not a baseline; {REGEN_HINT} {path}") from None
    except OSError as exc:
        raise BaselineError(f"{path}: cannot read the baseline ({exc.strerror or exc})") from None
    if not text.strip():
        raise BaselineError(f"{path}: baseline file is empty; {REGEN_HINT} {path}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); {REGEN_HINT} {path}"
        ) from None
    return _parse(data, str(path))


def _parse(data: Any, source: str) -> Baseline:
    def bad(where: str, what: str) -> BaselineError:
        return BaselineError(f"{source}: {where} {what}; {REGEN_HINT}")

    if not isinstance(data, dict):
        raise bad("top level", f"is a JSON {type(data).__name__}, not a pytest-omnilmm baseline object")
    if data.get("kind") != BASELINE_KIND or "version" not in data:
        raise bad("top level", "is not a pytest-omnilmm baseline (no 'kind'/'version' fields)")
    version = data["version"]
    if version != BASELINE_VERSION:
        raise bad("'version'", f"is {version!r}; this pytest-omnilmm reads version {BASELINE_VERSION}")
    for key in ("checkpoint", "generation", "versions", "git", "hardware", "perf"):
        if not isinstance(data.get(key, {}), dict):
            raise bad(f"'{key}'", "must be an object")
    datasets = data.get("datasets")
    if not isinstance(datasets, dict) or not datasets:
        raise bad("'datasets'", "is missing or empty: the baseline holds no results")
    parsed = {name: _parse_dataset(name, entry, bad) for name, entry in sorted(datasets.items())}
    return Baseline(
        source=source,
        checkpoint=dict(data.get("checkpoint", {})),
        model_path=str(data.get("model_path", "")),
        generation=dict(data.get("generation", {})),
        metric_flavor=str(data.get("metric_flavor", "")),
        versions=dict(data.get("versions", {})),
        git=dict(data.get("git", {})),
        hardware=dict(data.get("hardware", {})),
        perf=dict(data.get("perf", {})),
        datasets=parsed,
    )


def _parse_dataset(name: str, entry: Any, bad: Any) -> BaselineDataset:
    where = f"datasets.{name}"
    if not isinstance(entry, dict):
        raise bad(where, "must be an object")
    metric = entry.get("metric")
    if not isinstance(metric, str) or not metric:
        raise bad(f"{where}.metric", "is missing (the primary metric's name)")
    samples = entry.get("samples")
    if not isinstance(samples, dict) or not samples:
        raise bad(f"{where}.samples", "is missing or empty: nothing to compare against")
    parsed: dict[str, BaselineSample] = {}
    for sid, s in samples.items():
        swhere = f"{where}.samples[{sid!r}]"
        if not isinstance(s, dict):
            raise bad(swhere, "must be an object")
        score = s.get("score")
        if score is not None and clean_score(score) is None:
            raise bad(f"{swhere}.score", f"is {score!r}, expected a number or null")
        sample_hash = s.get("sample_hash")
        if not isinstance(sample_hash, str):
            raise bad(f"{swhere}.sample_hash", "is missing (the sample's content hash)")
        parsed[sid] = BaselineSample(
            score=clean_score(score),
            sample_hash=sample_hash,
            group=_opt_str(s.get("group")),
            prediction=_opt_str(s.get("prediction")),
            category=_opt_str(s.get("category")),
            error=_opt_str(s.get("error")),
            image_hash=_opt_str(s.get("image_hash")),
        )
    aggregate = entry.get("aggregate", {})
    return BaselineDataset(
        name=name,
        metric=metric,
        metric_flavor=str(entry.get("metric_flavor", "")),
        aggregate=dict(aggregate) if isinstance(aggregate, dict) else {},
        samples=parsed,
    )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
