"""Which test items share a generate call. Pure and deterministic from node ids alone.

The worker (to build batches) and the xdist scheduler on the controller (to keep batches on one
worker) must agree without talking, so both derive batches from the ordered node ids: consecutive
items of one test function and one checkpoint label, cut into chunks of ``size``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence


def batch_key(nodeid: str) -> str:
    """``evals/test_vqa.py::test_vqa[ckpt0-123]`` -> ``evals/test_vqa.py::test_vqa[ckpt0``."""
    head, bracket, params = nodeid.partition("[")
    if not bracket:
        return nodeid
    label = params.split("-", 1)[0]
    return f"{head}[{label}"


def plan_units(nodeids: Sequence[str], size: int) -> list[int]:
    """A unit number per node id; a unit is at most ``size`` consecutive ids with the same key. The
    xdist controller's view (it has ids only); workers use ``plan_units_by_key`` on
    ``EvalParam.batch_key``."""
    return plan_units_by_key([batch_key(nodeid) for nodeid in nodeids], size)


def plan_units_by_key(keys: Sequence[Hashable], size: int) -> list[int]:
    """A unit number per key; a unit is at most ``size`` consecutive equal keys."""
    units: list[int] = []
    unit = -1
    prev_key: Hashable | None = None
    filled = 0
    for key in keys:
        if key != prev_key or filled >= size:
            unit += 1
            filled = 0
            prev_key = key
        units.append(unit)
        filled += 1
    return units
