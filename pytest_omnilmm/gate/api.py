"""The gate for code and shells: two sets of per-sample results in, per-dataset verdicts out.

``gate_results`` is the one implementation: the plugin's session end, ``python -m pytest_omnilmm
merge`` and ``python -m pytest_omnilmm gate`` all call it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from .baseline import Baseline, BaselineError, build_baseline, load_baseline
from .compare import compare
from .rows import GateReport
from .settings import GateSettings

if TYPE_CHECKING:
    from pytest_omnilmm.records import Record

PathLike = Union[str, "os.PathLike[str]"]


class GateInputError(Exception):
    """A baseline or a results folder that cannot be gated; one line saying which and why."""


def gate_results(
    baseline: Baseline | PathLike | Sequence[Record] | None,
    candidate: PathLike | Sequence[PathLike] | Sequence[Record],
    *,
    settings: GateSettings | None = None,
    run_info: Mapping[str, Any] | None = None,
    **options: Any,
) -> GateReport:
    """Gate ``candidate`` against ``baseline``; ``report.failed`` is the verdict, ``report.rows`` the table.

    - ``baseline``: a baseline JSON file (``--save-baseline``), a results folder (one checkpoint), a
      parsed ``Baseline``, a list of ``Record``s of one checkpoint, or None (only ``min_scores`` floors).
    - ``candidate``: one or more results folders (shards of one run are merged), or ``Record``s with
      ``run_info`` (generation settings, hardware, perf; ``{}`` when both sides lack them).
    - ``settings`` or keyword options: the fields of ``GateSettings`` (``max_drop``, ``mode``,
      ``inconclusive``, ``allow_partial``, ...).
    """
    if settings is None:
        try:
            settings = GateSettings(**options)
        except TypeError as exc:
            raise GateInputError(f"gate_results: {exc}") from None
    elif options:
        raise GateInputError("gate_results: pass either settings= or keyword options, not both")
    records, info = _candidate(candidate, run_info)
    return compare(resolve_baseline(baseline), records, info, settings)


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def _candidate(
    candidate: PathLike | Sequence[PathLike] | Sequence[Record], run_info: Mapping[str, Any] | None
) -> tuple[list[Record], Mapping[str, Any]]:
    from pytest_omnilmm.results.runs import MergeError, load_runs

    if _is_path(candidate):
        candidate = [candidate]  # type: ignore[list-item]
    items = list(candidate)  # type: ignore[arg-type]
    if items and all(_is_path(i) for i in items):
        try:
            records, info = load_runs([Path(i) for i in items])
        except MergeError as exc:
            raise GateInputError(str(exc)) from None
        return records, _with_perf(records, info) if run_info is None else {**info, **run_info}
    return items, dict(run_info or {})  # type: ignore[return-value]


def resolve_baseline(baseline: Baseline | PathLike | Sequence[Record] | None) -> Baseline | None:
    """A ``Baseline`` from any of the forms ``gate_results`` accepts (``GateInputError`` when unusable)."""
    from pytest_omnilmm.results.runs import MergeError, load_runs

    if baseline is None or isinstance(baseline, Baseline):
        return baseline
    try:
        if _is_path(baseline):
            path = Path(baseline)  # type: ignore[arg-type]
            if path.is_file():
                return load_baseline(path)
            records, info = load_runs([path])
            info, source = _with_perf(records, info), str(path)
        else:
            records, info, source = list(baseline), {}, "<records>"  # type: ignore[arg-type]
        return Baseline.from_dict(build_baseline(records, info), source)
    except (BaselineError, MergeError) as exc:
        raise GateInputError(str(exc)) from None


def _with_perf(records: Sequence[Record], info: Mapping[str, Any]) -> dict[str, Any]:
    """Run info with perf and hardware recomputed from the records, as the plugin's own summary has them
    (``--max-slowdown`` needs them; shards drop theirs when merged)."""
    from pytest_omnilmm.results.summary import build_summary

    return dict(build_summary(records, dict(info), "gate")["run_info"])
