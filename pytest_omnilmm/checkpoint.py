"""Find, validate, read and apply checkpoints; fingerprint them.

``inspect_checkpoint`` runs while pytest starts: it only looks at the file system and at cheap headers
(no torch), so a bad ``--ckpt`` fails before any model is built. ``read_state_dict`` reads tensors
(pickles only through ``torch.load(weights_only=True)``); ``apply_checkpoint`` checks every name and shape
against an already built model before it writes anything.

Kinds of checkpoint (``CheckpointSpec.kind``) say how the weights are stored:
  ``safetensors``     one ``.safetensors`` file
  ``torch``           one ``.bin`` / ``.pt`` / ``.pth`` / ``.ckpt`` pickle
  ``sharded``         an index (``model.safetensors.index.json`` / ``pytorch_model.bin.index.json``) + shards
  ``pretrained_dir``  a directory with exactly one weight file (``model.safetensors``, ``pytorch_model.bin``)
  ``peft``            a PEFT adapter directory (``adapter_config.json`` + ``adapter_model.safetensors|bin``)
``has_config`` says whether the directory carries its own ``config.json`` (sharded or not), i.e. whether it
can be loaded as a model on its own with ``from_pretrained``.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from pytest_omnilmm.fingerprint import fingerprint_files

if TYPE_CHECKING:
    import torch


SAFETENSORS_SUFFIX = ".safetensors"
TORCH_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_INDEX = "pytorch_model.bin.index.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
CONVERT_HINT = (
    "safetensors is preferred: load it yourself in an environment you trust "
    "(torch.load(path, weights_only=False)) and save the state dict with safetensors.torch.save_file"
)
# Containers that training loops wrap a state dict in, most specific first.
STATE_DICT_CONTAINERS = ("state_dict", "model_state_dict", "model", "module")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")

_SHARD_NAME = re.compile(r"-\d+-of-\d+\.(safetensors|bin)$")
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8, "C64": 8,
}  # fmt: skip
# The safetensors library refuses larger headers; a bigger length means a corrupt file.
_MAX_SAFETENSORS_HEADER = 100_000_000


class CheckpointError(Exception):
    """A checkpoint that cannot be used; ``str()`` is one line: what, which path, what to do."""


@dataclass(frozen=True)
class CheckpointSpec:
    path: Path
    kind: str  # "safetensors" | "sharded" | "pretrained_dir" | "torch" | "peft"
    weight_files: tuple[Path, ...]
    has_config: bool  # the directory carries its own config.json
    # Files that change how the weights are read (shard index, adapter/model config): fingerprinted too.
    extra_files: tuple[Path, ...] = ()


# --------------------------------------------------------------------------------------------- inspect


def inspect_checkpoint(path: str | Path) -> CheckpointSpec:
    """Classify and validate a checkpoint path without importing torch; CheckpointError if unusable."""
    if str(path).strip() == "":
        raise CheckpointError("empty checkpoint path; give --ckpt a file or directory (or leave it out)")
    p = Path(path).expanduser()
    try:
        p.stat()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {p} does not exist; check the --ckpt path") from None
    except OSError as exc:
        raise CheckpointError(
            f"checkpoint {p} cannot be accessed ({exc.strerror}); check the --ckpt path"
        ) from None
    if p.is_dir():
        return _inspect_dir(p)
    if not p.is_file():
        raise CheckpointError(
            f"checkpoint {p} is not a regular file or directory; point --ckpt at a weights file"
        )
    return _inspect_file(p)


def _inspect_file(p: Path) -> CheckpointSpec:
    name = p.name
    if name in (SAFETENSORS_INDEX, TORCH_INDEX):
        return _sharded_spec(p.parent, p)
    suffix = p.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        validate_safetensors(p)
        return CheckpointSpec(path=p, kind="safetensors", weight_files=(p,), has_config=False)
    if suffix in TORCH_SUFFIXES:
        validate_torch_pickle(p)
        return CheckpointSpec(path=p, kind="torch", weight_files=(p,), has_config=False)
    raise CheckpointError(
        f"checkpoint {p} has an unsupported format {suffix or '(no suffix)'!r}; use a .safetensors file, "
        "a .bin/.pt/.pth/.ckpt state dict, or a save_pretrained / PEFT adapter directory"
    )


def _listdir(d: Path, what: str = "checkpoint directory") -> list[str]:
    try:
        return sorted(n for n in os.listdir(d) if not n.startswith("."))
    except OSError as exc:
        raise CheckpointError(f"{what} {d} cannot be read ({exc.strerror}); check its permissions") from None


def _inspect_dir(d: Path) -> CheckpointSpec:
    names = _listdir(d)
    if not names:
        raise CheckpointError(
            f"checkpoint {d} is an empty directory; point --ckpt at a .safetensors file or a "
            "save_pretrained directory"
        )
    files = {n for n in names if (d / n).is_file()}
    has_config = "config.json" in files
    config_extra = (d / "config.json",) if has_config else ()
    candidates: list[tuple[str, CheckpointSpec]] = []
    claimed: set[str] = set()

    for index_name in (SAFETENSORS_INDEX, TORCH_INDEX):
        if index_name in files:
            spec = _sharded_spec(d, d / index_name)
            claimed.update(f.name for f in spec.weight_files)
            candidates.append((f"{index_name} (+{len(spec.weight_files)} shards)", spec))

    if ADAPTER_CONFIG in files:
        present = [n for n in ADAPTER_WEIGHTS if n in files]
        if not present:
            raise CheckpointError(
                f"PEFT adapter directory {d} has {ADAPTER_CONFIG} but no {' or '.join(ADAPTER_WEIGHTS)}; "
                "copy the adapter weights next to it"
            )
        if len(present) > 1:
            raise CheckpointError(
                f"PEFT adapter directory {d} has both {' and '.join(present)}; remove one so it is "
                "clear which to load"
            )
        weights = d / present[0]
        _validate_weight_file(weights)
        claimed.add(present[0])
        candidates.append(
            (
                f"{ADAPTER_CONFIG} + {present[0]}",
                CheckpointSpec(d, "peft", (weights,), has_config, (d / ADAPTER_CONFIG,)),
            )
        )

    singles = [n for n in files if n not in claimed and n.lower().endswith(SAFETENSORS_SUFFIX)]
    if "pytorch_model.bin" in files and "pytorch_model.bin" not in claimed:
        singles.append("pytorch_model.bin")
    for n in sorted(singles):
        candidates.append((n, CheckpointSpec(d, "pretrained_dir", (d / n,), has_config, config_extra)))

    if not candidates:
        pickles = [n for n in sorted(files) if n.lower().endswith(TORCH_SUFFIXES)]
        if pickles:
            more = ", …" if len(pickles) > 5 else ""
            raise CheckpointError(
                f"checkpoint directory {d} has no model.safetensors or pytorch_model.bin, only "
                f"{', '.join(pickles[:5])}{more}; point --ckpt at the file you mean"
            )
        shown = ", ".join(names[:8]) + (f", … ({len(names)} entries)" if len(names) > 8 else "")
        raise CheckpointError(
            f"checkpoint directory {d} contains no weights (found: {shown}); point --ckpt at a "
            ".safetensors file, a save_pretrained directory or a PEFT adapter directory"
        )
    if len(candidates) > 1:
        labels = [label for label, _ in candidates]
        if all(_SHARD_NAME.search(label) for label in labels):
            raise CheckpointError(
                f"checkpoint directory {d} holds shards ({', '.join(labels[:4])}, …) but no "
                f"{SAFETENSORS_INDEX}; copy the index file next to the shards"
            )
        raise CheckpointError(
            f"checkpoint directory {d} holds {len(candidates)} candidate weight sets "
            f"({', '.join(labels[:6])}{', …' if len(labels) > 6 else ''}); "
            "point --ckpt at the one file (or index) you mean"
        )
    spec = candidates[0][1]
    if spec.kind == "pretrained_dir":
        _validate_weight_file(spec.weight_files[0])
    return spec


def _sharded_spec(d: Path, index: Path) -> CheckpointSpec:
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(
            f"shard index {index} cannot be read as JSON ({exc}); re-save the checkpoint"
        ) from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(
            f"shard index {index} has no 'weight_map' of tensor -> file; re-save the checkpoint"
        )
    shard_names = sorted(set(weight_map.values()))
    shards: list[Path] = []
    for name in shard_names:
        if not isinstance(name, str) or not name:
            raise CheckpointError(
                f"shard index {index} names a shard {name!r} that is not a file name; fix the index"
            )
        # Checked by name, not by resolving: hub-cache snapshots are symlinks into a blob store.
        if PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
            raise CheckpointError(f"shard index {index} points outside its directory ({name}); fix the index")
        shard = d / name
        if not shard.is_file():
            raise CheckpointError(
                f"shard {name} listed in {index} is missing; copy all shards next to the index"
            )
        _validate_weight_file(shard)
        shards.append(shard)
    extra = (index, d / "config.json") if (d / "config.json").is_file() else (index,)
    return CheckpointSpec(d, "sharded", tuple(shards), (d / "config.json").is_file(), extra)


def _validate_weight_file(p: Path) -> None:
    if p.name.lower().endswith(SAFETENSORS_SUFFIX):
        validate_safetensors(p)
    elif p.suffix.lower() in TORCH_SUFFIXES:
        validate_torch_pickle(p)
    else:
        raise CheckpointError(
            f"weight file {p} has an unsupported format; use .safetensors or a torch state dict"
        )


def validate_safetensors(p: Path) -> None:
    """Check a safetensors header (length, JSON, dtypes, offsets) against the file size; reads only that."""

    def bad(why: str) -> CheckpointError:
        return CheckpointError(
            f"checkpoint {p} is not a valid safetensors file ({why}); re-download or re-save it"
        )

    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise bad(f"only {size} bytes, too short for a header")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > min(size - 8, _MAX_SAFETENSORS_HEADER):
                raise bad(
                    f"header length {header_len} exceeds the file's {size} bytes: truncated or not "
                    "safetensors"
                )
            raw = f.read(header_len)
    except PermissionError:
        raise CheckpointError(
            f"checkpoint {p} cannot be read (permission denied); check its permissions"
        ) from None
    except OSError as exc:
        raise CheckpointError(f"checkpoint {p} cannot be read ({exc.strerror}); check the path") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad("header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    data_size = size - 8 - header_len
    end_max = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise bad(f"entry {name!r} is not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        ok_shape = isinstance(shape, list) and all(isinstance(s, int) and s >= 0 for s in shape)
        ok_offsets = (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1]
        )
        if not isinstance(dtype, str) or not ok_shape or not ok_offsets:
            raise bad(f"entry {name!r} lacks a valid dtype/shape/data_offsets")
        begin, end = offsets
        if end > data_size:
            raise bad(
                f"tensor {name!r} ends at byte {end} but only {data_size} data bytes are present: truncated"
            )
        width = _DTYPE_BYTES.get(dtype)
        if width is not None:
            count = 1
            for s in shape:
                count *= s
            if count * width != end - begin:
                raise bad(f"tensor {name!r} needs {count * width} bytes but its offsets span {end - begin}")
        end_max = max(end_max, end)
    if end_max != data_size:
        raise bad(
            f"{data_size - end_max} bytes after the last tensor: the file is damaged or not safetensors"
        )


def validate_torch_pickle(p: Path) -> None:
    """A torch.save file is a zip archive holding a data.pkl (legacy: a bare pickle); check which, cheaply."""
    try:
        with open(p, "rb") as f:
            head = f.read(4)
    except PermissionError:
        raise CheckpointError(
            f"checkpoint {p} cannot be read (permission denied); check its permissions"
        ) from None
    except OSError as exc:
        raise CheckpointError(f"checkpoint {p} cannot be read ({exc.strerror}); check the path") from None
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(p) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            raise CheckpointError(
                f"checkpoint {p} is a damaged zip archive (truncated?); re-download or re-save it"
            ) from None
        if not any(n.endswith("data.pkl") for n in names):
            raise CheckpointError(f"checkpoint {p} is a zip archive but not a torch.save file (no data.pkl)")
        return
    # Pickle protocols 2..5 start with PROTO <n>; the legacy torch format is such a pickle.
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return
    raise CheckpointError(
        f"checkpoint {p} is neither a torch.save archive nor a pickle (corrupt or another format); "
        "re-download it, or point --ckpt at a .safetensors file"
    )


# ------------------------------------------------------------------------------------------------- read


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


# --------------------------------------------------------------------------------------------- apply


@dataclass(frozen=True)
class LoadReport:
    """What ``apply_checkpoint`` did. Use ``model`` afterwards: a PEFT merge returns a new module."""

    spec: CheckpointSpec
    replaced: int  # distinct model tensors overwritten (tied names count once)
    total: int  # distinct tensors in the model's state dict
    missing: tuple[str, ...]  # model names kept at the base model's values (only with allow_partial)
    ignored: tuple[str, ...]  # checkpoint entries deliberately skipped (e.g. non-persistent buffers)
    tied_embeddings: bool  # a tensor shared by several names (lm_head tied to embed_tokens) was loaded once
    model: Any = field(compare=False, repr=False)

    @property
    def missing_count(self) -> int:
        return len(self.missing)

    def describe(self) -> str:
        """One line for the report header."""
        text = f"{self.spec.kind} {self.spec.path}: replaced {self.replaced}/{self.total} tensors"
        if self.missing:
            text += f", {len(self.missing)} names kept from the base model (partial checkpoint)"
        if self.tied_embeddings:
            text += ", tied embeddings loaded once"
        return text


def apply_checkpoint(model: Any, spec: CheckpointSpec, *, allow_partial: bool = False) -> LoadReport:
    """Load ``spec`` onto the already built ``model`` and return what was done.

    Every name and shape is checked before anything is written, so on CheckpointError the model is left as
    it was (except for a PEFT adapter that peft itself rejects half-way: rebuild the model then). Values are
    copied into the existing tensors, keeping the model's dtype and device. Strict: missing names are an
    error unless ``allow_partial``; unexpected names and other shapes always are. For ``peft`` the adapter
    is merged and the merged model is ``report.model``; otherwise ``report.model is model``.
    """
    if spec.kind == "peft":
        return _apply_peft(model, spec)
    import torch

    incoming = read_state_dict(spec)
    plan = _plan_load(model, incoming, spec.path, allow_partial)
    with torch.no_grad():
        for target, source in plan.copies:
            target.copy_(source)
    return LoadReport(
        spec=spec,
        replaced=len(plan.copies),
        total=plan.total,
        missing=plan.missing,
        ignored=plan.ignored,
        tied_embeddings=plan.tied,
        model=model,
    )


@dataclass(frozen=True)
class _Plan:
    copies: tuple[tuple[Any, Any], ...]  # (model tensor, checkpoint tensor)
    total: int
    missing: tuple[str, ...]
    ignored: tuple[str, ...]
    tied: bool


def _alias_groups(state: dict[str, Any]) -> list[list[str]]:
    """Names of the model's state dict grouped by the storage they share (tied weights form one group)."""
    groups: dict[Any, list[str]] = {}
    for name, t in state.items():
        if t.device.type == "meta" or t.numel() == 0:
            key: Any = name
        else:
            key = (
                t.device,
                t.untyped_storage().data_ptr(),
                t.storage_offset(),
                tuple(t.shape),
                tuple(t.stride()),
            )
        groups.setdefault(key, []).append(name)
    return list(groups.values())


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _names(names: list[str], n: int = 3) -> str:
    shown = ", ".join(names[:n])
    return shown + (", …" if len(names) > n else "")


