"""The typed eval parameter each test item carries: built once at collection, read everywhere on the
worker through ``item.stash[EVAL_PARAM]`` (or ``eval_param(item)``), never parsed back from a node id.

The xdist controller sees node ids only; ``batching.batch_key`` derives the same batch key from the id
this module's ``EvalParam.node_id_part`` writes, so the scheduler and the workers agree on batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from .sample import Sample


@dataclass(frozen=True)
class EvalParam:
    """One eval item: which eval case (``collection.EvalCase``), which checkpoint label, which sample."""

    case: Any
    label: str
    sample: Sample
    function: str  # the test function's node id, e.g. ``evals/test_vqa.py::test_vqa``

    @property
    def batch_key(self) -> tuple[str, str]:
        """Items that may share a generate call: one test function, one checkpoint."""
        return (self.function, self.label)

    def node_id_part(self, prefix: str) -> str:
        """The item's parameter id ``{label}-{prefix}{sample id}``; ``batching.batch_key`` reads the label."""
        return f"{self.label}-{prefix}{self.sample.id}"


@dataclass(frozen=True)
class UnavailableParam:
    """A dataset that could not be used (missing: skipped; unreadable: failed), as one item."""

    case: Any
    reason: Any  # collection.Unavailable


EVAL_PARAM = pytest.StashKey[EvalParam]()


def param_of(item: pytest.Item) -> EvalParam | UnavailableParam | None:
    """The parameter ``@pytest.mark.dataset`` gave this item, if any."""
    callspec = getattr(item, "callspec", None)
    param = callspec.params.get("sample") if callspec is not None else None
    return param if isinstance(param, EvalParam | UnavailableParam) else None


def eval_param(item: pytest.Item) -> EvalParam | None:
    """The item's ``EvalParam`` (None for items that are not evals)."""
    if EVAL_PARAM in item.stash:
        return item.stash[EVAL_PARAM]
    param = param_of(item)
    if isinstance(param, EvalParam):
        item.stash[EVAL_PARAM] = param
        return param
    return None
