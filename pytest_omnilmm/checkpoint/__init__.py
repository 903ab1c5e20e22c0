"""Find, validate, read and apply checkpoints; fingerprint them.

- ``formats``: what a ``--ckpt`` path is (``inspect_checkpoint``), checked from the file system and cheap
  headers, without torch, while pytest starts;
- ``reading``: its tensors (``read_state_dict``; pickles only through ``torch.load(weights_only=True)``);
- ``keymap`` + ``apply``: onto a built model, names mapped as transformers maps them when loading, every name
  and shape checked before anything is written (``apply_checkpoint``);
- ``fingerprints``: content hashes of checkpoints and base model directories, cached per file.

Importing this package imports neither torch nor transformers.
"""

from __future__ import annotations

from .apply import LoadReport, apply_checkpoint
from .fingerprints import fingerprint, fingerprint_model_dir
from .formats import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    SAFETENSORS_INDEX,
    SAFETENSORS_SUFFIX,
    TORCH_INDEX,
    TORCH_SUFFIXES,
    CheckpointError,
    CheckpointSpec,
    inspect_checkpoint,
    validate_safetensors,
    validate_torch_pickle,
)
from .keymap import MappedCheckpoint, to_model_names
from .reading import (
    CONVERT_HINT,
    STATE_DICT_CONTAINERS,
    WRAPPER_PREFIXES,
    read_state_dict,
    strip_wrapper_prefixes,
    unwrap_state_dict,
)

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "CONVERT_HINT",
    "SAFETENSORS_INDEX",
    "SAFETENSORS_SUFFIX",
    "STATE_DICT_CONTAINERS",
    "TORCH_INDEX",
    "TORCH_SUFFIXES",
    "WRAPPER_PREFIXES",
    "CheckpointError",
    "CheckpointSpec",
    "LoadReport",
    "MappedCheckpoint",
    "apply_checkpoint",
    "fingerprint",
    "fingerprint_model_dir",
    "inspect_checkpoint",
    "read_state_dict",
    "strip_wrapper_prefixes",
    "to_model_names",
    "unwrap_state_dict",
    "validate_safetensors",
    "validate_torch_pickle",
]
