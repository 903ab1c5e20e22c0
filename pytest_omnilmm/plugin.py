"""pytest hooks of pytest-omnilmm, in the order a run meets them; each hook hands its work to the module
that owns it (docs/ARCHITECTURE.md draws the flow):

    options ──> config ──> collection ──> worker (fixtures, engine) ──> report ──> controller ──> exit status

Import-time cost matters (``pytest --help`` loads this module): torch and transformers are imported
only inside fixtures, when a model is actually needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .collection import is_eval_item, parametrize_samples, plan_batches, select_and_order
from .config import ConfigError, build_config
from .controller.core import Controller, new_run_id
from .keys import CONFIG_KEY, HAS_EVALS_KEY, RUN_ID_KEY, is_worker
from .options import add_options, header_lines, lookup
from .probes import settle
from .session import new_benchmark_storage, partial_reason, remove_if_empty, terminate_like_interrupt
from .worker.fixtures import (  # pytest finds fixtures among a registered plugin's attributes
    generate,
    omnilmm_config,
    omnilmm_engine,
    omnilmm_judge,
    omnilmm_load_model,
    omnilmm_model,
    sample,
    score,
)
from .worker.reporting import add_item_identity, add_record

__all__ = [
    "generate",
    "omnilmm_config",
    "omnilmm_engine",
    "omnilmm_judge",
    "omnilmm_load_model",
    "omnilmm_model",
    "sample",
    "score",
]

CONTROLLER_KEY = pytest.StashKey[Controller]()


# ------------------------------------------------------------------------------------ options, configure
def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Iterator[Any]:
    """``--gpus`` rewrites the xdist worker specs before xdist reads them (one pinned worker per GPU)."""
    raw, source = lookup(config)("gpus")
    if raw not in (None, "") and not is_worker(config):
        from .gpus import pin_gpus

        pin_gpus(config, raw, source)
    storage = new_benchmark_storage(config)
    try:
        return (yield)
    finally:
        if storage is not None and not config.stash.get(HAS_EVALS_KEY, False):
            remove_if_empty(storage)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "dataset(name, path=None, format=None, metric='exact_match', prompt=None, flavor=None, "
        "prepare=None): parametrize `sample` over "
        "a dataset, one test item per sample (path relative to the test file; --data NAME=PATH overrides)",
    )
    try:
        eval_config = build_config(lookup(config), rootdir=Path(config.invocation_params.dir))
        # Probes (file system, hub, nvidia-smi) run once, on the controller; a worker takes their findings.
        eval_config = settle(eval_config, getattr(config, "workerinput", None))
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[CONFIG_KEY] = eval_config
    if is_worker(config):
        config.stash[RUN_ID_KEY] = config.workerinput["omnilmm_run_id"]  # type: ignore[attr-defined]
    else:
        config.stash[RUN_ID_KEY] = new_run_id()
        controller = Controller(eval_config, config.stash[RUN_ID_KEY])
        config.stash[CONTROLLER_KEY] = controller
        config.pluginmanager.register(ControllerHooks(controller), "omnilmm-controller")
        terminate_like_interrupt(config)


def pytest_sessionstart(session: pytest.Session) -> None:
    """The progress line, on the controller only (the terminal reporter exists by now)."""
    config = session.config
    if not is_worker(config) and CONFIG_KEY in config.stash:
        from .controller.progress import register_progress

        register_progress(config, config.stash[CONFIG_KEY].progress)


# ------------------------------------------------------------------------------------------- collection
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_samples(metafunc)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    select_and_order(config, items)


def pytest_collection_finish(session: pytest.Session) -> None:
    plan_batches(session)


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """The settings header, only for a session that has eval items (an unrelated project sees nothing)."""
    return header_lines(config) if any(is_eval_item(it) for it in items) else []


# ----------------------------------------------------------------------------------- worker: the record
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if call.when == "setup":
        add_item_identity(item, report)
    add_record(item, call, report)
    return report


# -------------------------------------------------------------------------------- controller: the verdict
class ControllerHooks:
    """Registered on the controller's own plugin manager: its reports go to its controller (a process can
    hold several sessions, e.g. pytester's in-process runs, so no module-level state)."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.controller.add_report(report)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    controller = session.config.stash.get(CONTROLLER_KEY, None)
    if controller is None:
        return
    failed = controller.finish(
        session.config, exit_status=int(exitstatus), partial=partial_reason(session, int(exitstatus))
    )
    if failed and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    controller = config.stash.get(CONTROLLER_KEY, None)
    if controller is not None:
        for line in controller.summary_lines():
            terminalreporter.write_line(line)