def _plan_load(model: Any, incoming: dict[str, Any], source: Path, allow_partial: bool) -> _Plan:
    import torch

    state = model.state_dict()
    transient = {name for name, _ in model.named_buffers()} - state.keys()
    patterns = [re.compile(p) for p in (getattr(model, "_keys_to_ignore_on_load_unexpected", None) or [])]
    ignored = sorted(
        k for k in incoming if k not in state and (k in transient or any(p.search(k) for p in patterns))
    )
    unexpected = sorted(k for k in incoming if k not in state and k not in ignored)
    matched = [k for k in incoming if k in state]
    groups = _alias_groups(state)

    if not matched:
        hint = _prefix_hint(unexpected, set(state))
        if hint:
            raise CheckpointError(
                f"none of the {len(incoming)} tensors in {source} match the model's names "
                f"({_names(unexpected)}); {hint}"
            )
        raise CheckpointError(
            f"none of the {len(incoming)} tensors in {source} match the model's {len(state)} names "
            f"(checkpoint: {_names(unexpected, 2)}; model: {_names(sorted(state), 2)}): it is for another "
            "architecture; point --model_path at the model it was trained from"
        )

    bad_shapes = [k for k in sorted(matched) if tuple(incoming[k].shape) != tuple(state[k].shape)]
    if bad_shapes:
        shown = "; ".join(
            f"{k}: model {tuple(state[k].shape)}, checkpoint {tuple(incoming[k].shape)}"
            for k in bad_shapes[:3]
        )
        raise CheckpointError(
            f"{_count(len(bad_shapes), 'tensor')} in {source} have another shape than in the model ({shown}"
            f"{'; …' if len(bad_shapes) > 3 else ''}): the checkpoint is for another model size or "
            "architecture; point --model_path at the base model it was trained from"
        )

    copies: list[tuple[Any, Any]] = []
    missing: list[str] = []
    tied = False
    for group in groups:
        present = [n for n in group if n in incoming]
        if not present:
            missing.extend(group)
            continue
        first = incoming[present[0]]
        for other in present[1:]:
            if not torch.equal(first, incoming[other].to(first.dtype)):
                raise CheckpointError(
                    f"checkpoint {source} has different values for {present[0]} and {other}, but the "
                    "model ties them (tie_word_embeddings): loading would silently overwrite one with the "
                    "other; use a base model with tie_word_embeddings=false, or a checkpoint in which they "
                    "are equal"
                )
        tied = tied or len(group) > 1
        copies.append((state[group[0]], first))
    missing.sort()

    if unexpected:
        hint = _prefix_hint(unexpected, set(missing))
        also = f" and lacks {len(missing)} of its tensors ({_names(missing)})" if missing else ""
        raise CheckpointError(
            f"checkpoint {source} has {_count(len(unexpected), 'tensor')} the model does not have "
            f"({_names(unexpected)}){also}; "
            + (hint or "it does not fit this model: point --model_path at the model it was trained from")
        )
    if missing and not allow_partial:
        advice = _tied_head_hint(model, missing, incoming) or (
            "if it is meant to be partial (e.g. only the language model), pass --ckpt-partial to keep "
            "the base model's values for the rest"
        )
        raise CheckpointError(
            f"checkpoint {source} lacks {len(missing)} of the model's {len(state)} tensors "
            f"({_names(missing)}); {advice}"
        )
    return _Plan(tuple(copies), len(groups), tuple(missing), tuple(ignored), tied)


