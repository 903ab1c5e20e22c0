"""Find and validate checkpoints without importing torch: the kinds of checkpoint, their files, headers.

``inspect_checkpoint`` runs while pytest starts: it only looks at the file system and at cheap headers,
so a bad ``--ckpt`` fails before any model is built.

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
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

SAFETENSORS_SUFFIX = ".safetensors"
TORCH_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_INDEX = "pytorch_model.bin.index.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
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
