"""POPE: accuracy, precision, recall and F1 of "Yes", overall and per split.

Follows VLMEvalKit's ``POPE_rating`` (vlmeval/dataset/utils/yorn.py): the answer is read with
``YOrN_Extraction``; a prediction counts as positive only when it reads "Yes" (an unreadable answer
counts as "No" for precision/recall and as wrong for accuracy); precision, recall and F1 are 0 when
their denominator is 0. Before anything is counted the rows are exploded on the comma-separated
``category`` cell, so a row naming two splits counts once in each split *and twice in Overall*.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .bootstrap import Aggregate, ScoredRow, is_missing, percentile_interval, resampled_sums, with_missing
from .yesno import extract_yes_no


def _counts(rows: Sequence[ScoredRow]) -> list[tuple[float, float, float, float]]:
    """(tp, fp, fn, correct) per row."""
    out = []
    for r in rows:
        truth = (r.reference or "").strip().lower() == "yes"
        said = extract_yes_no(r.prediction or "", r.flavor) == "Yes"
        assert r.value is not None
        out.append((float(truth and said), float(said and not truth), float(truth and not said), r.value))
    return out


def prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    """Precision, recall, F1 with POPE_rating's zero-denominator rule."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _block(rows: Sequence[ScoredRow], n_boot: int, seed: int, level: float) -> dict[str, Aggregate]:
    import numpy as np

    counts = np.array(_counts(rows), dtype=np.float64).reshape(-1, 4)
    tp, fp, fn, correct = (counts[:, i] for i in range(4))
    n = len(rows)
    point_p, point_r, point_f1 = prf(tp.sum(), fp.sum(), fn.sum())
    points = {"acc": correct.sum() / n, "precision": point_p, "recall": point_r, "f1": point_f1}
    b_tp, b_fp, b_fn, b_c = resampled_sums([tp, fp, fn, correct], np.random.default_rng(seed), n_boot)
    with np.errstate(divide="ignore", invalid="ignore"):
        b_p = np.where(b_tp + b_fp > 0, b_tp / (b_tp + b_fp), 0.0)
        b_r = np.where(b_tp + b_fn > 0, b_tp / (b_tp + b_fn), 0.0)
        b_f1 = np.where(b_p + b_r > 0, 2 * b_p * b_r / (b_p + b_r), 0.0)
    boots = {"acc": b_c / n, "precision": b_p, "recall": b_r, "f1": b_f1}
    out = {}
    for key, point in points.items():
        low, high = percentile_interval(boots[key], level)
        out[key] = Aggregate(float(point), low, high, n, n)
    return out


def pope_aggregates(rows: Sequence[ScoredRow], n_boot: int, seed: int, level: float) -> dict[str, Aggregate]:
    """``f1`` (POPE's headline, "Overall"), ``acc``, ``precision``, ``recall``, and ``<key>/<split>``."""
    scored = [r for r in rows if not is_missing(r.value)]
    n_missing = len(rows) - len(scored)
    exploded = []
    for r in scored:
        names = [c for c in (r.category or "").split(",")] if r.category else [None]
        exploded.extend(replace(r, category=c) for c in names)
    if not exploded:
        return {}
    out = {k: with_missing(a, n_missing) for k, a in _block(exploded, n_boot, seed, level).items()}
    for split in sorted({r.category for r in exploded if r.category is not None}):
        members = [r for r in exploded if r.category == split]
        for key, agg in _block(members, n_boot, seed, level).items():
            out[f"{key}/{split}"] = agg
    return out