def _prefix_hint(unexpected: list[str], wanted: set[str]) -> str | None:
    """Say so when the unexpected names become the model's after adding or removing one prefix."""
    from collections import Counter

    by_suffix: dict[str, list[str]] = {}
    for name in wanted:
        parts = name.split(".")
        for i in range(1, len(parts)):
            by_suffix.setdefault(".".join(parts[i:]), []).append(".".join(parts[:i]) + ".")
    votes: Counter[tuple[str, str]] = Counter()
    for key in unexpected:
        for prefix in set(by_suffix.get(key, [])):
            votes[("add", prefix)] += 1
        parts = key.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[i:]) in wanted:
                votes[("remove", ".".join(parts[:i]) + ".")] += 1
    ranked = votes.most_common(2)
    if not ranked:
        return None
    (action, prefix), count = ranked[0]
    # Generic names ("weight", "bias") fit under many prefixes: hint only at a clear, broad winner.
    if count * 2 < len(unexpected) or (len(ranked) > 1 and ranked[1][1] == count):
        return None
    if action == "add":
        why = "it was probably saved from an inner module of the model"
        fix = f"re-save it with the prefix {prefix!r} added"
    else:
        why = "it was probably saved from a wrapper around the model"
        fix = f"re-save it with the prefix {prefix!r} removed"
    return (
        f"{count} of the {len(unexpected)} unexpected names match the model after "
        f"{'adding' if action == 'add' else 'removing'} the prefix {prefix!r} ({why}): {fix}"
    )


