"""Worker side: turn test items into batched generate calls, time them, write records, resume.

When the first item of a batch asks for its answer, the engine generates the whole batch (the items
that follow in the same unit, see ``batching.py``) and keeps the other answers until their items
ask. Samples whose record already exists with the same key (in this or an earlier run under
``--results-dir``) are not generated again.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..backends import Backend, Generated, GenerationSettings, Handle, ModelRequest
from ..config import EvalConfig
from ..generation import PromptBuilder
from ..records import Record, read_records
from ..sample import Sample, SampleError
from .writer import RecordWriter


class ModelUnavailable(Exception):
    """The checkpoint's model could not be loaded (bad checkpoint, missing files, remote code refused)."""


class AlreadySaid(ModelUnavailable):
    """The checkpoint's model needs a package that is missing, and one sample of this process already
    failed saying so: the others are skipped with a pointer instead of repeating the line."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from ..backends import BackendError
    from ..checkpoint import CheckpointError
    from ..models import ModelLoadError

    return (BackendError, CheckpointError, ModelLoadError, OSError, ValueError)


def _is_missing_package(exc: BaseException) -> bool:
    from ..models import MissingPackage

    return isinstance(exc, MissingPackage)


@dataclass(frozen=True)
class Task:
    """One eval item's generation job."""

    nodeid: str
    label: str
    sample: Sample
    prompt_name: str
    prompt: PromptBuilder


@dataclass(frozen=True)
class Outcome:
    """What a task got: the answer (or error) and how it was produced."""

    generated: Generated
    key: str
    sample_hash: str
    latency_s: float
    batch_id: str
    batch_size: int
    resumed: Record | None = None


