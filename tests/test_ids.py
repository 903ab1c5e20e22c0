"""The typed eval parameter: built at collection, carried by each item, and the batches the workers
derive from it are the batches the xdist controller derives from the node ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_omnilmm.batching import plan_units, plan_units_by_key
from pytest_omnilmm.ids import EvalParam, eval_param

from .conftest import write_jsonl_dataset

TWO_EVALS = """
import pytest

@pytest.mark.dataset("one", path="tiny.jsonl")
@pytest.mark.dataset("two", path="tiny.jsonl")
def test_both(sample, generate, score):
    score(generate(sample))

@pytest.mark.dataset("three", path="tiny.jsonl")
def test_three(sample, generate, score):
    score(generate(sample))

def test_plain():
    pass
"""


def test_items_carry_typed_params_whose_batches_match_the_ids(
    pytester: pytest.Pytester, tiny_model: Path
) -> None:
    write_jsonl_dataset(pytester.path, n=5)
    pytester.makepyfile(test_evals=TWO_EVALS)
    items, _ = pytester.inline_genitems("--model_path", str(tiny_model), "--batch-size", "3")
    params = [eval_param(it) for it in items]
    evals = [p for p in params if p is not None]
    assert len(evals) == 3 * 5 and all(isinstance(p, EvalParam) for p in evals)
    assert {p.label for p in evals} == {"base"}
    assert {p.case.dataset for p in evals} == {"one", "two", "three"}
    assert [it.name for it, p in zip(items, params, strict=True) if p is None] == ["test_plain"]
    by_param = plan_units_by_key(
        [p.batch_key if p else it.nodeid for it, p in zip(items, params, strict=True)], 3
    )
    assert by_param == plan_units([it.nodeid for it in items], 3)
    assert len(set(by_param)) > 4  # several batches: the comparison is not trivially one unit