def _tied_head_hint(model: Any, missing: list[str], incoming: dict[str, Any]) -> str | None:
    """A checkpoint saved from a tied-embedding model leaves the output head out; say so."""
    try:
        out_emb, in_emb = model.get_output_embeddings(), model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if out_emb is None or in_emb is None:
        return None
    params = dict(model.named_parameters(remove_duplicate=False))
    head = [n for n, p in params.items() if p is getattr(out_emb, "weight", None)]
    emb = [n for n, p in params.items() if p is getattr(in_emb, "weight", None)]
    if set(missing) == set(head) and any(n in incoming for n in emb):
        return (
            f"it looks saved from a model with tied embeddings ({head[0]} left out): use a base model whose "
            "config sets tie_word_embeddings=true, or pass --ckpt-partial to keep the base model's head"
        )
    return None


def _apply_peft(model: Any, spec: CheckpointSpec) -> LoadReport:
    try:
        from peft import PeftConfig, PeftModel
    except ImportError:
        raise CheckpointError(
            f"checkpoint {spec.path} is a PEFT adapter but peft is not installed; pip install "
            "'pytest-omnilmm[peft]'"
        ) from None
    import warnings

    # Read it ourselves first: a pickled adapter goes through weights_only before peft opens it.
    read_state_dict(spec)
    total = len(_alias_groups(model.state_dict()))
    try:
        config = PeftConfig.from_pretrained(str(spec.path))
        config.inference_mode = True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peft_model = PeftModel(model, config)
            result = peft_model.load_adapter(str(spec.path), adapter_name="default", is_trainable=False)
    except (ValueError, RuntimeError, KeyError, TypeError, AttributeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"PEFT adapter {spec.path} does not fit the base model ({first[:300]}); point --model_path "
            "at the model it was trained on"
        ) from None
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        peft_model.unload()
        raise CheckpointError(
            f"PEFT adapter {spec.path} does not match the model: {len(missing)} adapter tensors missing "
            f"({_names(missing)}), {len(unexpected)} unexpected ({_names(unexpected)}); point "
            "--model_path at the model it was trained on"
        )
    targeted = len(peft_model.base_model.targeted_module_names)
    merged = peft_model.merge_and_unload()
    return LoadReport(
        spec=spec, replaced=targeted, total=total, missing=(), ignored=(), tied_embeddings=False, model=merged
    )


