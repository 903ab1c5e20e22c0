"""Hooks for the bundled evals' speed test (``test_speed.py``): machine info for pytest-benchmark, the
test's place in the run, and the one line that says pytest-benchmark is off under xdist."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

XDIST_NOTE = (
    "pytest-benchmark is off under xdist, so test_generation_speed was skipped; the plugin's own timing "
    "(the perf line of the summary table, and summary.json) is the record of this run"
)
_EVAL_ID = re.compile(r"\[(?P<label>base|ckpt\d+)-")


def pytest_configure(config: pytest.Config) -> None:
    # Without the plugin, ``@pytest.mark.dataset`` means nothing and the evals would fail one by one with
    # KeyErrors: say once what is missing instead.
    if not config.pluginmanager.hasplugin("omnilmm"):
        raise pytest.UsageError(
            "the evals in evals/ need the pytest-omnilmm plugin, which is disabled or not installed; "
            "drop `-p no:omnilmm` (or `pip install -e .` in this repository)"
        )


def _xdist_active(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput") or config.getoption("dist", "no") != "no"


@pytest.fixture
def benchmark_enabled(request: pytest.FixtureRequest) -> None:
    """Skips under xdist, where pytest-benchmark runs the target once, untimed, and saves nothing."""
    if _xdist_active(request.config):
        pytest.skip(XDIST_NOTE)
    if not request.config.pluginmanager.hasplugin("benchmark"):
        pytest.skip("pytest-benchmark is disabled (-p no:benchmark)")


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    import torch
    import transformers

    cuda = torch.cuda.is_available()
    machine_info["gpu"] = torch.cuda.get_device_name(0) if cuda else None
    machine_info["gpu_count"] = torch.cuda.device_count() if cuda else 0
    machine_info["cuda_version"] = torch.version.cuda
    machine_info["torch_version"] = torch.__version__
    machine_info["transformers_version"] = transformers.__version__
    machine_info["torch_threads"] = torch.get_num_threads()


def _speed_role(item: pytest.Item) -> str | None:
    """The checkpoint role a speed test times (its id is a display name, see test_speed.py)."""
    if getattr(item, "originalname", None) != "test_generation_speed":
        return None
    return item.callspec.params.get("checkpoint_role")  # type: ignore[attr-defined]


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Iterator[None]:
    """Move each checkpoint's speed test after that checkpoint's last eval item.

    The plugin orders items checkpoint by checkpoint and keeps one model loaded; left where it is, a sweep's
    speed tests would load every checkpoint once more. Eval items of other functions have other batch keys,
    so inserting here never splits a batch.
    """
    result = yield
    speed = [item for item in items if _speed_role(item) is not None]
    if speed:
        rest = [item for item in items if _speed_role(item) is None]
        for item in speed:
            label = _speed_role(item)
            last = max(
                (
                    i
                    for i, other in enumerate(rest)
                    if (m := _EVAL_ID.search(other.nodeid)) and m["label"] == label
                ),
                default=None,
            )
            rest.insert(len(rest) if last is None else last + 1, item)
        items[:] = rest
    return result


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not _xdist_active(config):
        return
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        if isinstance(longrepr, tuple) and len(longrepr) == 3 and XDIST_NOTE in str(longrepr[2]):
            terminalreporter.write_line(f"omnilmm: {XDIST_NOTE}")
            return
