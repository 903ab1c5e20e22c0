"""The public registries: ``register_metric`` / ``register_reader``, and the README's custom-metric example
run as written in a subprocess pytest on the tiny model."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import pytest_omnilmm
from pytest_omnilmm.datasets import load_dataset, reader_formats, unregister_reader
from pytest_omnilmm.metrics import MetricError, dataset_aggregates, get_metric, primary_aggregate_key
from pytest_omnilmm.metrics.aggregate import ScoredRow
from pytest_omnilmm.metrics.registry import Score, unregister_metric
from pytest_omnilmm.sample import Sample, Text

from .conftest import write_jsonl_dataset

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example_files() -> dict[str, str]:
    """The files of the README's custom-metric example, by the path named in each block's first line."""
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- custom-metric-example", 1)[1].split("<!-- /custom-metric-example -->", 1)[0]
    files = {}
    for code in re.findall(r"```python\n(.*?)```", block, flags=re.S):
        first = code.splitlines()[0]
        assert first.startswith("# "), f"README example block without a '# path' line: {first!r}"
        files[first[2:].strip()] = code
    return files


def test_readme_custom_metric_example_runs_as_written(pytester: pytest.Pytester, tiny_model: Path) -> None:
    files = readme_example_files()
    assert set(files) == {"conftest.py", "evals/test_custom.py"}
    for rel, code in files.items():
        target = pytester.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code, encoding="utf-8")
    write_jsonl_dataset(pytester.path / "evals")
    result = pytester.runpytest_subprocess("evals", "--model_path", str(tiny_model), "--max-new-tokens", "4")
    result.assert_outcomes(passed=12)
    assert result.ret == 0
    (run,) = (pytester.path / ".omnilmm-results").iterdir()
    rows = {r["dataset"]: r for r in json.loads((run / "summary.json").read_text())["results"]}
    mine = rows["tiny"]
    assert mine["metric"] == "my_metric" and mine["primary"] == "my_metric"
    assert mine["mean"] == pytest.approx(0.73) and mine["scored"] == 6
    assert mine["ci_low"] == pytest.approx(0.73) and mine["ci_high"] == pytest.approx(0.73)
    short = rows["tiny_short"]
    assert short["metric"] == "short_answer" and short["scored"] == 6
    assert 0.0 <= short["mean"] <= 1.0 and short["ci_low"] <= short["mean"] <= short["ci_high"]


@pytest.fixture
def registered() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        unregister_metric(name)


def test_register_metric_scores_and_aggregates(registered: list[str]) -> None:
    registered.append("starts_with_a")
    metric = pytest_omnilmm.register_metric(
        "starts_with_a", lambda pred, s: float(pred.startswith("a")), aggregate="mean"
    )
    assert get_metric("starts_with_a") is metric
    sample = Sample(id="1", dataset="d", parts=(Text("q"),), references=("x",))
    assert metric.score("apple", sample) == Score(1.0)
    assert metric.score("pear", sample) == Score(0.0)
    rows = [ScoredRow(str(i), float(i % 2), None, None) for i in range(10)]
    agg = dataset_aggregates("starts_with_a", rows)[primary_aggregate_key("starts_with_a")]
    assert agg.mean == pytest.approx(0.5) and agg.ci_low < 0.5 < agg.ci_high and agg.n == 10


def test_unregistered_values_are_a_plain_mean() -> None:
    rows = [ScoredRow(str(i), v, None, None) for i, v in enumerate([0.2, 0.4, None, 0.9])]
    out = dataset_aggregates("never_registered", rows)
    assert primary_aggregate_key("never_registered") == "never_registered"
    agg = out["never_registered"]
    assert agg.mean == pytest.approx(0.5) and agg.n == 3 and agg.n_missing == 1


def test_register_metric_refusals(registered: list[str]) -> None:
    with pytest.raises(MetricError, match="built in"):
        pytest_omnilmm.register_metric("exact_match", lambda p, s: 1.0)
    with pytest.raises(MetricError, match="unknown aggregate 'median'"):
        pytest_omnilmm.register_metric("m1", lambda p, s: 1.0, aggregate="median")
    registered.append("m2")
    pytest_omnilmm.register_metric("m2", lambda p, s: 1.0)
    with pytest.raises(MetricError, match="already registered; pass replace=True"):
        pytest_omnilmm.register_metric("m2", lambda p, s: 0.0)
    pytest_omnilmm.register_metric("m2", lambda p, s: 0.0, replace=True)
    sample = Sample(id="1", dataset="d", parts=(Text("q"),), references=("x",))
    assert get_metric("m2").score("x", sample).value == 0.0
    registered.append("bad")
    pytest_omnilmm.register_metric("bad", lambda p, s: "yes")  # type: ignore[arg-type, return-value]
    with pytest.raises(MetricError, match="returned str; a scorer returns a float"):
        get_metric("bad").score("x", sample)
    with pytest.raises(MetricError, match=r"add one with pytest_omnilmm\.register_metric"):
        get_metric("nope")


def test_unknown_metric_on_a_string_answer_fails_the_item(
    eval_project: pytest.Pytester, tiny_model: Path
) -> None:
    eval_project.makepyfile(
        test_tiny_eval="""
import pytest

@pytest.mark.dataset("tiny", path="tiny.jsonl")
def test_tiny(sample, generate, score):
    score(generate(sample), metric="nope")
"""
    )
    result = eval_project.runpytest_subprocess("--model_path", str(tiny_model), "--max-new-tokens", "2")
    result.assert_outcomes(failed=6)
    result.stdout.fnmatch_lines(["*tiny: unknown metric 'nope'; known metrics: *register_metric*"])


def test_register_reader_by_format_and_suffix(tmp_path: Path) -> None:
    def read_lines(
        path: Path, *, name: str, image_root: Path | None, limit_rows: int | None
    ) -> Iterator[Sample]:
        for i, line in enumerate(path.read_text().splitlines()):
            q, a = line.split("|")
            yield Sample(id=str(i), dataset=name, parts=(Text(q),), references=(a,))

    pytest_omnilmm.register_reader("pipes", read_lines, suffixes=(".pipes",))
    try:
        assert "pipes" in reader_formats()
        path = tmp_path / "d.pipes"
        path.write_text("2+2?|4\ncapital of France?|Paris\n")
        by_suffix = load_dataset(path, name="d")
        assert [s.references for s in by_suffix] == [("4",), ("Paris",)]
        other = tmp_path / "d.txt"
        other.write_text("a|b\n")
        assert load_dataset(other, name="d", format="pipes")[0].references == ("b",)
        with pytest.raises(ValueError, match="already registered"):
            pytest_omnilmm.register_reader("pipes", read_lines)
        with pytest.raises(ValueError, match="built in"):
            pytest_omnilmm.register_reader("jsonl", read_lines)
    finally:
        unregister_reader("pipes")
    assert "pipes" not in reader_formats()
