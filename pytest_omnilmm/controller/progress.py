"""The progress line: samples done / total, samples/s and ETA, written by the controller only.

On a terminal it is one line rewritten in place (at most once a second); in a log (not a TTY) it is a plain
line at each tenth of the run, at most one a second, and at least one every 30 s. ``-qq`` and
``--no-progress`` turn it off. Under xdist the controller counts the finished eval items from the reports
it receives, so there is one line for the whole run, not one per worker. It writes through pytest's
terminal reporter, so it never lands in a test's captured output.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

MIN_INTERVAL_S = 1.0  # no flush storms: at most one update a second
LOG_HEARTBEAT_S = 30.0  # in a log, a line at least this often, however slow the run


def format_eta(seconds: float) -> str:
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_text(done: int, total: int, failed: int, rate: float) -> str:
    """``omnilmm: 40/143 samples (28%), 12.3 samples/s, ETA 8s`` (plus failures, when there are any)."""
    percent = 100 * done // total if total else 100
    eta = format_eta((total - done) / rate) if rate > 0 else "?"
    failures = f", {failed} failed" if failed else ""
    return f"omnilmm: {done}/{total} samples ({percent}%), {rate:.1f} samples/s, ETA {eta}{failures}"


class Progress:
    """Counts finished eval items on the controller and shows it; registered only when it will show."""

    def __init__(
        self, reporter: Any, is_eval: Callable[[str], bool], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.reporter = reporter
        self.is_eval = is_eval
        self.clock = clock
        # In place only at the default verbosity or quieter: with -v every item has a line of its own.
        self.live = bool(getattr(reporter, "isatty", False)) and reporter.config.get_verbosity() <= 0
        self.eval_ids: set[str] = set()
        self.done = self.failed = 0
        self.last_shown = 0.0
        self.first_done_at: float | None = None  # rates count from here: model loading is not a sample
        self.last_tenth = 0
        self.showing = False  # a live line is on the screen, not yet ended by a newline

    # -- the total --------------------------------------------------------------------------------------
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._set_total(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if not self.eval_ids:  # every worker collects the same items
            self._set_total(ids)

    def _set_total(self, nodeids: Any) -> None:
        self.eval_ids = {nodeid for nodeid in nodeids if self.is_eval(nodeid)}
        if self.live and self.eval_ids and hasattr(self.reporter, "_show_progress_info"):
            # pytest's own "[ NN%]" counts the items that printed a letter; eval items print none (below),
            # so it would say 0 %. The live line shows the percentage instead. (A session without eval
            # items keeps pytest's display untouched.)
            self.reporter._show_progress_info = False
        self.last_shown = self.clock()

    # -- counting and showing ---------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config) -> Any:
        """On a terminal the live line owns the current line: eval items print no letter of their own
        (failures are counted in the line and reported in full at the end, as always)."""
        result = yield
        if self.live and report.nodeid in self.eval_ids and isinstance(result, tuple) and len(result) == 3:
            return (result[0], "", "")
        return result

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown" or report.nodeid not in self.eval_ids:
            if report.failed and report.nodeid in self.eval_ids:
                self.failed += 1
            return
        if report.failed:
            self.failed += 1
        self.done += 1
        if self.first_done_at is None:
            self.first_done_at = self.clock()
        self._maybe_show()

    def _maybe_show(self) -> None:
        now = self.clock()
        total = len(self.eval_ids)
        if self.done < 2 or not total or now - self.last_shown < MIN_INTERVAL_S or self.done >= total:
            return
        tenth = 10 * self.done // total
        if not self.live and tenth <= self.last_tenth and now - self.last_shown < LOG_HEARTBEAT_S:
            return
        self.last_shown, self.last_tenth = now, tenth
        text = self._text(now)
        if self.live:
            self.reporter.rewrite(text, erase=True)
            self.showing = True
        else:
            self._write_plain(text)

    def _write_plain(self, text: str) -> None:
        """A line of its own, also after xdist's dots (which set no current file for write_line to end)."""
        writer = getattr(self.reporter, "_tw", None)
        if writer is not None and getattr(writer, "width_of_current_line", 0):
            self.reporter.write("\n")
        self.reporter.write_line(text)

    def _text(self, now: float) -> str:
        """The rate counts the samples after the first, over the time since it finished."""
        first = self.first_done_at if self.first_done_at is not None else now
        rate = (self.done - 1) / (now - first) if self.done > 1 and now > first else 0.0
        return progress_text(self.done, len(self.eval_ids), self.failed, rate)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """End a live line, so what pytest writes next starts on a line of its own."""
        if self.showing:
            self.reporter.rewrite(self._text(self.clock()), erase=True)
            self.reporter.write("\n")
            self.showing = False


def register_progress(config: pytest.Config, enabled: bool) -> None:
    """Show progress on the controller unless turned off (``--no-progress``, or ``-qq`` and quieter)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if not enabled or reporter is None or config.get_verbosity() <= -2:
        return
    from .core import is_eval_nodeid

    config.pluginmanager.register(Progress(reporter, is_eval_nodeid), "omnilmm-progress")
