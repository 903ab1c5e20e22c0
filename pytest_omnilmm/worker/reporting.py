"""The worker's part of each test report: the item's identity at setup (so the controller can name a
sample whose worker crashed), and at call its ``Record`` (written to the worker's JSONL and attached to the
report as plain JSON values), plus what JUnit XML shows per sample.

A sample errors when it could not be answered or scored; it fails its check when an ``assert`` in the
eval body fails after the answer was scored (golden samples): its score counts, the item fails.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ..ids import eval_param
from ..records import ITEM_PROPERTY, RECORD_PROPERTY
from .fixtures import STATE_KEY, ItemState, task_of


def add_item_identity(item: pytest.Item, report: pytest.TestReport) -> None:
    """At setup: which dataset, sample and checkpoint this item is (read by the controller on a crash)."""
    param = eval_param(item)
    if param is not None:
        identity = {"dataset": param.case.dataset, "sample_id": param.sample.id, "label": param.label}
        report.user_properties.append((ITEM_PROPERTY, identity))


def add_record(item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport) -> None:
    """After the call (or a failed setup): build the item's record, write it, attach it to the report."""
    state = item.stash.get(STATE_KEY, None)
    if state is None or eval_param(item) is None:
        return
    if not ((call.when == "call" and not report.skipped) or (call.when == "setup" and report.failed)):
        return
    engine = getattr(item, "funcargs", {}).get("omnilmm_engine")
    if engine is None:
        return
    error = check_failed = None
    if report.failed:
        if _is_golden_check(call, state):
            check_failed = _one_line(call.excinfo)
        else:
            error = _one_line(call.excinfo)
    record = engine.make_record(
        task_of(item),
        state.case.dataset,
        state.outcome,
        dict(state.scores or {}),
        state.metric,
        error,
        state.notes or (),
        flavor=state.flavor,
    )
    if check_failed is not None:
        record = replace(record, check_failed=check_failed)
    engine.write(record)
    report.user_properties.append((RECORD_PROPERTY, record.to_json()))
    _junit_view(item, report, record)


def _junit_view(item: pytest.Item, report: pytest.TestReport, record: Any) -> None:
    """What CI test views (JUnit XML) show per sample: its own share of the batch's time, and its answer.

    The first item of a batch runs the whole batch's generate call; without this, JUnit would charge all of
    it to that item and ~0 s to the others.
    """
    if report.when == "call" and not record.resumed and record.batch_size > 0 and record.latency_s > 0:
        report.duration = record.latency_s / record.batch_size
    # On the item, not this report: JUnit XML reads the properties of the teardown report, copied from it.
    item.user_properties.append(("prediction", record.prediction if record.prediction is not None else ""))
    score = record.scores.get(record.metric) if record.metric else None
    item.user_properties.append(("score", "" if score is None else score))


def _is_golden_check(call: pytest.CallInfo[None], state: ItemState) -> bool:
    """An ``assert`` in the eval body after the answer was generated and scored: a failed sample."""
    return (
        call.when == "call"
        and call.excinfo is not None
        and call.excinfo.errisinstance(AssertionError)
        and state.outcome is not None
        and state.outcome.generated.error is None
        and bool(state.scores)
    )


def _one_line(excinfo: Any) -> str:
    if excinfo is None:
        return "failed"
    value = excinfo.value
    text = str(getattr(value, "msg", None) or value) or excinfo.typename
    return f"{excinfo.typename}: {text.splitlines()[0]}" if text else excinfo.typename
