"""The clustered McNemar p-value is the exact sign-flip probability, not a normal approximation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pytest_omnilmm.gate.stats import mcnemar_one_sided_p, paired_stats, sign_flip_p


def _enumerated(sums: list[int]) -> float:
    """P(Σ ε_c |d_c| <= Σ d_c) by listing every sign pattern of the non-zero clusters."""
    nonzero = [abs(s) for s in sums if s]
    observed = sum(sums)
    patterns = list(itertools.product((1, -1), repeat=len(nonzero)))
    hits = sum(sum(e * v for e, v in zip(signs, nonzero, strict=True)) <= observed for signs in patterns)
    return hits / len(patterns)


@pytest.mark.parametrize(
    "sums",
    [[2, -3, -1, 0, -2, 1, -1], [-1, -1, -2, -2, 0, 1], [4, -4, -4, -3, 2, -1, -1, 0, 0], [-2, -2, -2, -2]],
)
def test_sign_flip_p_equals_enumerating_every_sign_pattern(sums: list[int]) -> None:
    assert sign_flip_p(np.array(sums)) == pytest.approx(_enumerated(sums), abs=1e-12)


def test_single_sample_clusters_give_exact_mcnemar() -> None:
    for wins, losses in [(3, 10), (0, 5), (7, 7), (20, 41)]:
        sums = np.array([1] * wins + [-1] * losses + [0] * 4)
        assert sign_flip_p(sums) == pytest.approx(mcnemar_one_sided_p(wins, losses), rel=1e-9)


def test_no_change_is_p_one_and_large_inputs_take_the_fft_path() -> None:
    assert sign_flip_p(np.zeros(10)) == 1.0
    rng = np.random.default_rng(0)
    sums = rng.integers(-3, 4, size=6000)
    p = sign_flip_p(sums)
    # a symmetric draw: the exact p lies near the normal approximation's, which is fine this far from the tail
    z = sums.sum() / np.sqrt((sums**2).sum())
    from statistics import NormalDist

    assert abs(p - NormalDist().cdf(z)) < 0.02


def test_paired_stats_uses_the_exact_p_for_clustered_zero_one_scores() -> None:
    # 4 images x 2 questions: image 0 lost both, image 1 lost one, image 2 won one, image 3 unchanged
    base = [1, 1, 1, 0, 0, 0, 1, 1]
    cand = [0, 0, 0, 0, 1, 0, 1, 1]
    clusters = [0, 0, 1, 1, 2, 2, 3, 3]
    stats = paired_stats(base, cand, clusters)
    assert stats.test == "clustered-mcnemar"
    # 0.375; the normal approximation said 0.207
    assert stats.p_value == pytest.approx(_enumerated([-2, -1, 1, 0]))


def test_monte_carlo_sign_flip_agrees_with_the_exact_one_and_is_reproducible() -> None:
    from pytest_omnilmm.gate.stats import sign_flip_p_mc

    for seed in range(3):
        sums = np.random.default_rng(seed).integers(-3, 3, size=40).astype(float)
        exact = sign_flip_p(sums)
        mc = sign_flip_p_mc(sums, draws=50_000)
        assert abs(mc - exact) < 4 * np.sqrt(exact * (1 - exact) / 50_000) + 1e-4, (seed, exact, mc)
        assert sign_flip_p_mc(sums, draws=50_000) == mc  # seeded by the data
    assert sign_flip_p_mc(np.zeros(5)) == 1.0
    assert sign_flip_p_mc(np.full(30, -0.4)) == pytest.approx(1 / 10_001)  # every pattern is above it


def test_continuous_scores_get_the_sign_flip_test() -> None:
    rng = np.random.default_rng(7)
    base = rng.uniform(0, 1, size=120)
    cand = np.clip(base - rng.uniform(0, 0.2, size=120), 0, 1)
    stats = paired_stats(base, cand, np.arange(120) // 3)
    assert stats.test == "sign-flip" and stats.n_clusters == 40
    assert stats.p_value == pytest.approx(1 / 10_001)  # every cluster lost: no sign pattern is lower
