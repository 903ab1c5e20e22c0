"""Collection: where samples become test items. Each ``@pytest.mark.dataset`` is resolved to a file
(``--data``, the catalogue, ``LMUData``, or the marker's own path), read, cut to ``--limit``, and
parametrized over the checkpoints; then ``--shard`` keeps its share, items are ordered checkpoint by
checkpoint, and the batches (which items share one generate call) are planned on the final list.

Runs in every process that collects (each xdist worker collects for itself; the xdist controller
collects nothing). Loads no model and decodes no image.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .batching import plan_units_by_key
from .config import EvalConfig
from .ids import EvalParam, UnavailableParam, eval_param
from .keys import CONFIG_KEY, DATASET_MARKER, PEERS_KEY
from .process_state import freeze_gc
from .session import mark_has_evals

DECLARED_KEY = pytest.StashKey[dict[str, str]]()  # dataset name -> the eval (node id) that declared it


@dataclass(frozen=True)
class EvalCase:
    """What a dataset marker declares for one test function and dataset."""

    dataset: str
    path: Path
    format: str | None
    metric: str
    prompt: str  # a stable name: part of the resume key
    flavor: str | None = None
    builder: Any = None  # the prompt builder (a PROMPTS entry or the eval's own function)


@dataclass(frozen=True)
class Unavailable:
    """A parameter standing in for a dataset that cannot be read: skipped or failed with the reason."""

    dataset: str
    reason: str
    broken: bool  # True: the file exists but is bad (fail); False: absent (skip)


def _dataset_path(cfg: EvalConfig, name: str, declared: str | None, module_dir: Path) -> Path | None:
    if name in cfg.data:
        return cfg.data[name]
    from .catalogue import find, lmudata_path

    entry = find(name)
    if entry is not None and entry.name == name and entry.vlmeval in cfg.data:  # --data MMStar=PATH
        return cfg.data[entry.vlmeval]
    found = lmudata_path(name, getattr(cfg, "lmudata", None))
    if found is not None:
        return found
    if declared is None:
        return None
    path = Path(declared)
    return path if path.is_absolute() else module_dir / path


def _limited(samples: list[Any], limit: int | None, seed: int, dataset: str) -> list[Any]:
    """A seeded random subset, identical on every run and worker, in the dataset's own order."""
    if limit is None or len(samples) <= limit:
        return samples

    def rank(sample: Any) -> str:
        return hashlib.sha256(f"{seed}\0{dataset}\0{sample.id}".encode()).hexdigest()

    chosen = {id(s) for s in sorted(samples, key=rank)[:limit]}
    return [s for s in samples if id(s) in chosen]


def _prompt_name(prompt: Any) -> str:
    if prompt is None:
        return "default"
    if callable(prompt):
        return f"{getattr(prompt, '__module__', '?')}.{getattr(prompt, '__qualname__', repr(prompt))}"
    return str(prompt)


def _prompt_builder(where: str, prompt: Any) -> Any:
    from .generation import get_prompt_builder

    try:
        return get_prompt_builder(prompt)
    except ValueError as exc:
        pytest.fail(f"{where}: @pytest.mark.dataset(prompt=...): {exc}", pytrace=False)


