"""``--gpus``: which GPUs exist (nvidia-smi, run once on the controller) and the xdist worker specs that pin
one worker to each, written before xdist reads them."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

import pytest

from .config import ConfigError, name_the_source, parse_gpus, visible_devices


def pin_gpus(config: pytest.Config, raw: object, source: str) -> None:
    """Rewrite ``--tx`` to one popen worker per GPU, pinned before any import (a restarted worker reuses
    its spec, so ``worker_number % n_gpus`` mistakes cannot happen)."""
    try:
        gpus = probe_gpus(raw, os.environ)
    except ConfigError as exc:
        raise pytest.UsageError(name_the_source(str(exc), {"gpus": source})) from None
    if not config.pluginmanager.hasplugin("xdist"):
        raise pytest.UsageError("--gpus needs pytest-xdist; install it or run without --gpus")
    if config.getoption("numprocesses", None):
        raise pytest.UsageError("--gpus starts one worker per GPU by itself; drop -n (or drop --gpus)")
    config.option.tx = gpu_tx_specs(gpus)
    if config.getoption("dist", "no") == "no":
        config.option.dist = "load"


def gpu_tx_specs(gpus: tuple[str, ...]) -> list[str]:
    """One popen worker per GPU, pinned before any import; a restarted worker reuses its spec."""
    return [f"popen//env:CUDA_VISIBLE_DEVICES={gpu}" for gpu in gpus]


def probe_gpus(raw: object, env: Mapping[str, str]) -> tuple[str, ...]:
    """``--gpus`` settled: ``all`` counted with nvidia-smi, listed GPUs checked to exist (unless
    ``CUDA_VISIBLE_DEVICES`` already restricts this process: then they index into it)."""
    ids = parse_gpus(raw, env)
    if ids is None:
        return _all_gpus()
    if ids and visible_devices(env) is None:
        _check_gpus_exist(str(raw).strip(), ids)
    return ids


def _nvidia_smi_gpus() -> list[str]:
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=True)
    return [line for line in out.stdout.splitlines() if line.startswith("GPU ")]


def _all_gpus() -> tuple[str, ...]:
    try:
        listed = _nvidia_smi_gpus()
    except (OSError, subprocess.SubprocessError):
        raise ConfigError(
            "--gpus all: no GPU found (nvidia-smi failed); list GPUs explicitly, e.g. --gpus 0,1"
        ) from None
    if not listed:
        raise ConfigError(
            "--gpus all: nvidia-smi lists no GPU; run without --gpus (use -n N for CPU workers)"
        )
    return tuple(str(i) for i in range(len(listed)))


def _check_gpus_exist(text: str, ids: tuple[str, ...]) -> None:
    """``--gpus 0,1`` on a machine without those GPUs is an error, never a silent CPU run."""
    try:
        listed = _nvidia_smi_gpus()
    except (OSError, subprocess.SubprocessError):
        raise ConfigError(
            f"--gpus {text}: no GPU found on this machine (nvidia-smi -L failed or is not installed); "
            "run without --gpus (use -n N for CPU workers)"
        ) from None
    for v in ids:
        known = int(v) < len(listed) if v.isdigit() else any(v in line for line in listed)
        if not known:
            found = f"{len(listed)} GPU(s): " + "; ".join(listed) if listed else "no GPU"
            raise ConfigError(f"--gpus {text}: GPU {v} is not on this machine; nvidia-smi lists {found}")
