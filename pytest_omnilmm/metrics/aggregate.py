"""Dataset-level numbers of a metric, by the aggregation its registry entry names: plain means,
OCRBench's counts, MME's accuracy+ and score, MMBench's circular accuracy, and the per-benchmark
POPE and HallusionBench breakdowns (``pope.py``, ``hallusion.py``). All intervals come from the one
bootstrap in ``bootstrap.py``. Imports point one way: registry and the per-benchmark modules never
import this one.

numpy is imported inside the functions: the plugin imports this package while pytest starts.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from .bootstrap import (
    Aggregate,
    ScoredRow,
    bootstrap_ci,
    check_options,
    is_missing,
    percentile_interval,
    resampled_sums,
    value_of,
    with_missing,
)
from .flavors import MetricError
from .hallusion import hallusion_aggregates
from .pope import pope_aggregates
from .registry import aggregate_kind

__all__ = ["Aggregate", "ScoredRow", "bootstrap_ci", "dataset_aggregates", "primary_aggregate_key"]

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
    scored = [r for r in rows if not is_missing(r.value)]
    n_missing = len(rows) - len(scored)
    grouped = _group_rows(scored, lambda r: r.group)
    circular = [_all_right([value_of(r) for r in members]) for members in grouped.values()]
    # The base row is the copy whose id is the group id (MMBench index < 1e6), else the first copy.
    bases = [next((r for r in members if r.sample_id == r.group), members[0]) for members in grouped.values()]
    out = {
        "circular_accuracy": with_missing(
            bootstrap_ci(circular, n_boot=n_boot, seed=seed, level=level), n_missing
        ),
        "vanilla_accuracy": with_missing(
            bootstrap_ci([b.value for b in bases], n_boot=n_boot, seed=seed, level=level), n_missing
        ),
    }
    for category in sorted({b.category for b in bases if b.category is not None}):
        hits = [c for c, b in zip(circular, bases, strict=True) if b.category == category]
        out[f"circular_accuracy/{category}"] = bootstrap_ci(hits, n_boot=n_boot, seed=seed, level=level)
    return out


def _mme_order(categories: Sequence[str]) -> list[str]:
    known = [c for c in (*MME_PERCEPTION, *MME_REASONING) if c in categories]
    return known + sorted(c for c in categories if c not in known)


_NO_CATEGORY = "(no category)"


def _mme_kind(
    metric: str, rows: Sequence[ScoredRow], n_boot: int, seed: int, level: float
) -> dict[str, Aggregate]:
    import numpy as np

    scored = [r for r in rows if not is_missing(r.value)]
    n_missing = len(rows) - len(scored)
    # MME groups by (category, image): the same image id in two categories is two groups.
    grouped = _group_rows(scored, lambda r: (r.category, r.group))
    plus = {key: _all_right([value_of(r) for r in members]) for key, members in grouped.items()}
    out = {
        "acc": with_missing(
            bootstrap_ci(
                [r.value for r in scored],
                [_group_label(r) for r in scored],
                n_boot=n_boot,
                seed=seed,
                level=level,
            ),
            n_missing,
        ),
        "acc_plus": with_missing(
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
            sums = np.array([sum(value_of(r) for r in grouped[k]) for k in keys], dtype=np.float64)
            counts = np.array([len(grouped[k]) for k in keys], dtype=np.float64)
            s_b, n_b, p_b = resampled_sums([sums, counts, plus_arr], rng, n_boot)
            boots[label] = s_b / n_b * 100 + p_b / len(keys) * 100
        low, high = percentile_interval(boots[label], level)
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
            low, high = percentile_interval(sub_boot, level)
            n_rows = sum(scores[c].n for c in cats)
            out[f"score/{name}"] = Aggregate(
                subtotal, low, high, n_rows, sum(scores[c].n_groups for c in cats)
            )
        total += subtotal
        total_boot += sub_boot
    low, high = percentile_interval(total_boot, level)
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
    check_options(n_boot, level)
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
        return (pope_aggregates if kind == "pope" else hallusion_aggregates)(rows, n_boot, seed, level)
    else:  # pragma: no cover - the registry only holds the kinds above
        raise MetricError(f"metric {metric!r} has an unknown aggregation {kind!r}")
    for category in sorted({r.category for r in rows if r.category is not None}):
        members = [r for r in rows if r.category == category]
        out[f"{metric}/{category}"] = bootstrap_ci(
            [r.value for r in members], [r.group for r in members], n_boot=n_boot, seed=seed, level=level
        )
    return out
