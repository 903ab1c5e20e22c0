"""Read a checkpoint's tensors: safetensors directly, pickles only through ``torch.load(weights_only=True)``;
training-loop containers unwrapped, DDP ``module.`` / torch.compile ``_orig_mod.`` prefixes stripped."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .formats import SAFETENSORS_SUFFIX, CheckpointError, CheckpointSpec

if TYPE_CHECKING:
    import torch

CONVERT_HINT = (
    "safetensors is preferred: load it yourself in an environment you trust "
    "(torch.load(path, weights_only=False)) and save the state dict with safetensors.torch.save_file"
)
# Containers that training loops wrap a state dict in, most specific first.
STATE_DICT_CONTAINERS = ("state_dict", "model_state_dict", "model", "module")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(spec: CheckpointSpec) -> dict[str, torch.Tensor]:
    """All tensors of the checkpoint on CPU; wrapper containers unwrapped, DDP/compile prefixes stripped.

    For a PEFT adapter: the adapter's own tensors, names as peft saved them.
    """
    tensors: dict[str, torch.Tensor] = {}
    if spec.kind == "sharded":
        expected = _index_names(spec)
    for f in spec.weight_files:
        part = _read_file(f)
        dup = tensors.keys() & part.keys()
        if dup:
            raise CheckpointError(
                f"tensor {sorted(dup)[0]!r} appears in two shards of {spec.path}; re-save the checkpoint"
            )
        tensors.update(part)
    if spec.kind == "sharded":
        absent = sorted(expected - tensors.keys())
        if absent:
            raise CheckpointError(
                f"{len(absent)} tensors listed in the index of {spec.path} are not in its shards "
                f"({', '.join(absent[:3])}); re-save or re-download the checkpoint"
            )
    if spec.kind == "peft":
        return tensors
    return strip_wrapper_prefixes(tensors, spec.path)


def _index_names(spec: CheckpointSpec) -> set[str]:
    index = next(f for f in spec.extra_files if f.name.endswith(".index.json"))
    weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    return set(strip_wrapper_prefixes(dict.fromkeys(weight_map), spec.path))


def _read_file(f: Path) -> dict[str, torch.Tensor]:
    if f.name.lower().endswith(SAFETENSORS_SUFFIX):
        return _read_safetensors(f)
    return unwrap_state_dict(_torch_load(f), f)


def _read_safetensors(f: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(f), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"checkpoint {f} could not be read as safetensors ({exc}); re-download or re-save it"
        ) from None


_GLOBAL_NAME = re.compile(r"GLOBAL ([\w.]+)")


def _torch_load(f: Path) -> Any:
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it did not write; the outcome is what matters here.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(str(f), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL_NAME.search(str(exc))
        what = (
            f"the Python object {found.group(1)}"
            if found
            else "pickle instructions safe loading does not allow"
        )
        raise CheckpointError(
            f"checkpoint {f} was refused: it contains {what}, and unpickling it could execute code, so it "
            f"was loaded with weights_only=True and nothing in it was run; {CONVERT_HINT}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {f} could not be read ({first}); re-download or re-save it"
        ) from None


def unwrap_state_dict(obj: Any, source: Path) -> dict[str, torch.Tensor]:
    """The model's tensors from what torch.load returned: a state dict, or one wrapped by a training loop."""
    import torch

    seen = 0
    while isinstance(obj, Mapping) and seen < 8:
        seen += 1
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
        inner = next((obj[k] for k in STATE_DICT_CONTAINERS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if isinstance(obj, Mapping):
        keys = ", ".join(repr(k) for k in list(obj)[:6])
        raise CheckpointError(
            f"checkpoint {source} holds no tensors where a state dict was expected (keys: {keys}); save "
            f"model.state_dict() itself or wrap it as {{'state_dict': ...}}"
        )
    raise CheckpointError(
        f"checkpoint {source} holds a {type(obj).__name__}, not a state dict; save model.state_dict() instead"
    )


def strip_wrapper_prefixes(tensors: dict[str, Any], source: Path) -> dict[str, Any]:
    """Drop DDP ``module.`` and torch.compile ``_orig_mod.`` wrappers (leading, repeated, any order).

    ``_orig_mod`` is also removed inside a name: compiling a submodule puts it there, and no real module
    is called that.
    """
    out: dict[str, Any] = {}
    for key, value in tensors.items():
        name = key
        while name.startswith(WRAPPER_PREFIXES):
            name = name.split(".", 1)[1]
        name = name.replace("._orig_mod.", ".")
        if name in out:
            raise CheckpointError(
                f"checkpoint {source} has two tensors that both mean {name!r} once wrapper prefixes are "
                "removed; re-save it from the unwrapped model"
            )
        out[name] = value
    return out
