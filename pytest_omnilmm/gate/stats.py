"""The gate's statistics: paired one-sided tests, Holm's adjustment, minimal detectable drop.

Everything here is pure arithmetic on two aligned score lists (numpy, no model, no files), so the
plugin, ``python -m pytest_omnilmm gate`` and ``benchmarks/gate_power.py`` run the very same code.

Tests (H0: the candidate is not worse; H1: it is worse; one-sided):

- 0/1 scores, every cluster one sample: exact McNemar — the candidate's wins among the ``m``
  discordant pairs are Binomial(m, 1/2) under H0, p = P(X <= wins). The CI of Δ is exact too,
  conditional on ``m``: Δ = m·(2π − 1)/n with a Clopper-Pearson interval for π.
- 0/1 scores, several samples per cluster (an image, an MME pair, MMBench's rotated copies): the
  clustered McNemar statistic of Durkalski et al. (2003), Σ d_c over clusters (d_c: the cluster's wins
  minus losses), with its exact sign-flip p-value (``sign_flip_p``) instead of their normal
  approximation. It is exact McNemar when clusters are single samples.
- continuous scores (VQA accuracy, ANLS, ...): the same sign-flip test on the real-valued cluster
  changes, by Monte Carlo (``sign_flip_p_mc``, 10,000 seeded draws); the CI of Δ uses the cluster-robust
  standard error (SE² = K/(K−1) · Σ_c (S_c − n_c Δ)² / N²) with K − 1 degrees of freedom.

The standard error of Δ for the CI and the non-inferiority bound is the cluster-robust one above (for
exact McNemar sqrt((m/n − Δ²)/n)). The minimal detectable drop uses the SE under "no change",
sqrt(Σ_c d_c²)/N (sqrt(m)/n for McNemar): it is what the test's power rests on, and it cannot collapse
to 0 when every cluster happens to lose the same amount.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

POWER = 0.80  # the power at which the minimal detectable drop is quoted
_NORMAL = NormalDist()


# ------------------------------------------------------------------------------- special functions


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b) from its continued fraction (modified Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast only below this point
        return 1.0 - betainc(b, a, 1.0 - x)
    log_front = a * math.log(x) + b * math.log1p(-x) - math.log(a) - _log_beta(a, b)
    tiny = 1e-300
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        step = 1.0
        for coef in (
            m * (b - m) * x / ((a + 2 * m - 1.0) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1.0)),
        ):
            d = 1.0 + coef * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + coef / c
            c = c if abs(c) > tiny else tiny
            step = c * d
            h *= step
        if abs(step - 1.0) < 1e-15:
            break
    return math.exp(log_front) * h


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return betainc(n - k, k + 1, 1.0 - p)


def beta_ppf(q: float, a: float, b: float) -> float:
    lo, hi = 0.0, 1.0
    for _ in range(100):  # bisection: I_x is monotone in x, and 100 halvings reach float precision
        mid = (lo + hi) / 2
        if betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided CI for a binomial proportion with k successes out of n."""
    alpha = 1.0 - level
    low = 0.0 if k <= 0 else beta_ppf(alpha / 2, k, n - k + 1)
    high = 1.0 if k >= n else beta_ppf(1 - alpha / 2, k + 1, n - k)
    return low, high


def t_cdf(t: float, df: float) -> float:
    """Student's t distribution function (via the incomplete beta function)."""
    if math.isinf(t):
        return 0.0 if t < 0 else 1.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t < 0 else 1.0 - tail


