"""Process-wide settings the plugin changes for an eval run, each restored when the session ends.

Nothing here runs for a session that collected no eval item: a project that merely has the plugin
installed keeps its environment, PIL limits, garbage collector and thread count as they were. The
worker's own settings (torch threads, PIL's image size limit) are in ``worker/process_limits.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

_RESTORE_KEY = pytest.StashKey[list[Callable[[], None]]]()


def _restorers(config: pytest.Config) -> list[Callable[[], None]]:
    if _RESTORE_KEY not in config.stash:
        config.stash[_RESTORE_KEY] = []
        config.add_cleanup(lambda: restore_all(config))
    return config.stash[_RESTORE_KEY]


def on_session_end(config: pytest.Config, restore: Callable[[], None]) -> None:
    """Run ``restore`` when the session ends (newest first), to undo a process-wide change just made."""
    _restorers(config).append(restore)


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
    on_session_end(config, lambda: os.environ.pop(name, None))


def freeze_gc(config: pytest.Config) -> None:
    """Move what exists now out of the collector's reach; unfrozen at session end."""
    import gc

    gc.collect()
    gc.freeze()
    on_session_end(config, gc.unfreeze)
