"""Dataset-level aggregates: bootstrap intervals (reproducible, clustered, calibrated), MME, MMBench."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from pytest_omnilmm.metrics import (
    Aggregate,
    MetricError,
    ScoredRow,
    bootstrap_ci,
    dataset_aggregates,
    primary_aggregate_key,
)


def test_mean_and_interval_basics() -> None:
    agg = bootstrap_ci([1.0, 0.0, 1.0, 1.0], n_boot=500)
    # Mean 3/4; the interval brackets it and stays within the range of the data.
    assert agg.mean == 0.75 and agg.n == 4 and agg.n_groups == 4 and agg.n_missing == 0
    assert 0.0 <= agg.ci_low <= agg.mean <= agg.ci_high <= 1.0


def test_same_seed_same_numbers_other_seed_other_numbers() -> None:
    rng = np.random.default_rng(3)
    values = list(rng.random(300))
    groups = [str(i // 3) for i in range(300)]
    first = bootstrap_ci(values, groups, seed=11)
    assert bootstrap_ci(values, groups, seed=11) == first
    assert bootstrap_ci(values, groups, seed=12) != first


def test_missing_values_are_left_out_and_counted() -> None:
    agg = bootstrap_ci([1.0, None, float("nan"), 0.0], ["a", "b", "c", "a"], n_boot=200)
    assert (agg.mean, agg.n, agg.n_groups, agg.n_missing) == (0.5, 2, 1, 2)
    # One cluster: nothing to resample, the interval is the point.
    assert agg.ci_low == agg.ci_high == 0.5
    empty = bootstrap_ci([None, None])
    assert math.isnan(empty.mean) and empty.n == 0 and empty.n_missing == 2


def test_none_group_is_its_own_cluster() -> None:
    agg = bootstrap_ci([1.0, 0.0, 1.0, 1.0], ["g", "g", None, None], n_boot=100)
    assert agg.n_groups == 3


def test_option_errors() -> None:
    with pytest.raises(MetricError, match="differ in length"):
        bootstrap_ci([1.0], ["a", "b"])
    with pytest.raises(MetricError, match="level must be between 0 and 1"):
        bootstrap_ci([1.0], level=95)
    with pytest.raises(MetricError, match="n_boot must be at least 1"):
        bootstrap_ci([1.0], n_boot=0)


def test_clustering_widens_the_interval_when_groups_agree_internally() -> None:
    # Each image's two questions are both right or both wrong: effectively half the evidence.
    values = [float(i % 3 == 0) for i in range(200) for _ in range(2)]
    groups = [str(i) for i in range(200) for _ in range(2)]
    naive = bootstrap_ci(values, seed=1)
    clustered = bootstrap_ci(values, groups, seed=1)
    assert naive.mean == clustered.mean
    naive_width = naive.ci_high - naive.ci_low
    clustered_width = clustered.ci_high - clustered.ci_low
    # Duplicated evidence: the honest interval is about sqrt(2) wider.
    assert 1.2 < clustered_width / naive_width < 1.7


def _coverage(n_sims: int, clustered: bool, seed: int) -> tuple[float, float]:
    """Fraction of simulated datasets whose 95 % interval holds the true mean (clustered / naive)."""
    rng = np.random.default_rng(seed)
    true_mean = 0.6
    hits_clustered = hits_naive = 0
    for sim in range(n_sims):
        if clustered:
            # 40 images x 5 questions sharing an image-level success rate (intra-image correlation).
            rates = rng.beta(true_mean * 2, (1 - true_mean) * 2, size=40)
            values = (rng.random((40, 5)) < rates[:, None]).astype(float).ravel()
            groups = [str(i // 5) for i in range(200)]
        else:
            values = (rng.random(100) < true_mean).astype(float)
            groups = None
        with_groups = bootstrap_ci(list(values), groups, n_boot=400, seed=sim)
        hits_clustered += with_groups.ci_low <= true_mean <= with_groups.ci_high
        if clustered:
            without = bootstrap_ci(list(values), n_boot=400, seed=sim)
            hits_naive += without.ci_low <= true_mean <= without.ci_high
    return hits_clustered / n_sims, hits_naive / n_sims


def test_interval_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    coverage, _ = _coverage(200, clustered=False, seed=2024)
    # Percentile bootstrap at n=100 slightly undercovers; 200 simulations have a standard error of
    # about 1.5 points.
    assert 0.89 <= coverage <= 0.99


def test_clustered_interval_keeps_its_coverage_where_the_naive_one_fails() -> None:
    clustered, naive = _coverage(200, clustered=True, seed=7)
    assert 0.87 <= clustered <= 0.99
    assert naive < clustered - 0.05


def test_fast_enough_for_ten_thousand_samples() -> None:
    rng = np.random.default_rng(0)
    values = list((rng.random(10_000) < 0.7).astype(float))
    groups = [str(i // 2) for i in range(10_000)]
    bootstrap_ci(values[:10], n_boot=10)  # numpy import and first-call costs
    start = time.perf_counter()
    bootstrap_ci(values, n_boot=2000)
    bootstrap_ci(values, groups, n_boot=2000)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"two 10k x 2000 bootstraps took {elapsed:.2f} s"


def _rows(spec: list[tuple[str, float | None, str | None, str | None]]) -> list[ScoredRow]:
    return [ScoredRow(sample_id=s, value=v, group=g, category=c) for s, v, g, c in spec]


def test_mean_aggregate_with_categories() -> None:
    rows = _rows(
        [
            ("1", 1.0, None, "doc"),
            ("2", 0.5, None, "doc"),
            ("3", 0.0, None, "chart"),
            ("4", None, None, "chart"),
        ]
    )
    out = dataset_aggregates("anls", rows, n_boot=200)
    assert set(out) == {"anls", "anls/doc", "anls/chart"}
    # (1 + 0.5 + 0) / 3 = 0.5; doc (1 + 0.5) / 2 = 0.75; chart 0 / 1 with one missing.
    assert out["anls"].mean == 0.5 and out["anls"].n_missing == 1
    assert out["anls/doc"].mean == 0.75
    assert (out["anls/chart"].mean, out["anls/chart"].n, out["anls/chart"].n_missing) == (0.0, 1, 1)


def test_mme_aggregate_worked_example() -> None:
    rows = _rows(
        [
            ("c1", 1.0, "img1", "color"),
            ("c2", 1.0, "img1", "color"),
            ("c3", 1.0, "img2", "color"),
            ("c4", 0.0, "img2", "color"),
            ("o1", 0.0, "img3", "OCR"),
            ("o2", 0.0, "img3", "OCR"),
            ("o3", 1.0, "img4", "OCR"),
            ("o4", 1.0, "img4", "OCR"),
            ("r1", 1.0, "img5", "code_reasoning"),
            ("r2", 0.0, "img5", "code_reasoning"),
        ]
    )
    out = dataset_aggregates("mme", rows, n_boot=300)
    # acc: 6 right of 10 questions = 0.6. acc+: images all right: img1, img4 -> 2 of 5 = 0.4.
    assert out["acc"].mean == pytest.approx(0.6) and out["acc"].n_groups == 5
    assert out["acc_plus"].mean == pytest.approx(0.4)
    # color: acc 3/4 = 75, acc+ 1/2 = 50 -> 125. OCR: acc 2/4 = 50, acc+ 1/2 = 50 -> 100.
    # code_reasoning: acc 1/2 = 50, acc+ 0/1 = 0 -> 50.
    assert out["score/color"].mean == 125.0
    assert out["score/OCR"].mean == 100.0
    assert out["score/code_reasoning"].mean == 50.0
    # perception = 100 + 125 = 225; reasoning = 50; score = 275.
    assert out["score/perception"].mean == 225.0
    assert out["score/reasoning"].mean == 50.0
    assert out["score"].mean == 275.0
    for key in ("score", "score/perception", "acc", "acc_plus"):
        assert out[key].ci_low <= out[key].mean <= out[key].ci_high
    assert out["mme/color"].mean == 0.75


def test_circular_aggregate_worked_example() -> None:
    rows = _rows(
        [
            ("1", 1.0, "1", "ocr"),  # base right
            ("1000001", 0.0, "1", "ocr"),  # a rotation wrong -> group 1 fails
            ("2", 1.0, "2", "ocr"),
            ("1000002", 1.0, "2", "ocr"),  # all right -> group 2 counts
            ("3", 0.0, "3", "logic"),
            ("1000003", 1.0, "3", "logic"),  # base wrong -> group 3 fails
            ("1000004", 1.0, "4", "logic"),  # base row listed after its copy
            ("4", 1.0, "4", "logic"),
        ]
    )
    out = dataset_aggregates("mcq", rows, n_boot=300)
    # Circular: groups 2 and 4 fully right of 4 -> 0.5. Vanilla: base rows 1, 2, 3, 4 -> 1, 1, 0, 1 = 0.75.
    assert out["circular_accuracy"].mean == 0.5 and out["circular_accuracy"].n == 4
    assert out["vanilla_accuracy"].mean == 0.75
    assert out["circular_accuracy/ocr"].mean == 0.5
    assert out["circular_accuracy/logic"].mean == 0.5
    # Per-category mean of every row: ocr 3/4, logic 3/4.
    assert out["mcq/ocr"].mean == 0.75


def test_circular_without_groups_is_plain_accuracy() -> None:
    rows = _rows([("a", 1.0, None, None), ("b", 0.0, None, None), ("c", 1.0, None, None)])
    out = dataset_aggregates("mcq", rows, n_boot=100)
    assert out["circular_accuracy"].mean == out["vanilla_accuracy"].mean == pytest.approx(2 / 3)


def test_primary_key_names_an_aggregate_that_exists() -> None:
    rows = _rows([("1", 1.0, "1", "x"), ("2", 0.0, "2", "x")])
    for metric in ("anls", "mme", "mcq", "vqa_accuracy"):
        key = primary_aggregate_key(metric)
        assert key in dataset_aggregates(metric, rows, n_boot=50)
    assert (primary_aggregate_key("mme"), primary_aggregate_key("mcq")) == ("acc", "circular_accuracy")


def test_unregistered_metric_in_aggregates_is_a_plain_mean() -> None:
    # A value the eval computed itself (score(0.7, metric="f1")) needs no registration (README).
    rows = [ScoredRow(str(i), v, None, None) for i, v in enumerate([1.0, 0.0, 1.0, 1.0])]
    assert dataset_aggregates("f1", rows)["f1"].mean == pytest.approx(0.75)


def test_aggregate_is_a_frozen_dataclass() -> None:
    agg = Aggregate(0.5, 0.4, 0.6, 10, 10)
    with pytest.raises(AttributeError):
        agg.mean = 1.0  # type: ignore[misc]
