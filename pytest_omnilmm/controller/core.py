"""Controller side: the only process that aggregates. Collects records from test reports (its own, or
xdist workers'), computes metrics + CIs and perf per checkpoint, runs the gate, writes the run's files.

It never touches a model, so it imports neither torch nor transformers.
"""

from __future__ import annotations

import datetime as _dt
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import EvalConfig
from ..records import ITEM_PROPERTY, RECORD_PROPERTY, Record

if TYPE_CHECKING:
    from ..gate import GateSettings

_EVAL_ID = re.compile(r"^(?P<func>.+)\[(?P<label>base|ckpt\d+)-(?P<rest>.+)\]$")


def is_eval_nodeid(nodeid: str) -> bool:
    """Whether a node id is an eval item's (the xdist controller sees ids only)."""
    return _EVAL_ID.match(nodeid) is not None


def new_run_id() -> str:
    """``20261208-022649.123-a1b2c3``: sorts in start order, to the millisecond (two runs started in one
    second must not list in random order), and stays unique across machines."""
    now = _dt.datetime.now()
    return f"{now:%Y%m%d-%H%M%S}.{now.microsecond // 1000:03d}-{secrets.token_hex(3)}"


def record_from_user_properties(props: Iterable[tuple[str, Any]]) -> Record | None:
    for name, value in props:
        if name == RECORD_PROPERTY and isinstance(value, dict):
            return Record.from_json(value)
    return None


