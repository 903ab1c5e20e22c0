"""Dataset-level numbers with percentile-bootstrap confidence intervals.

Samples that share an image (MME's question pairs, MMBench's rotated copies) are not independent, so
the bootstrap resamples whole groups ("clusters"), not single samples: resampling samples would
pretend to know more than the data says and give intervals that are too narrow. A sample whose group
is None is its own cluster. The random generator is seeded, so the same inputs give the same interval
on every run.

numpy is imported inside the functions: the plugin imports this package while pytest starts.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .flavors import MetricError
from .registry import aggregate_kind

if TYPE_CHECKING:
    import numpy as np

# Indices drawn per chunk, to bound memory (10k clusters x 2000 resamples would be 160 MB at once).
_CHUNK_CELLS = 2_000_000

# MME's published score sums these per-category scores (perception first, then reasoning).
MME_PERCEPTION: tuple[str, ...] = (
    "OCR",
    "artwork",
    "celebrity",
    "color",
    "count",
    "existence",
    "landmark",
    "position",
    "posters",
    "scene",
)
MME_REASONING: tuple[str, ...] = (
    "code_reasoning",
    "commonsense_reasoning",
    "numerical_calculation",
    "text_translation",
)


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


def _is_missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def _value(row: ScoredRow) -> float:
    """The value of a row already filtered with ``_is_missing``."""
    assert row.value is not None
    return row.value


def _cluster_keys(groups: Sequence[Hashable | None]) -> tuple[list[int], int]:
    """Cluster index of each position (first appearance order) and the number of clusters."""
    index: dict[Hashable, int] = {}
    keys = []
    for pos, group in enumerate(groups):
        key: Hashable = ("\0own", pos) if group is None else group
        if key not in index:
            index[key] = len(index)
        keys.append(index[key])
    return keys, len(index)


def _check_options(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise MetricError(f"n_boot must be at least 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise MetricError(f"level must be between 0 and 1 (e.g. 0.95), got {level}")


def _resampled_sums(arrays: Sequence[np.ndarray], rng: Any, n_boot: int) -> list[np.ndarray]:
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


def _interval(boot: np.ndarray, level: float) -> tuple[float, float]:
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

    _check_options(n_boot, level)
    if groups is not None and len(groups) != len(values):
        raise MetricError(f"values and groups differ in length ({len(values)} vs {len(groups)})")
    all_groups: Sequence[str | None] = groups if groups is not None else [None] * len(values)
    kept = [
        (float(v), g) for v, g in zip(values, all_groups, strict=True) if v is not None and not math.isnan(v)
    ]
    n_missing = len(values) - len(kept)
    if not kept:
        nan = float("nan")
        return Aggregate(nan, nan, nan, 0, 0, n_missing)
    data = np.array([v for v, _ in kept], dtype=np.float64)
    keys, n_clusters = _cluster_keys([g for _, g in kept])
    mean = float(np.mean(data))
    if n_clusters == 1:
        return Aggregate(mean, mean, mean, len(kept), 1, n_missing)
    key_arr = np.array(keys)
    sums = np.bincount(key_arr, weights=data, minlength=n_clusters)
    counts = np.bincount(key_arr, minlength=n_clusters).astype(np.float64)
    rng = np.random.default_rng(seed)
    if np.all(counts == 1):
        boot = _resampled_sums([sums], rng, n_boot)[0] / n_clusters
    else:
        boot_sums, boot_counts = _resampled_sums([sums, counts], rng, n_boot)
        boot = boot_sums / boot_counts
    low, high = _interval(boot, level)
    return Aggregate(mean, low, high, len(kept), n_clusters, n_missing)


def _count(values: Sequence[float | None], n_boot: int, seed: int, level: float) -> Aggregate:
    """A count of right answers (OCRBench reports counts, not means), with the bootstrap of the mean
    scaled by the number of rows."""
    agg = bootstrap_ci(values, n_boot=n_boot, seed=seed, level=level)
    n = agg.n
    return Aggregate(agg.mean * n, agg.ci_low * n, agg.ci_high * n, agg.n, agg.n_groups, agg.n_missing)


def ocrbench_counts(
    rows: Sequence[ScoredRow], *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, Aggregate]:
    """OCRBench's own figures, as VLMEvalKit's ``OCRBench.evaluate`` (``vlmeval/dataset/image_vqa.py``)
    prints them: ``Text Recognition`` (right answers in the six recognition categories), ``Final Score``
    (right answers in all ten; out of 1000 on the full benchmark) and ``Final Score Norm`` (Final Score / 10).
    """
    from .ocrbench import TEXT_RECOGNITION

    recognition = [r.value for r in rows if r.category in TEXT_RECOGNITION]
    final = _count([r.value for r in rows], n_boot, seed, level)
    norm = Aggregate(final.mean / 10, final.ci_low / 10, final.ci_high / 10, final.n, final.n_groups)
    return {
        "Text Recognition": _count(recognition, n_boot, seed, level),
        "Final Score": final,
        "Final Score Norm": norm,
    }


def _mean_kind(
    metric: str, rows: Sequence[ScoredRow], n_boot: int, seed: int, level: float
) -> dict[str, Aggregate]:
    return {
        metric: bootstrap_ci(
            [r.value for r in rows], [r.group for r in rows], n_boot=n_boot, seed=seed, level=level
        )
    }


def _all_right(values: Sequence[float]) -> float:
    return 1.0 if all(v == 1.0 for v in values) else 0.0


def _group_rows(rows: Sequence[ScoredRow], key_of: Any) -> dict[Hashable, list[ScoredRow]]:
    grouped: dict[Hashable, list[ScoredRow]] = {}
    for pos, row in enumerate(rows):
        key = ("\0own", pos) if row.group is None else key_of(row)
        grouped.setdefault(key, []).append(row)
    return grouped


def _circular_kind(
    metric: str, rows: Sequence[ScoredRow], n_boot: int, seed: int, level: float
) -> dict[str, Aggregate]:
    scored = [r for r in rows if not _is_missing(r.value)]
    n_missing = len(rows) - len(scored)
    grouped = _group_rows(scored, lambda r: r.group)
    circular = [_all_right([_value(r) for r in members]) for members in grouped.values()]
    # The base row is the copy whose id is the group id (MMBench index < 1e6), else the first copy.
    bases = [next((r for r in members if r.sample_id == r.group), members[0]) for members in grouped.values()]
    out = {
        "circular_accuracy": _with_missing(
            bootstrap_ci(circular, n_boot=n_boot, seed=seed, level=level), n_missing
        ),
        "vanilla_accuracy": _with_missing(
            bootstrap_ci([b.value for b in bases], n_boot=n_boot, seed=seed, level=level), n_missing
        ),
    }
    for category in sorted({b.category for b in bases if b.category is not None}):
        hits = [c for c, b in zip(circular, bases, strict=True) if b.category == category]
        out[f"circular_accuracy/{category}"] = bootstrap_ci(hits, n_boot=n_boot, seed=seed, level=level)
    return out


def _with_missing(agg: Aggregate, n_missing: int) -> Aggregate:
    return Aggregate(agg.mean, agg.ci_low, agg.ci_high, agg.n, agg.n_groups, agg.n_missing + n_missing)


def _mme_order(categories: Sequence[str]) -> list[str]:
    known = [c for c in (*MME_PERCEPTION, *MME_REASONING) if c in categories]
    return known + sorted(c for c in categories if c not in known)


_NO_CATEGORY = "(no category)"


def _mme_kind(
    metric: str, rows: Sequence[ScoredRow], n_boot: int, seed: int, level: float
) -> dict[str, Aggregate]:
    import numpy as np

    scored = [r for r in rows if not _is_missing(r.value)]
    n_missing = len(rows) - len(scored)
    # MME groups by (category, image): the same image id in two categories is two groups.
    grouped = _group_rows(scored, lambda r: (r.category, r.group))
    plus = {key: _all_right([_value(r) for r in members]) for key, members in grouped.items()}
    out = {
        "acc": _with_missing(
            bootstrap_ci(
                [r.value for r in scored],
                [_group_label(r) for r in scored],
                n_boot=n_boot,
                seed=seed,
                level=level,
            ),
            n_missing,
        ),
        "acc_plus": _with_missing(
            bootstrap_ci(list(plus.values()), n_boot=n_boot, seed=seed, level=level), n_missing
        ),
    }
    by_category: dict[str, list[Hashable]] = {}
    for key, members in grouped.items():
        label = members[0].category if members[0].category is not None else _NO_CATEGORY
        by_category.setdefault(label, []).append(key)
    rng = np.random.default_rng(seed)
    scores: dict[str, Aggregate] = {}
    boots: dict[str, np.ndarray] = {}
    for label in _mme_order(list(by_category)):
        keys = by_category[label]
        values = np.array([r.value for k in keys for r in grouped[k]], dtype=np.float64)
        plus_arr = np.array([plus[k] for k in keys], dtype=np.float64)
        # Same operations in the same order as MME_rating: percent accuracy plus percent accuracy+.
        point = float(np.mean(values)) * 100 + float(np.mean(plus_arr)) * 100
        if len(keys) == 1:
            boots[label] = np.full(n_boot, point)
        else:
            sums = np.array([sum(_value(r) for r in grouped[k]) for k in keys], dtype=np.float64)
            counts = np.array([len(grouped[k]) for k in keys], dtype=np.float64)
            s_b, n_b, p_b = _resampled_sums([sums, counts, plus_arr], rng, n_boot)
            boots[label] = s_b / n_b * 100 + p_b / len(keys) * 100
        low, high = _interval(boots[label], level)
        scores[label] = Aggregate(point, low, high, len(values), len(keys))
        out[f"score/{label}"] = scores[label]
    parts = {
        "perception": [c for c in MME_PERCEPTION if c in scores],
        "reasoning": [c for c in MME_REASONING if c in scores],
        "": [c for c in scores if c not in MME_PERCEPTION and c not in MME_REASONING],
    }
    total = 0.0
    total_boot = np.zeros(n_boot)
    for name, cats in parts.items():
        if not cats:
            continue
        # MME sums perception and reasoning separately, then adds the two: keep that order.
        subtotal = 0.0
        sub_boot = np.zeros(n_boot)
        for c in cats:
            subtotal += scores[c].mean
            sub_boot += boots[c]
        if name:
            low, high = _interval(sub_boot, level)
            n_rows = sum(scores[c].n for c in cats)
            out[f"score/{name}"] = Aggregate(
                subtotal, low, high, n_rows, sum(scores[c].n_groups for c in cats)
            )
        total += subtotal
        total_boot += sub_boot
    low, high = _interval(total_boot, level)
    out["score"] = Aggregate(total, low, high, len(scored), len(grouped), n_missing)
    return out


def _group_label(row: ScoredRow) -> str | None:
    return None if row.group is None else f"{row.category}\0{row.group}"


_PRIMARY = {"mme": "acc", "circular": "circular_accuracy", "pope": "f1", "hallusion": "aAcc"}


def primary_aggregate_key(metric: str) -> str:
    """The key of ``dataset_aggregates(metric, ...)`` that is the dataset's headline value in [0, 1]:
    the metric's own name for plain means, ``acc`` for MME, ``circular_accuracy`` for MMBench."""
    return _PRIMARY.get(aggregate_kind(metric), metric)


