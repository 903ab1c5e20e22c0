"""Per-sample records: what a worker produces, what the controller aggregates, what resume reads back.
Shared by both sides; the worker's writer is ``worker/writer.py``.

A ``Record`` holds only plain values (str/int/float/bool/None/list/dict) so that it survives the trip
through xdist's ``report.user_properties`` (a tensor there crashes the run and exits 0).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

RECORD_PROPERTY = "omnilmm_record"  # report.user_properties name: the record, at call
ITEM_PROPERTY = "omnilmm_item"  # ... and the item (dataset, sample id, label), at setup: names a crash


@dataclass(frozen=True)
class Record:
    """The outcome of one sample on one checkpoint.

    ``latency_s`` is the wall time of the generate call that produced this sample (the whole batch:
    every sample in a batch waited that long); ``batch_id`` ties the samples of one call together so
    throughput counts each batch once.
    """

    sample_id: str
    dataset: str
    checkpoint: str  # role label: "base", "ckpt0", "ckpt1", ... (stable ids for --lf and baselines)
    checkpoint_path: str  # "" when the base model is evaluated as is
    fingerprint: str  # content hash of the evaluated weights (base model + checkpoint)
    key: str  # resume key: fingerprint + generation settings + sample content
    sample_hash: str  # sha256 of the sample's content (text, image bytes, references): the gate checks it
    settings_hash: str  # hash of generation settings (method, max tokens, beams, dtype, ...)
    prediction: str | None
    references: list[str] = field(default_factory=list)
    scores: dict[str, float | None] = field(default_factory=dict)
    metric: str | None = None  # the primary metric name (a key of ``scores``)
    metric_flavor: str = "vlmevalkit"
    group: str | None = None
    # sha256 over the sample's image bytes: the gate clusters samples on one image when no group is set
    image_hash: str | None = None
    category: str | None = None
    error: str | None = None
    # A golden-sample assert that failed: the sample was answered and scored (its score counts as is), so it
    # is a failed sample, not an errored one.
    check_failed: str | None = None
    latency_s: float = 0.0
    batch_id: str = ""
    batch_size: int = 1
    prompt_tokens: int = 0
    generated_tokens: int = 0
    worker: str = "main"
    generate_method: str = "chat"
    resumed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def read_records(path: Path) -> Iterator[Record]:
    """Records from a JSONL file; a torn or unparseable line (a kill mid-write) is skipped."""
    try:
        fh = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict) and "sample_id" in data:
                try:
                    yield Record.from_json(data)
                except TypeError:
                    continue


# ------------------------------------------------------------------------- the one score cleaner
def clean_score(value: Any) -> float | None:
    """A usable score or None: NaN (VLMEvalKit's "undefined") and non-numbers are not scores."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def record_score(record: Record, metric: str) -> float | None:
    """The score the gate uses for a record: an errored sample counts as wrong (0.0)."""
    if record.error is not None:
        return 0.0
    return clean_score(record.scores.get(metric))
