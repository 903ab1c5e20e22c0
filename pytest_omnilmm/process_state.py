"""Process-wide settings the plugin changes for an eval run, each restored when the session ends.

Nothing here runs for a session that collected no eval item: a project that merely has the plugin
installed keeps its environment, PIL limits, garbage collector and thread count as they were.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import pytest

_RESTORE_KEY = pytest.StashKey[list[Callable[[], None]]]()


def _restorers(config: pytest.Config) -> list[Callable[[], None]]:
    if _RESTORE_KEY not in config.stash:
        config.stash[_RESTORE_KEY] = []
        config.add_cleanup(lambda: restore_all(config))
    return config.stash[_RESTORE_KEY]


def restore_all(config: pytest.Config) -> None:
    """Undo every change, newest first (also safe to call twice)."""
    restorers = config.stash.get(_RESTORE_KEY, [])
    while restorers:
        restorers.pop()()


def setdefault_env(config: pytest.Config, name: str, value: str) -> None:
    """``os.environ.setdefault``, undone at session end when the variable was not set before."""
    if name in os.environ:
        return
    os.environ[name] = value
    _restorers(config).append(lambda: os.environ.pop(name, None))


def set_max_image_pixels(config: pytest.Config, value: int | None) -> None:
    from PIL import Image

    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = value

    def restore() -> None:
        Image.MAX_IMAGE_PIXELS = old

    _restorers(config).append(restore)


def freeze_gc(config: pytest.Config) -> None:
    """Move what exists now out of the collector's reach; unfrozen at session end."""
    import gc

    gc.collect()
    gc.freeze()
    _restorers(config).append(gc.unfreeze)


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
    _restorers(config).append(lambda: torch.set_num_threads(old))