# ------------------------------------------------------------------------------------------ fingerprint


def _name_for(spec: CheckpointSpec, f: Path) -> str:
    # A single file is named by its format only, so renaming or moving it keeps the fingerprint.
    if spec.kind in ("safetensors", "torch"):
        return f"weights{f.suffix.lower()}"
    return f.relative_to(spec.path).as_posix()


def fingerprint(spec_or_path: CheckpointSpec | str | Path, *, cache_path: Path | None = None) -> str:
    """sha256 (hex) of the checkpoint's weight files (and index/config files that shape how they load)."""
    spec = spec_or_path if isinstance(spec_or_path, CheckpointSpec) else inspect_checkpoint(spec_or_path)
    files = [(_name_for(spec, f), f) for f in (*spec.weight_files, *spec.extra_files)]
    try:
        return fingerprint_files(files, cache_path)
    except OSError as exc:
        raise CheckpointError(
            f"checkpoint {spec.path} could not be read for hashing ({exc}); check the path"
        ) from None


# Files of a base model directory that decide its outputs: weights, configs, tokenizer, processor,
# chat templates, and remote code.
_MODEL_DIR_PATTERNS = (
    re.compile(r".*\.safetensors$"),
    re.compile(r"^pytorch_model.*\.bin$"),
    re.compile(r".*\.index\.json$"),
    re.compile(
        r"^(config|generation_config|preprocessor_config|processor_config|video_preprocessor_config)\.json$"
    ),
    re.compile(r"^(tokenizer.*|special_tokens_map\.json|added_tokens\.json|vocab\..*|merges\.txt)$"),
    re.compile(r".*\.(model|tiktoken|jinja|py)$"),
    re.compile(r"^chat_template\.json$"),
)


def fingerprint_model_dir(path: str | Path, *, cache_path: Path | None = None) -> str:
    """sha256 (hex) of a base model directory: weights, configs, tokenizer/processor, chat templates."""
    d = Path(path).expanduser()
    if not d.is_dir():
        raise CheckpointError(f"model path {d} is not a directory; give --model_path a local model directory")
    files: list[tuple[str, Path]] = []
    # Top level only (plus chat templates kept in a subfolder): training output folders nest whole
    # checkpoints below the model, which are not part of it.
    for sub in (d, d / "additional_chat_templates"):
        if not sub.is_dir():
            continue
        for n in _listdir(sub, "model directory"):
            f = sub / n
            if f.is_file() and any(pat.match(n) for pat in _MODEL_DIR_PATTERNS):
                files.append((f.relative_to(d).as_posix(), f))
    if not files:
        raise CheckpointError(
            f"model directory {d} has no weights, config or tokenizer files; check --model_path"
        )
    try:
        return fingerprint_files(files, cache_path)
    except OSError as exc:
        raise CheckpointError(
            f"model directory {d} could not be read for hashing ({exc}); check it"
        ) from None
