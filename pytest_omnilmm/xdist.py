"""xdist-only hooks, a pytest plugin of their own (entry point ``omnilmm_xdist``): registered only when
xdist is installed and pytest-omnilmm itself is active, so ``-p no:xdist`` and ``-p no:omnilmm`` keep working.

Scheduling: ``controller.scheduler.BatchScheduling``, our own class on xdist's public scheduler interface,
in place of ``--dist load``: it hands out whole batches (see ``worker/batching.py``), so the samples of one
generate call never straddle two workers, and handles a worker crash as ``load`` does (``loadgroup`` is
broken on pytest 9.2 and grouped schedulers mishandle crashes).

With ``plugin.py`` the only module that sees both sides of a run: it passes the run id and the probes'
findings to the workers and reads their collection on the controller. ``plugin.py`` does not import it:
both are entry-layer plugins side by side.
"""

from __future__ import annotations

from typing import Any

import pytest

from .keys import CONFIG_KEY, HAS_EVALS_KEY, RUN_ID_KEY

PLUGIN_NAME = "omnilmm"  # the main plugin's entry-point name
HOOKS_NAME = "omnilmm-xdist-hooks"


def pytest_configure(config: pytest.Config) -> None:
    manager = config.pluginmanager
    if manager.hasplugin("xdist") and manager.get_plugin(PLUGIN_NAME) is not None:
        manager.register(XdistHooks(config), HOOKS_NAME)


def make_batch_scheduler(config: pytest.Config, log: Any, batch_size: int) -> Any:
    from xdist.workermanage import parse_tx_spec_config

    from .controller.scheduler import BatchScheduling

    return BatchScheduling(config, log, batch_size, len(parse_tx_spec_config(config)))


class XdistHooks:
    """Hooks that exist only with xdist: pass the run id and the probes' findings to workers, batch-aware
    scheduling."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        from .probes import PROBED_KEY, Probed

        node.workerinput["omnilmm_run_id"] = self.config.stash[RUN_ID_KEY]
        node.workerinput[PROBED_KEY] = Probed.of(self.config.stash[CONFIG_KEY]).to_plain()

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """The controller collects nothing itself: the first worker's collection says whether this
        session has eval items (then the settings header is printed and SIGTERM ends it like Ctrl-C)."""
        from .controller.core import is_eval_nodeid
        from .options import header_lines
        from .session import mark_has_evals

        if self.config.stash.get(HAS_EVALS_KEY, False) or not any(is_eval_nodeid(i) for i in ids):
            return
        mark_has_evals(self.config)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            for line in header_lines(self.config):
                reporter.write_line(line)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getoption("dist", "no") != "load":
            return None
        cfg = config.stash[CONFIG_KEY]
        return make_batch_scheduler(config, log, cfg.batch_size)
