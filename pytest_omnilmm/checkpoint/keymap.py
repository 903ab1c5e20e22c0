"""Checkpoint tensor names -> the model's names, mapped the way transformers maps them when it loads.

transformers 5 keeps, per architecture, a list of weight transforms (``conversion_mapping.py``) between
the layout checkpoints are saved in and the model's module tree. ``save_pretrained`` writes the saved
layout (LLaVA: ``language_model.model.layers.0...``; Qwen2-VL: ``model.layers.0...``, ``visual...``);
``model.state_dict()`` has the tree's names (``model.language_model.layers.0...``). When it loads, every
checkpoint name goes through the renamings, then at most one converter (a transform that also reshapes
tensors: fused experts, split qkv), then gets the model's ``base_model_prefix`` added or removed where
that makes it one of the model's names; a name that is the model's already stays as it is
(``core_model_loading.convert_and_load_state_dict_in_model``). ``to_model_names`` does the same with
transformers' own functions, so a ``--ckpt`` file in either layout lands where ``from_pretrained`` puts it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .formats import CheckpointError


@dataclass(frozen=True)
class MappedCheckpoint:
    """A checkpoint's tensors under the model's names.

    A name that matches nothing in the model keeps its name in the checkpoint (so messages quote the file).
    """

    tensors: dict[str, Any]
    sources: dict[str, str]  # model name -> the (first) checkpoint name it came from
    renamed: int  # checkpoint names that are not the model's own but map (or convert) onto them


@dataclass(frozen=True)
class _Transforms:
    renamings: list[Any]
    converters: list[Any]
    rename: Callable[..., tuple[str, str | None]]  # transformers' rename_source_key
    sort_key: Callable[[str], Any]


def _transforms(model: Any) -> _Transforms | None:
    """transformers' loading transforms for this model (None: not a transformers model, or a transformers
    without this machinery; then only ``base_model_prefix`` is added or removed)."""
    try:
        from transformers import PreTrainedModel
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import (
            WeightConverter,
            WeightRenaming,
            dot_natural_key,
            rename_source_key,
        )
    except ImportError:
        return None
    if not isinstance(model, PreTrainedModel):
        return None
    transforms = get_model_conversion_mapping(model)
    return _Transforms(
        renamings=[t for t in transforms if isinstance(t, WeightRenaming)],
        converters=[t for t in transforms if isinstance(t, WeightConverter)],
        rename=rename_source_key,
        sort_key=dot_natural_key,
    )


def _with_prefix(key: str, prefix: str, state: Mapping[str, Any]) -> str:
    """Add or remove ``base_model_prefix`` where that gives a model name (transformers' last step)."""
    if not prefix or key in state:
        return key
    if key.startswith(prefix + ".") and key[len(prefix) + 1 :] in state:
        return key[len(prefix) + 1 :]
    if f"{prefix}.{key}" in state:
        return f"{prefix}.{key}"
    return key


def to_model_names(model: Any, incoming: Mapping[str, Any], source: Path) -> MappedCheckpoint:
    """Rename (and, where transformers converts, reshape) ``incoming`` onto ``model``'s state-dict names."""
    state = model.state_dict()
    prefix = str(getattr(model, "base_model_prefix", "") or "")
    transforms = _transforms(model)
    out: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def put(name: str, origin: str, value: Any) -> None:
        if name in out:
            raise CheckpointError(
                f"checkpoint {source} has two tensors for the model's {name} ({sources[name]} and {origin}, "
                "one in the saved layout and one in the model's own); re-save it with one of them"
            )
        out[name] = value
        sources[name] = origin

    if transforms is None:
        for key, value in incoming.items():
            put(_with_prefix(key, prefix, state), key, value)
        return MappedCheckpoint(out, sources, sum(1 for k, v in sources.items() if k != v))

    moved = 0
    by_pattern = {p: c for c in transforms.converters for p in c.source_patterns}
    pending: dict[str, Any] = {}  # model name -> a converter gathering its checkpoint tensors
    for key in sorted(incoming, key=transforms.sort_key):
        renamed, pattern = transforms.rename(
            key, transforms.renamings, transforms.converters, prefix or None, state
        )
        if renamed not in state and key in state:
            renamed, pattern = _with_prefix(key, prefix, state), None
        if renamed not in state:
            put(key, key, incoming[key])  # unexpected: named as in the file
            continue
        moved += renamed != key or pattern is not None
        if pattern is None:
            put(renamed, key, incoming[key])
        else:
            converter = pending.setdefault(renamed, copy.deepcopy(by_pattern[pattern]))
            converter.add_tensor(renamed, key, pattern, incoming[key])
            sources.setdefault(renamed, key)
    for first, converter in pending.items():
        origin = sources.pop(first)
        try:
            realized = converter.convert(first, model=model, config=model.config)
        except Exception as exc:  # transformers' own conversion: any failure means the tensors do not fit
            raise CheckpointError(
                f"checkpoint {source}: {origin} is in a layout transformers converts for this model "
                f"({type(converter).__name__} to {first}), and the conversion failed ({exc}); point "
                "--model_path at the model the checkpoint was trained from"
            ) from None
        for name, value in realized.items():
            put(name, origin, value[0] if isinstance(value, list) else value)
    return MappedCheckpoint(out, sources, moved)