@dataclass
class Controller:
    config: EvalConfig
    run_id: str
    records: dict[tuple[str, str, str], Record] = field(default_factory=dict)
    datasets_of: dict[str, str] = field(default_factory=dict)  # test function -> dataset (for crashes)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)  # node id -> dataset/sample/label (setup)
    pending_crashes: list[tuple[str, str, str, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    gate_failed: bool = False
    saved: list[str] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.config.results_dir / self.run_id

    # -- collecting ------------------------------------------------------------------------------
    def add_report(self, report: Any) -> None:
        for name, value in getattr(report, "user_properties", ()):
            if name == ITEM_PROPERTY and isinstance(value, dict):
                self.items[report.nodeid] = value
        record = record_from_user_properties(getattr(report, "user_properties", ()))
        if record is not None:
            self.add(record)
            match = _EVAL_ID.match(report.nodeid)
            if match:
                self.datasets_of[match["func"]] = record.dataset
            return
        if report.failed and report.when in ("call", "setup", "teardown", "???"):
            # A worker that died mid-sample sends no record: keep the failure as an error record.
            known = self.items.get(report.nodeid)
            match = _EVAL_ID.match(report.nodeid)
            if known is not None:
                self.pending_crashes.append(
                    (
                        "",
                        str(known["label"]),
                        f"{known['dataset']}\0{known['sample_id']}",
                        _crash_reason(report),
                    )
                )
            elif match:
                reason = _crash_reason(report)
                self.pending_crashes.append((match["func"], match["label"], match["rest"], reason))

    def add(self, record: Record) -> None:
        self.records[(record.checkpoint, record.dataset, record.sample_id)] = record

    def _resolve_crashes(self) -> None:
        for func, label, rest, reason in self.pending_crashes:
            if "\0" in rest:  # identified by its setup report
                dataset, rest = rest.split("\0", 1)
            else:
                dataset = self.datasets_of.get(func, func.rsplit("::", 1)[-1])
            if (label, dataset, rest) not in self.records:
                self.add(
                    Record(
                        sample_id=rest,
                        dataset=dataset,
                        checkpoint=label,
                        checkpoint_path="",
                        fingerprint="",
                        key="",
                        sample_hash="",
                        settings_hash="",
                        prediction=None,
                        error=reason,
                        worker="?",
                    )
                )
        self.pending_crashes.clear()

    # -- finishing -------------------------------------------------------------------------------
    def finish(self, pytest_config: Any, *, exit_status: int = 0, partial: str | None = None) -> bool:
        """Aggregate, gate, write files. Returns True when the gate failed.

        ``exit_status``: pytest's status before the gate (report.md states the final one); ``partial``:
        why the run did not finish every item (interrupted, -x/--maxfail), or None.
        """
        from ..results.summary import base_run_info

        self._resolve_crashes()
        records = sorted(self.records.values(), key=lambda r: (r.checkpoint, r.dataset, r.sample_id))
        if not records and self.config.baseline is None:
            return False
        info = base_run_info(self.config)
        if partial:
            info = {**info, "partial": True, "partial_reason": partial}
        outcome = conclude(
            records,
            info,
            self.run_id,
            self.run_dir,
            GateOptions.from_config(self.config),
            exit_status=exit_status,
        )
        self.lines, self.saved = outcome.lines, outcome.saved
        self.gate_failed = outcome.failed
        return self.gate_failed

    def summary_lines(self) -> list[str]:
        return [*self.lines, *self.saved]


def _crash_reason(report: Any) -> str:
    text = str(getattr(report, "longrepr", "") or "failed")
    for line in text.splitlines():
        if "crashed" in line or "Not properly terminated" in line:
            return line.strip()
    worker = getattr(getattr(report, "node", None), "gateway", None)
    suffix = f" on worker {worker.id}" if worker is not None else ""
    return (text.strip().splitlines() or ["failed"])[-1][:300] + suffix


@dataclass(frozen=True)
class GateOptions:
    """What the gate needs: where the baseline is, where to save one, and the gate's one settings object
    (``gate.GateSettings``, validated there). Built from ``EvalConfig`` or by the merge/gate CLI."""

    baseline: Path | None
    save_baseline: Path | None
    settings: GateSettings

    @classmethod
    def from_config(cls, config: EvalConfig) -> GateOptions:
        from ..gate import GateSettings

        return cls(
            baseline=config.baseline,
            save_baseline=config.save_baseline,
            settings=GateSettings(
                max_drop=config.max_drop,
                per_metric_max_drop=dict(config.max_drop_per),
                mode=config.gate,
                min_scores=dict(config.min_score),
                max_slowdown=config.max_slowdown,
                inconclusive=config.gate_inconclusive,
                allow_partial=config.gate_allow_partial,
            ),
        )


@dataclass(frozen=True)
class Conclusion:
    lines: list[str]
    saved: list[str]
    failed: bool
    summary: dict[str, Any]


def conclude(
    records: Sequence[Record],
    base_info: dict[str, Any],
    run_id: str,
    run_dir: Path,
    options: GateOptions,
    *,
    exit_status: int = 0,
) -> Conclusion:
    """Summary, gate, baseline, files: shared by a pytest session and ``python -m pytest_omnilmm merge``.

    ``exit_status`` is what the process exits with apart from the gate (pytest's test outcome).
    """
    from ..results.summary import build_summary
    from .report import render_terminal, write_run_files

    summary = build_summary(records, base_info, run_id)
    gate_report = None
    problems: list[str] = []
    if options.baseline is not None or options.settings.min_scores:
        gate_report, problems = _gate(records, summary, options)
    failed = bool(problems) or (gate_report is not None and gate_report.failed)
    saved: list[str] = []
    if options.save_baseline is not None and records:
        saved = _save_baseline(records, summary, options.save_baseline)
    lines = render_terminal(summary, gate_report, problems)
    reasons = [*problems, *(gate_report.reasons if gate_report is not None else [])]
    final = exit_status if exit_status != 0 else (1 if failed else 0)
    if exit_status != 0:
        errored = sum(1 for r in records if r.error is not None or r.check_failed)
        reasons.insert(0, _status_reason(exit_status, errored))
    if base_info.get("partial"):
        reasons.insert(0, f"partial run: {base_info.get('partial_reason')}")
    written = write_run_files(run_dir, records, summary, gate_report, problems, verdict=(final, reasons))
    lines.append(f"omnilmm: results in {run_dir} ({', '.join(sorted(p.name for p in written))})")
    return Conclusion(lines, saved, failed, summary)


def _status_reason(status: int, failed_samples: int) -> str:
    names = {
        1: "tests failed",
        2: "interrupted",
        3: "internal error",
        4: "usage error",
        5: "no tests collected",
    }
    what = names.get(status, f"exit status {status}")
    return f"pytest: {what} ({failed_samples} eval samples errored or failed their check)"


def _gate(records: Sequence[Record], summary: dict[str, Any], options: GateOptions) -> tuple[Any, list[str]]:
    from ..gate import gate_results
    from ..gate.api import GateInputError, resolve_baseline

    baseline = None
    if options.baseline is not None:
        try:
            baseline = resolve_baseline(options.baseline)
        except GateInputError as exc:
            return None, [str(exc)]
    problems: list[str] = []
    run_flavor = summary["run_info"].get("metric_flavor")
    if baseline is not None and baseline.metric_flavor and baseline.metric_flavor != run_flavor:
        # Refused as a whole even where a metric lacks the flavour and scored the same: the run asked for
        # other definitions, so its numbers are not comparable as a set.
        problems.append(
            f"{options.baseline}: baseline used metric flavour {baseline.metric_flavor!r}, this run "
            f"{run_flavor!r}; rerun with --metric-flavor {baseline.metric_flavor} or regenerate the baseline"
        )
    return gate_results(baseline, records, run_info=summary["run_info"], settings=options.settings), problems


def _save_baseline(records: Sequence[Record], summary: dict[str, Any], target: Path) -> list[str]:
    from ..gate.baseline import build_baseline, save_baseline

    labels = sorted({r.checkpoint for r in records})
    saved = []
    for label in labels:
        path = target if len(labels) == 1 else target.with_name(f"{target.stem}.{label}{target.suffix}")
        save_baseline(path, build_baseline(records, summary["run_info"], checkpoint=label))
        saved.append(f"omnilmm: baseline written to {path}")
    return saved
