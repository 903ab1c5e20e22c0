"""What a pytest session with this plugin changes around itself, on whichever side it runs: the process
settings an eval needs once the session has eval items, SIGTERM ending the session like Ctrl-C, and no
stray pytest-benchmark folder in a project without evals. A session without eval items is left as pytest
alone would run it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .keys import CONFIG_KEY, HAS_EVALS_KEY
from .process_state import setdefault_env


def mark_has_evals(config: pytest.Config) -> None:
    """This session runs eval items: the process-wide settings an eval needs may now be changed."""
    if config.stash.get(HAS_EVALS_KEY, False):
        return
    config.stash[HAS_EVALS_KEY] = True
    cfg = config.stash[CONFIG_KEY]
    if cfg.model_is_local:
        # A local model must never reach for the hub (and never wait on it).
        setdefault_env(config, "HF_HUB_OFFLINE", "1")
        setdefault_env(config, "TRANSFORMERS_OFFLINE", "1")
    setdefault_env(config, "TOKENIZERS_PARALLELISM", "false")


def terminate_like_interrupt(config: pytest.Config) -> None:
    """Pre-emption sends SIGTERM: end the session like Ctrl-C, so the summary of what finished is written."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # someone (a runner, another plugin) already handles it

    def interrupt(signum: int, frame: object) -> None:
        if not config.stash.get(HAS_EVALS_KEY, False):
            # No eval item in this session: die of SIGTERM exactly as pytest alone would (rc 143).
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")

    signal.signal(signal.SIGTERM, interrupt)
    config.add_cleanup(lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))


def new_benchmark_storage(config: pytest.Config) -> Path | None:
    """pytest-benchmark (a dependency of this plugin) creates its storage folder in every session. If the
    folder does not exist yet, it is removed again after a session without eval items, when still empty:
    a project that merely has this plugin installed gets no stray ``.benchmarks/``."""
    value = config.getoption("benchmark_storage", None)
    if not isinstance(value, str) or ("://" in value and not value.startswith("file://")):
        return None
    path = Path(value.removeprefix("file://"))
    path = path if path.is_absolute() else Path.cwd() / path
    return None if path.exists() else path


def remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()  # only succeeds on an empty folder
    except OSError:
        pass


def partial_reason(session: pytest.Session, exitstatus: int) -> str | None:
    """Why this session did not run every collected item, or None when it did."""
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        return "interrupted (Ctrl-C or a signal) before every item ran"
    stopped = session.shouldfail or session.shouldstop
    if stopped:
        return f"stopped early ({stopped})"
    return None