class ModelPool:
    """Loads each checkpoint once per process; keeps one model in memory at a time.

    Items are ordered checkpoint by checkpoint, so keeping one model never reloads one without xdist.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._current: Handle | None = None
        self.failures: dict[str, str] = {}
        self.missing_package: set[str] = set()
        self.loads: dict[str, int] = {}
        self.load_times: dict[str, float] = {}

    def get(self, request: ModelRequest) -> Handle:
        if self._current is not None and self._current.request == request:
            return self._current
        if request.label in self.failures:
            if request.label in self.missing_package:
                raise AlreadySaid(
                    f"{request.label}: not loaded: a package it needs is missing (said once, by the first "
                    "failed sample of this checkpoint)"
                )
            raise ModelUnavailable(f"{request.label}: not loaded: {self.failures[request.label]}")
        self.release()
        try:
            loaded = self.backend.load(request)
        except _user_errors() as exc:
            # Said once, in one line; every later item of this checkpoint fails fast with the same reason
            # (or, for a missing package, which no sample can change, is skipped pointing at that line).
            self.failures[request.label] = str(exc)
            if _is_missing_package(exc):
                self.missing_package.add(request.label)
            raise ModelUnavailable(f"{request.label}: {exc}") from None
        self.loads[request.label] = self.loads.get(request.label, 0) + 1
        self.load_times[request.label] = loaded.load_time_s
        self._current = loaded
        return loaded

    def release(self) -> None:
        if self._current is None:
            return
        device = self._current.device
        self.backend.close(self._current)
        self._current = None
        gc.collect()
        self.backend.free_memory(device)


def settings_hash(config: EvalConfig, backend: Backend) -> str:
    """Generation settings as the backend resolves them here ("auto" dtype/device differ between machines)."""
    resolved = {**config.generation_settings(), **backend.settings_identity()}
    if config.backend != "hf":  # the hf backend's keys stay those of every earlier run
        resolved["backend"] = config.backend
    blob = json.dumps(resolved, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def record_key(fingerprint: str, settings: str, prompt_name: str, sample_hash: str) -> str:
    blob = "\0".join((fingerprint, settings, prompt_name, sample_hash))
    return hashlib.sha256(blob.encode()).hexdigest()


def load_resume_index(results_dir: Path) -> dict[str, Record]:
    """Finished (error-free) records of every earlier run under ``results_dir``, by key."""
    index: dict[str, Record] = {}
    if not results_dir.is_dir():
        return index
    for path in sorted(results_dir.glob("*/records*.jsonl")):
        for record in read_records(path):
            if record.ok and record.key and record.prediction is not None:
                index[record.key] = record
    return index


class Engine:
    def __init__(
        self,
        config: EvalConfig,
        pool: ModelPool,
        requests: dict[str, ModelRequest],
        writer: RecordWriter | None,
        worker: str,
        resume_index: dict[str, Record],
        run_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.run_dir = run_dir
        self.pool = pool
        self.requests = requests
        self.writer = writer
        self.worker = worker
        self.resume_index = resume_index
        self.settings = GenerationSettings(
            config.generate_method, config.max_new_tokens, config.num_beams, config.max_prompt_tokens
        )
        self.backend = pool.backend
        self.settings_hash = settings_hash(config, self.backend)
        self.batch_limit = config.batch_size  # shrinks for good after an out-of-memory in auto mode
        self._ready: dict[str, Outcome] = {}
        self._batches = 0
        self._fingerprints: dict[str, str] = {}
        self._inflight_offsets: dict[Path, int] = {}
        self._inflight_started: dict[str, list[str]] = {}
        self._inflight_done: set[str] = set()
        self.generated_samples = 0  # how many samples this process actually generated (tests count it)

    # -- keys ------------------------------------------------------------------------------------
    def fingerprint(self, label: str) -> str:
        """The weights' content hash, without loading the model (cached by path+size+mtime)."""
        if label not in self._fingerprints:
            from ..checkpoint import CheckpointError

            try:
                self._fingerprints[label] = self.backend.fingerprint(self.requests[label])
            except CheckpointError as exc:
                # Unreadable weights: this checkpoint's items fail with this one line, not an internal error
                # (records still get written, with an empty fingerprint that no finished record can match).
                self._fingerprints[label] = ""
                self.pool.failures[label] = str(exc)
                raise ModelUnavailable(f"{label}: {exc}") from None
        return self._fingerprints[label]

    def _key(self, task: Task) -> tuple[str, str]:
        try:
            sample_hash = task.sample.content_hash()
        except SampleError:
            sample_hash = ""
        return record_key(
            self.fingerprint(task.label), self.settings_hash, task.prompt_name, sample_hash
        ), sample_hash

    # -- generation ------------------------------------------------------------------------------
    def outcome(self, task: Task, peers: Sequence[Task]) -> Outcome:
        """The answer for ``task``; generates ``task`` together with its not-yet-answered peers."""
        ready = self._ready.pop(task.nodeid, None)
        if ready is not None:
            return ready
        todo: list[tuple[Task, str, str]] = []
        for peer in [task, *[p for p in peers if p.nodeid != task.nodeid and p.nodeid not in self._ready]]:
            key, sample_hash = self._key(peer)
            previous = self.resume_index.get(key) if self.config.resume and sample_hash else None
            if previous is not None:
                self._ready[peer.nodeid] = Outcome(
                    Generated(previous.prediction, previous.prompt_tokens, previous.generated_tokens),
                    key,
                    sample_hash,
                    previous.latency_s,
                    previous.batch_id,
                    previous.batch_size,
                    resumed=previous,
                )
            else:
                todo.append((peer, key, sample_hash))
        if todo:
            self._run(todo)
        return self._ready.pop(task.nodeid)

    def _run(self, todo: list[tuple[Task, str, str]]) -> None:
        loaded = self.pool.get(self.requests[todo[0][0].label])
        suspects = self._suspects()
        if suspects:
            # A worker died generating a batch with these samples: the guilty one must crash alone, so
            # the others are generated without it and a suspect only when its own item runs.
            current, peers = todo[0], todo[1:]
            if current[1] in suspects:
                self._run_chunk(loaded, [current])
                return
            todo = [current, *[p for p in peers if p[1] not in suspects]]
        start = 0
        while start < len(todo):
            chunk = todo[start : start + self.batch_limit]
            self._run_chunk(loaded, chunk)
            start += len(chunk)

    def _suspects(self) -> set[str]:
        """Keys of batches that another worker started and never finished (it crashed).

        Called before every batch, so each in-flight log is read incrementally (only complete new lines);
        this process's own log is skipped: had one of its batches crashed, it would not be running.
        """
        if self.run_dir is None:
            return set()
        own = f"inflight-{self.worker}.jsonl"
        for path in self.run_dir.glob("inflight-*.jsonl"):
            if path.name == own:
                continue
            offset = self._inflight_offsets.get(path, 0)
            with path.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self._inflight_offsets[path] = offset + len(complete)
            for line in complete.decode("utf-8", errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if "done" in entry:
                    self._inflight_done.add(str(entry["done"]))
                elif "batch" in entry:
                    self._inflight_started[str(entry["batch"])] = list(entry.get("keys", []))
        return {
            key
            for batch, keys in self._inflight_started.items()
            if batch not in self._inflight_done
            for key in keys
        }

    def _mark(self, entry: dict[str, object]) -> None:
        if self.run_dir is None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.run_dir / f"inflight-{self.worker}.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _run_chunk(self, loaded: Handle, chunk: list[tuple[Task, str, str]]) -> None:
        parts = [task.prompt(task.sample) for task, _, _ in chunk]
        batch_id = f"{self.worker}:{loaded.request.label}:{self._batches + 1}:{os.getpid()}"
        self._mark({"batch": batch_id, "keys": [key for _, key, _ in chunk]})
        started = time.perf_counter()
        try:
            results = self.backend.generate(loaded, parts, self.settings)
        except Exception as exc:
            if not self.backend.is_out_of_memory(exc):
                raise
            self._mark({"done": batch_id})  # an out-of-memory is not a crash: its samples are not suspects
            self._after_oom(loaded)
            if len(chunk) == 1:
                error = (
                    f"out of memory at batch size 1 on {loaded.device_name}: this sample alone does not fit; "
                    "try a smaller --max-new-tokens or --dtype bfloat16, or a device with more memory"
                )
                results = [Generated(None, error=error)]
            else:
                half = (len(chunk) + 1) // 2
                if self.config.auto_batch:
                    self.batch_limit = max(1, min(self.batch_limit, half))
                self._run_chunk(loaded, chunk[:half])
                self._run_chunk(loaded, chunk[half:])
                return
        latency = time.perf_counter() - started
        self._batches += 1
        self._mark({"done": batch_id})
        self.generated_samples += len(chunk)
        for (task, key, sample_hash), generated in zip(chunk, results, strict=True):
            self._ready[task.nodeid] = Outcome(generated, key, sample_hash, latency, batch_id, len(chunk))

    def _after_oom(self, loaded: Handle) -> None:
        gc.collect()
        self.backend.free_memory(loaded.device)

    # -- records ---------------------------------------------------------------------------------
    def make_record(
        self,
        task: Task,
        dataset: str,
        outcome: Outcome | None,
        scores: dict[str, float | None],
        metric: str | None,
        error: str | None,
        notes: Iterable[str] = (),
        flavor: str | None = None,
    ) -> Record:
        request = self.requests[task.label]
        loaded_info: dict[str, object] = {
            "load_time_s": self.pool.load_times.get(task.label),
            "model_loads": self.pool.loads.get(task.label, 0),
            "peak_memory_mb": round(self.backend.peak_memory_mb(self._device()), 1),
            "device": self._device(),
            "device_name": self._device_name(),
            "dtype": self._dtype(),
            "question": task.sample.text[:500],
        }
        current = self._current()
        if current is not None and current.replaced_tensors is not None:
            loaded_info["replaced_tensors"] = current.replaced_tensors
            loaded_info["total_tensors"] = current.total_tensors
        notes = [n for n in notes if n]
        if notes:
            loaded_info["notes"] = notes
        if outcome is None:  # failed before generation (unreadable image, model not loaded, ...)
            try:
                key, sample_hash = self._key(task)
            except Exception:  # the fingerprint itself may be what failed (a vanished checkpoint)
                key, sample_hash = "", ""
            outcome = Outcome(Generated(None), key, sample_hash, 0.0, "", 1)
        gen = outcome.generated
        return Record(
            sample_id=task.sample.id,
            dataset=dataset,
            checkpoint=task.label,
            checkpoint_path=str(request.ckpt or ""),
            fingerprint=self._safe_fingerprint(task.label),
            key=outcome.key,
            sample_hash=outcome.sample_hash,
            settings_hash=self.settings_hash,
            prediction=gen.prediction,
            references=list(task.sample.references),
            scores=scores,
            metric=metric,
            metric_flavor=flavor or self.config.metric_flavor,
            group=task.sample.group,
            image_hash=_image_hash(task.sample),
            category=task.sample.category,
            error=error or gen.error,
            latency_s=outcome.latency_s,
            batch_id=outcome.batch_id,
            batch_size=outcome.batch_size,
            prompt_tokens=gen.prompt_tokens,
            generated_tokens=gen.generated_tokens,
            worker=self.worker,
            generate_method=self.config.generate_method,
            resumed=outcome.resumed is not None,
            extra={**loaded_info, **({"ttft_s": gen.ttft_s} if gen.ttft_s is not None else {})},
        )

    def _safe_fingerprint(self, label: str) -> str:
        try:
            return self.fingerprint(label)
        except Exception:
            return ""

    def write(self, record: Record) -> None:
        if self.writer is not None:
            self.writer.write(record)

    def _current(self) -> Handle | None:
        return self.pool._current

    def _device(self) -> str:
        current = self._current()
        return current.device if current is not None else "cpu"

    def _device_name(self) -> str:
        current = self._current()
        return current.device_name if current is not None else ""

    def _dtype(self) -> str:
        current = self._current()
        return current.dtype if current is not None else ""

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.pool.release()


def _image_hash(sample: Sample) -> str | None:
    try:
        return sample.image_hash()
    except SampleError:  # an unreadable image: the sample already fails with that reason
        return None