@functools.lru_cache(maxsize=4096)
def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t (bisection on ``t_cdf``)."""
    if q == 0.5:
        return 0.0
    lo, hi = -1e3, 1e3
    while t_cdf(lo, df) > q:
        lo *= 10
    while t_cdf(hi, df) < q:
        hi *= 10
    for _ in range(300):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def z(q: float) -> float:
    return _NORMAL.inv_cdf(q)


# ------------------------------------------------------------------------------------- the tests


def mcnemar_one_sided_p(wins: int, losses: int) -> float:
    """Exact one-sided McNemar p-value for "the candidate is worse": P(X <= wins), X ~ Bin(m, 1/2)."""
    m = wins + losses
    if m == 0:
        return 1.0
    return binom_cdf(wins, m, 0.5)


def sign_flip_p(cluster_sums: Any) -> float:
    """Exact one-sided p of the clustered McNemar statistic: P(T <= Σ d_c) for T = Σ ε_c |d_c|, the ε_c
    independent fair signs.

    Under "the candidate is not worse" as an A/A run has it (the two runs exchangeable), every cluster's
    change d_c (integer: wins minus losses) is as likely to be +|d_c| as -|d_c|; the sign-flip
    distribution of the sum is then exact, conditional on the |d_c|, with no normal approximation (which
    measured a 5.1 % false-alarm rate at a nominal 5 %, 4 questions per image, N = 2000). With every
    cluster one sample it is exact McNemar. Computed by convolving one scaled binomial per distinct |d_c|.
    """
    import numpy as np

    sums = np.rint(np.asarray(cluster_sums, dtype=float)).astype(np.int64)
    observed = int(sums.sum())
    sizes, counts = np.unique(np.abs(sums[sums != 0]), return_counts=True)
    if len(sizes) == 0:
        return 1.0
    pmf = np.ones(1)
    for v, c in zip(sizes.tolist(), counts.tolist(), strict=True):
        # v·(2B − c), B ~ Bin(c, 1/2): mass on a grid of step 2v, from −v·c to +v·c
        b = np.arange(c + 1)
        log_pmf = np.array(
            [math.lgamma(c + 1) - math.lgamma(k + 1) - math.lgamma(c - k + 1) for k in b]
        ) - c * math.log(2.0)
        part = np.zeros(2 * v * c + 1)
        part[2 * v * b] = np.exp(log_pmf)
        pmf = _convolve(pmf, part)
    total = int(sizes @ counts)  # the support runs from −total to +total
    cut = observed + total
    return float(min(1.0, max(0.0, pmf[: cut + 1].sum())))


SIGN_FLIP_DRAWS = 10_000  # Monte-Carlo sign patterns for continuous scores: p resolves to ~1e-4
_FIRST_DRAWS = 1_000  # after these, a p clearly above any threshold (> 0.2) is returned at once


def sign_flip_p_mc(cluster_sums: Any, draws: int = SIGN_FLIP_DRAWS) -> float:
    """One-sided sign-flip p for real-valued cluster changes: (1 + #{T <= Σ d_c}) / (1 + draws) over random
    sign patterns, T = Σ ε_c |d_c|.

    A Monte-Carlo randomization test is exactly level α under the same null as ``sign_flip_p`` (the two
    runs exchangeable), whatever the distribution of the scores — the t-test it replaces is only
    approximately so (measured 5.5 % [4.9 %, 6.3 %] A/A false alarms at N = 200). The draws are seeded by
    the data, so the same two runs always get the same p. A p above 0.2 after the first 1,000 draws is
    returned without the rest: stopping early only ever *raises* a p that no threshold could reject.
    """
    import hashlib

    import numpy as np

    sums = np.asarray(cluster_sums, dtype=float)
    magnitudes = np.abs(sums[sums != 0])
    if len(magnitudes) == 0:
        return 1.0
    observed = float(sums.sum())
    tolerance = 1e-9 * (float(magnitudes.sum()) + 1.0)  # T and the observed sum add in different orders
    seed = int.from_bytes(hashlib.sha256(np.ascontiguousarray(sums).tobytes()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    chunk = max(1, min(1_000, 4_000_000 // len(magnitudes)))  # bounds the sign matrix at ~32 MB
    width = (len(magnitudes) + 7) // 8
    # T <= observed  <=>  Σ_{ε_c = +1} |d_c| <= (observed + Σ|d_c|) / 2: a 0/1 matrix from random bytes
    limit = (observed + float(magnitudes.sum())) / 2 + tolerance

    def count(n: int) -> int:
        hits = 0
        for start in range(0, n, chunk):
            rows = min(chunk, n - start)
            raw = np.frombuffer(rng.bytes(rows * width), dtype=np.uint8).reshape(rows, width)
            plus = np.unpackbits(raw, axis=1)[:, : len(magnitudes)].astype(np.float64)
            hits += int(((plus @ magnitudes) <= limit).sum())
        return hits

    done = min(_FIRST_DRAWS, draws)
    hits = count(done)
    if hits <= 0.2 * done and draws > done:
        hits += count(draws - done)
        done = draws
    return (1 + hits) / (1 + done)


def _convolve(a: Any, b: Any) -> Any:
    import numpy as np

    if len(a) * len(b) <= 4_000_000:
        return np.convolve(a, b)
    size = len(a) + len(b) - 1
    out = np.fft.irfft(np.fft.rfft(a, size) * np.fft.rfft(b, size), size)
    return np.clip(out, 0.0, None)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (same order as given): reject where adjusted p < α keeps FWER <= α."""
    k = len(p_values)
    order = sorted(range(k), key=lambda i: p_values[i])
    adjusted = [1.0] * k
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (k - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def minimal_detectable_drop(se: float, alpha: float, power: float = POWER) -> float:
    """The true drop a one-sided level-α test detects with ``power`` (normal approximation)."""
    return (z(1 - alpha) + z(power)) * se


@dataclass(frozen=True)
class PairedStats:
    """Baseline vs candidate on the same samples; ``p_value`` is one-sided (small: the candidate is worse).

    ``p_value``/``se`` are None when the data cannot be tested (fewer than two clusters).
    """

    n: int
    n_clusters: int
    baseline_mean: float
    candidate_mean: float
    delta: float
    se: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    test: str  # "mcnemar-exact" | "clustered-mcnemar" | "sign-flip" (continuous scores)
    se_null: float  # the SE of Δ under "no change" (uncentred cluster sums): what the power of the test uses
    worse: int  # samples that scored lower than in the baseline
    better: int
    level: float = 0.95

    def lower_bound(self, alpha: float) -> float | None:
        """One-sided (1 − α) lower confidence bound of Δ (what non-inferiority compares with −margin)."""
        if self.se is None:
            return None
        if self.test == "mcnemar-exact":
            # Unconditional and exact: Δ = P(win) − P(loss) >= lower(P(win)) − upper(P(loss)), each a
            # one-sided Clopper–Pearson bound at α/2 (Bonferroni). No discordant pair still leaves
            # a loss rate up to about 3.7/n possible, so identical predictions on few samples do not pass.
            n, wins, losses = self.n, self.better, self.worse
            win_low = 0.0 if wins == 0 else beta_ppf(alpha / 2, wins, n - wins + 1)
            loss_high = 1.0 if losses >= n else beta_ppf(1 - alpha / 2, losses + 1, n - losses)
            return win_low - loss_high
        # The centred SE collapses to 0 when every cluster changed alike: the SE under no change is the floor.
        se = max(self.se, self.se_null)
        return self.delta - t_ppf(1 - alpha, self.n_clusters - 1) * se


def _cluster_sums(diffs: Any, clusters: Sequence[Hashable] | Any | None) -> tuple[Any, Any]:
    """Per-cluster sums and sizes (numpy arrays), in sorted key order: the input order never matters."""
    import numpy as np

    if clusters is None:
        return np.sort(diffs), np.ones(len(diffs))
    keys = np.asarray(clusters) if not isinstance(clusters, np.ndarray) else clusters
    if keys.dtype == object:
        keys = np.asarray([repr(k) for k in clusters])
    _, inverse = np.unique(keys, return_inverse=True)
    return np.bincount(inverse, weights=diffs), np.bincount(inverse).astype(float)


def paired_stats(
    baseline: Sequence[float] | Any,
    candidate: Sequence[float] | Any,
    clusters: Sequence[Hashable] | Any | None = None,
    *,
    level: float = 0.95,
) -> PairedStats:
    """Compare two score lists aligned sample by sample (``clusters``: which samples belong together).

    Lists or numpy arrays; ``clusters`` holds one hashable key per sample (None: every sample alone).
    """
    import numpy as np

    b = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    n = len(b)
    if n == 0 or len(c) != n:
        raise ValueError(f"paired_stats needs two non-empty lists of equal length, got {n} and {len(c)}")
    if clusters is not None and len(clusters) != n:
        raise ValueError(f"paired_stats: {len(clusters)} cluster keys for {n} samples")
    if not (np.isfinite(b).all() and np.isfinite(c).all()):
        raise ValueError("paired_stats: scores must be finite numbers (leave undefined samples out)")
    diffs = c - b
    delta = math.fsum(diffs.tolist()) / n
    worse = int((diffs < 0).sum())
    better = int((diffs > 0).sum())
    binary = bool(np.isin(b, (0.0, 1.0)).all() and np.isin(c, (0.0, 1.0)).all())
    sums, sizes = _cluster_sums(diffs, clusters)
    k = len(sums)
    clustered = bool(sizes.max() > 1)
    se_null = math.sqrt(float((sums * sums).sum())) / n
    common: dict[str, Any] = {
        "n": n,
        "n_clusters": k,
        "baseline_mean": math.fsum(b.tolist()) / n,
        "candidate_mean": math.fsum(c.tolist()) / n,
        "delta": delta,
        "se_null": se_null,
        "worse": worse,
        "better": better,
        "level": level,
    }

    if k < 2:  # one sample or one cluster: nothing to compare its change with
        test = (
            "mcnemar-exact" if binary and not clustered else ("clustered-mcnemar" if binary else "sign-flip")
        )
        return PairedStats(se=None, ci_low=None, ci_high=None, p_value=None, test=test, **common)
    if binary and not clustered:
        m = better + worse
        se = math.sqrt(max(m / n - delta * delta, 0.0) / n)
        if m == 0:
            ci_low = ci_high = 0.0
        else:
            lo, hi = clopper_pearson(better, m, level)
            ci_low, ci_high = m * (2 * lo - 1) / n, m * (2 * hi - 1) / n
        p = mcnemar_one_sided_p(better, worse)
        return PairedStats(se=se, ci_low=ci_low, ci_high=ci_high, p_value=p, test="mcnemar-exact", **common)

    test = "clustered-mcnemar" if binary else "sign-flip"
    if k < 2:
        return PairedStats(se=None, ci_low=None, ci_high=None, p_value=None, test=test, **common)
    resid = float(((sums - sizes * delta) ** 2).sum())
    se = math.sqrt(k / (k - 1) * resid) / n
    half = t_ppf(1 - (1 - level) / 2, k - 1) * se
    ci_low, ci_high = delta - half, delta + half
    if binary:
        p = sign_flip_p(sums)
    else:
        p = sign_flip_p_mc(sums)
    return PairedStats(se=se, ci_low=ci_low, ci_high=ci_high, p_value=p, test=test, **common)