def parametrize_samples(metafunc: pytest.Metafunc) -> None:
    """One test item per (checkpoint, sample) of each dataset a ``@pytest.mark.dataset`` declares: the
    ``sample`` fixture is parametrized with ``ids.EvalParam`` (or ``UnavailableParam`` for a dataset that
    cannot be read). No model is loaded and no image decoded here."""
    markers = list(metafunc.definition.iter_markers(DATASET_MARKER))
    if not markers or "sample" not in metafunc.fixturenames:
        return
    cfg = metafunc.config.stash[CONFIG_KEY]
    from .datasets import DatasetError, load_dataset

    module_dir = Path(str(metafunc.definition.fspath)).parent
    declared = metafunc.config.stash.setdefault(DECLARED_KEY, {})
    several = len(markers) > 1
    params: list[Any] = []
    for marker in reversed(markers):  # iter_markers yields the closest (last written) first
        name = str(marker.args[0]) if marker.args else str(marker.kwargs.get("name", ""))
        if not name:
            raise pytest.UsageError(
                f"{metafunc.definition.nodeid}: @pytest.mark.dataset needs a dataset name"
            )
        path = _dataset_path(cfg, name, marker.kwargs.get("path"), module_dir)
        case = EvalCase(
            dataset=name,
            path=path or Path(),
            format=marker.kwargs.get("format"),
            metric=str(marker.kwargs.get("metric", "exact_match")),
            prompt=_prompt_name(marker.kwargs.get("prompt")),
            flavor=marker.kwargs.get("flavor"),
            builder=_prompt_builder(metafunc.definition.nodeid, marker.kwargs.get("prompt")),
        )
        owner = declared.setdefault(name, metafunc.definition.nodeid)
        if owner != metafunc.definition.nodeid:
            # Records are keyed by (checkpoint, dataset, sample id): two evals of one dataset would overwrite.
            pytest.fail(
                f"{metafunc.definition.nodeid}: dataset {name!r} is already evaluated by {owner}; "
                f"give this eval its own dataset name (e.g. @pytest.mark.dataset('{name}_2', path=...))",
                pytrace=False,
            )
        prefix = f"{name}-" if several else ""
        if path is None or not path.exists():
            where = f"not found at {path}" if path is not None else "has no location"
            reason = f"dataset {name!r} {where}; set --data {name}=PATH (or omnilmm_data in ini)"
            from .catalogue import lmudata_hint

            reason += lmudata_hint(name)
            params.append(
                pytest.param(
                    UnavailableParam(case, Unavailable(name, reason, broken=False)),
                    id=f"{prefix}unavailable",
                    marks=pytest.mark.skip(reason=reason),
                )
            )
            continue
        try:
            samples = load_dataset(path, name=name, format=case.format, image_root=cfg.data_images.get(name))
        except DatasetError as exc:
            params.append(
                pytest.param(
                    UnavailableParam(case, Unavailable(name, str(exc), broken=True)), id=f"{prefix}unreadable"
                )
            )
            continue
        samples = _limited(samples, cfg.limit, cfg.limit_seed, name)
        if callable(marker.kwargs.get("prepare")):  # a benchmark's own step (catalogue/prepare.py)
            samples = [marker.kwargs["prepare"](s) for s in samples]
        for choice in cfg.checkpoints:
            for sample in samples:
                param = EvalParam(case, choice.label, sample, metafunc.definition.nodeid)
                params.append(pytest.param(param, id=param.node_id_part(prefix)))
    metafunc.parametrize("sample", params, indirect=True)


def shard_of(nodeid: str, count: int) -> int:
    """The ``--shard i/N`` an item belongs to: a hash of its node id, stable across runs and machines."""
    return int(hashlib.sha256(nodeid.encode()).hexdigest()[:12], 16) % count


def select_and_order(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--shard``: keep this shard's eval items; then checkpoint-major order (one model load each)."""
    cfg = config.stash[CONFIG_KEY]
    if cfg.shard is not None:
        index, count = cfg.shard
        keep = [it for it in items if not is_eval_item(it) or shard_of(it.nodeid, count) == index]
        kept = set(keep)
        dropped = [it for it in items if it not in kept]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    # Checkpoint-major order: each checkpoint's model is loaded once per process.
    rank = {c.label: i for i, c in enumerate(cfg.checkpoints)}
    items.sort(key=lambda it: rank.get(_label(it), -1))


def plan_batches(session: pytest.Session) -> None:
    """Batches are planned on the final item list (after -k, --lf, --shard and every other filter)."""
    cfg = session.config.stash[CONFIG_KEY]
    items = session.items
    units = plan_units_by_key([_batch_key(it) for it in items], cfg.batch_size)
    groups: dict[int, list[pytest.Item]] = {}
    for item, unit in zip(items, units, strict=True):
        if is_eval_item(item):
            groups.setdefault(unit, []).append(item)
    for members in groups.values():
        for item in members:
            item.stash[PEERS_KEY] = members
    if groups:
        mark_has_evals(session.config)
        # Thousands of collected items are long-lived: freezing them keeps the garbage collector from walking
        # them during generation (measured: ~0.5 ms/sample of harness overhead on the demo model).
        freeze_gc(session.config)


def _batch_key(item: pytest.Item) -> Any:
    param = eval_param(item)
    return param.batch_key if param is not None else item.nodeid


def is_eval_item(item: pytest.Item) -> bool:
    return eval_param(item) is not None


def _label(item: pytest.Item) -> str | None:
    param = eval_param(item)
    return param.label if param is not None else None
