"""xdist-only pieces, registered only when xdist is installed (so ``-p no:xdist`` keeps working).

Scheduling: ``scheduler.BatchScheduling``, our own class on xdist's public scheduler interface, in
place of ``--dist load``: it hands out whole batches (see ``batching.py``), so the samples of one
generate call never straddle two workers, and handles a worker crash as ``load`` does (``loadgroup`` is
broken on pytest 9.2 and grouped schedulers mishandle crashes).
"""

from __future__ import annotations

from typing import Any

import pytest


def make_batch_scheduler(config: pytest.Config, log: Any, batch_size: int) -> Any:
    from xdist.workermanage import parse_tx_spec_config

    from .scheduler import BatchScheduling

    return BatchScheduling(config, log, batch_size, len(parse_tx_spec_config(config)))


class XdistHooks:
    """Hooks that exist only with xdist: pass the run id and the probes' findings to workers, batch-aware
    scheduling."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        from .plugin import CONFIG_KEY, RUN_ID_KEY
        from .probes import PROBED_KEY, Probed

        node.workerinput["omnilmm_run_id"] = self.config.stash[RUN_ID_KEY]
        node.workerinput[PROBED_KEY] = Probed.of(self.config.stash[CONFIG_KEY]).to_plain()

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """The controller collects nothing itself: the first worker's collection says whether this
        session has eval items (then the settings header is printed and SIGTERM ends it like Ctrl-C)."""
        from .controller import is_eval_nodeid
        from .plugin import HAS_EVALS_KEY, header_lines, mark_has_evals

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
        from .plugin import CONFIG_KEY

        cfg = config.stash[CONFIG_KEY]
        return make_batch_scheduler(config, log, cfg.batch_size)


def gpu_tx_specs(gpus: tuple[str, ...]) -> list[str]:
    """One popen worker per GPU, pinned before any import; a restarted worker reuses its spec."""
    return [f"popen//env:CUDA_VISIBLE_DEVICES={gpu}" for gpu in gpus]
