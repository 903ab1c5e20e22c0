"""The one bootstrap: percentile intervals over resampled clusters, and the rows and results it works on.

Samples that share an image (MME's question pairs, MMBench's rotated copies) are not independent, so
the bootstrap resamples whole groups ("clusters"), not single samples: resampling samples would
pretend to know more than the data says and give intervals that are too narrow. A sample whose group
is None is its own cluster. The random generator is seeded, so the same inputs give the same interval
on every run. Every dataset-level number (``aggregate``, ``pope``, ``hallusion``) is built from these.

numpy is imported inside the functions: the plugin imports this package while pytest starts.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .flavors import MetricError

if TYPE_CHECKING:
    import numpy as np

# Indices drawn per chunk, to bound memory (10k clusters x 2000 resamples would be 160 MB at once).
_CHUNK_CELLS = 2_000_000


@dataclass(frozen=True)
class Aggregate:
    """A dataset-level estimate: point value, percentile-bootstrap interval, and what it rests on.

    ``n`` counts the scored samples, ``n_groups`` the clusters they form, ``n_missing`` the rows left
    out because they had no score (None) or a NaN one.
    """

    mean: float
    ci_low: float
    ci_high: float
    n: int
    n_groups: int
    n_missing: int = 0


@dataclass(frozen=True)
class ScoredRow:
    """What aggregation needs of one scored sample."""

    sample_id: str
    value: float | None
    group: str | None
    category: str | None
    # What POPE's precision/recall need beyond the score: the raw answer, the truth, the flavour read with.
    prediction: str | None = None
    reference: str | None = None
    flavor: str = "vlmevalkit"


def is_missing(value: float | None) -> bool:
    """Not a score: None (not scorable) or NaN (VLMEvalKit's "undefined"); left out, counted as missing."""
    return value is None or math.isnan(value)


def value_of(row: ScoredRow) -> float:
    """The value of a row already filtered with ``is_missing``."""
    assert row.value is not None
    return row.value


def cluster_keys(groups: Sequence[Hashable | None]) -> tuple[list[int], int]:
    """Cluster index of each position (first appearance order) and the number of clusters."""
    index: dict[Hashable, int] = {}
    keys = []
    for pos, group in enumerate(groups):
        key: Hashable = ("\0own", pos) if group is None else group
        if key not in index:
            index[key] = len(index)
        keys.append(index[key])
    return keys, len(index)


def check_options(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise MetricError(f"n_boot must be at least 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise MetricError(f"level must be between 0 and 1 (e.g. 0.95), got {level}")


def resampled_sums(arrays: Sequence[np.ndarray], rng: Any, n_boot: int) -> list[np.ndarray]:
    """For each per-cluster array, its sum over each of ``n_boot`` resamples of the clusters.

    All arrays share the same resampled clusters, so ratios built from them stay paired.
    """
    import numpy as np

    n_clusters = len(arrays[0])
    rows = max(1, _CHUNK_CELLS // n_clusters)
    out = [np.empty(n_boot) for _ in arrays]
    for start in range(0, n_boot, rows):
        k = min(rows, n_boot - start)
        idx = rng.integers(0, n_clusters, size=(k, n_clusters))
        for target, arr in zip(out, arrays, strict=True):
            target[start : start + k] = arr[idx].sum(axis=1)
    return out


def percentile_interval(boot: np.ndarray, level: float) -> tuple[float, float]:
    import numpy as np

    tail = (1.0 - level) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_ci(
    values: Sequence[float | None],
    groups: Sequence[str | None] | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Aggregate:
    """Mean of ``values`` with a percentile-bootstrap interval, resampling groups when given.

    None and NaN values are left out and counted in ``n_missing``. The mean is ``numpy.mean`` of the
    remaining values in their given order (what the reference evaluators print, to the last digit).
    """
    import numpy as np

    check_options(n_boot, level)
    if groups is not None and len(groups) != len(values):
        raise MetricError(f"values and groups differ in length ({len(values)} vs {len(groups)})")
    all_groups: Sequence[str | None] = groups if groups is not None else [None] * len(values)
    kept = [(float(v), g) for v, g in zip(values, all_groups, strict=True) if not is_missing(v)]
    n_missing = len(values) - len(kept)
    if not kept:
        nan = float("nan")
        return Aggregate(nan, nan, nan, 0, 0, n_missing)
    data = np.array([v for v, _ in kept], dtype=np.float64)
    keys, n_clusters = cluster_keys([g for _, g in kept])
    mean = float(np.mean(data))
    if n_clusters == 1:
        return Aggregate(mean, mean, mean, len(kept), 1, n_missing)
    key_arr = np.array(keys)
    sums = np.bincount(key_arr, weights=data, minlength=n_clusters)
    counts = np.bincount(key_arr, minlength=n_clusters).astype(np.float64)
    rng = np.random.default_rng(seed)
    if np.all(counts == 1):
        boot = resampled_sums([sums], rng, n_boot)[0] / n_clusters
    else:
        boot_sums, boot_counts = resampled_sums([sums, counts], rng, n_boot)
        boot = boot_sums / boot_counts
    low, high = percentile_interval(boot, level)
    return Aggregate(mean, low, high, len(kept), n_clusters, n_missing)


def with_missing(agg: Aggregate, n_missing: int) -> Aggregate:
    return Aggregate(agg.mean, agg.ci_low, agg.ci_high, agg.n, agg.n_groups, agg.n_missing + n_missing)
