"""What a pytest session holds for this plugin (``config.stash`` / ``item.stash`` keys) and which side of
a run this process is on. The bottom of the plugin: options, collection, the worker fixtures and the
xdist hooks all read these, so none of them imports ``plugin.py``.
"""

from __future__ import annotations

import pytest

from .config import EvalConfig

CONFIG_KEY = pytest.StashKey[EvalConfig]()  # the validated settings (pytest_configure)
RUN_ID_KEY = pytest.StashKey[str]()  # this run's folder name under --results-dir (same on every worker)
HAS_EVALS_KEY = pytest.StashKey[bool]()  # this session runs eval items (see session.mark_has_evals)
PEERS_KEY = pytest.StashKey[list[pytest.Item]]()  # on an item: the items that share its generate call

DATASET_MARKER = "dataset"


def is_worker(config: pytest.Config) -> bool:
    """An xdist worker (not the controller, and not a run without xdist)."""
    return hasattr(config, "workerinput")


def worker_name(config: pytest.Config) -> str:
    """``gw0``, ``gw1``, ... on xdist workers, ``main`` otherwise (names the worker's record file)."""
    return str(config.workerinput["workerid"]) if is_worker(config) else "main"  # type: ignore[attr-defined]
