"""The worker's process-wide settings for an eval run: torch's CPU threads and PIL's image size limit, each
restored when the session ends (through ``process_state.on_session_end``). torch and PIL are imported
only here, inside the functions, and only when an eval item runs."""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest

from ..config import EvalConfig
from ..process_state import on_session_end


def set_max_image_pixels(config: pytest.Config, value: int | None) -> None:
    from PIL import Image

    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = value

    def restore() -> None:
        Image.MAX_IMAGE_PIXELS = old

    on_session_end(config, restore)


def default_threads(env: Mapping[str, str]) -> int:
    """The cores this process may use (its CPU affinity), divided among the xdist workers, at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        workers = max(1, int(env.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))
    except ValueError:
        workers = 1
    return max(1, cores // workers)


def set_torch_threads(config: pytest.Config, n: int) -> None:
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    on_session_end(config, lambda: torch.set_num_threads(old))


def set_cpu_threads(config: pytest.Config, cfg: EvalConfig) -> None:
    """``--threads N``, or the cores split between xdist workers so they do not oversubscribe. An
    ``OMP_NUM_THREADS`` the user set is kept unless ``--threads`` is given. A server backend generates
    elsewhere: torch is not even imported for it, unless ``--threads`` asks."""
    if cfg.threads is None and (os.environ.get("OMP_NUM_THREADS") or cfg.backend == "openai"):
        return
    set_torch_threads(config, cfg.threads or default_threads(os.environ))