def dataset_aggregates(
    metric: str, rows: Sequence[ScoredRow], *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, Aggregate]:
    """All dataset-level numbers of ``metric`` for one (checkpoint, dataset).

    * ``mean``: ``{metric: ...}``;
    * ``mme``: ``acc`` (per question), ``acc_plus`` (per image: 1 only if all its questions are
      right), ``score`` (MME's: sum over categories of ``acc*100 + acc_plus*100``), and
      ``score/<category>``, ``score/perception``, ``score/reasoning``;
    * ``circular``: ``circular_accuracy`` (a group counts only if every copy is right),
      ``vanilla_accuracy`` (the base rows alone) and ``circular_accuracy/<category>``;

    plus ``<metric>/<category>``, the per-category mean of the per-sample values, whenever rows have
    categories. Groups cluster the bootstrap everywhere.
    """
    _check_options(n_boot, level)
    kind = aggregate_kind(metric)
    if kind == "mean":
        out = _mean_kind(metric, rows, n_boot, seed, level)
        if metric == "ocrbench":
            out.update(ocrbench_counts(rows, n_boot=n_boot, seed=seed, level=level))
    elif kind == "mme":
        out = _mme_kind(metric, rows, n_boot, seed, level)
    elif kind == "circular":
        out = _circular_kind(metric, rows, n_boot, seed, level)
    elif kind in ("pope", "hallusion"):  # these print their own per-split breakdowns
        from .hallusion import hallusion_aggregates
        from .pope import pope_aggregates

        return (pope_aggregates if kind == "pope" else hallusion_aggregates)(rows, n_boot, seed, level)
    else:  # pragma: no cover - the registry only holds the kinds above
        raise MetricError(f"metric {metric!r} has an unknown aggregation {kind!r}")
    for category in sorted({r.category for r in rows if r.category is not None}):
        members = [r for r in rows if r.category == category]
        out[f"{metric}/{category}"] = bootstrap_ci(
            [r.value for r in members], [r.group for r in members], n_boot=n_boot, seed=seed, level=level
        )
    return out
