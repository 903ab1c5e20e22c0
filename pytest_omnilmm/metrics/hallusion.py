"""HallusionBench: aAcc, fAcc and qAcc, overall, per ``category`` and per ``l2-category``.

Follows VLMEvalKit's ``Hallusion_rating`` (vlmeval/dataset/utils/yorn.py). Each row is scored 1 when
``YOrN_Extraction`` of the answer equals the ground truth. The index is split on "_": part 3 is the set
id, part 4 the figure id, part 5 the question id.

* aAcc: the mean over all questions;
* fAcc: the share of (l2-category, set, figure) groups whose questions are all right;
* qAcc: the share of (l2-category, set, question) groups whose questions are all right.

The l2-category reaches the aggregate inside the row's group, ``"<l2-category>_<set>"``
(``catalogue.prepare.hallusion_prepare`` sets it), which is also the bootstrap's cluster.
"""

from __future__ import annotations

from collections.abc import Sequence

from .bootstrap import Aggregate, ScoredRow, bootstrap_ci, is_missing, with_missing

INDEX_FORM = "<category>_<subcategory>_<n>_<set>_<figure>_<question>"


def hallusion_ids(sample_id: str) -> tuple[str, str, str] | None:
    """(set, figure, question) ids from a HallusionBench index, or None when it has fewer than 6 parts."""
    parts = sample_id.split("_")
    if len(parts) < 6:
        return None
    return parts[3], parts[4], parts[5]


def _all_right_share(rows: Sequence[ScoredRow], which: int) -> list[float]:
    groups: dict[str, list[float]] = {}
    for r in rows:
        ids = hallusion_ids(r.sample_id)
        assert ids is not None and r.value is not None and r.group is not None
        l2 = r.group.rsplit("_", 1)[0]
        groups.setdefault(f"{l2}_{ids[0]}_{ids[which]}", []).append(r.value)
    return [1.0 if all(v == 1.0 for v in vs) else 0.0 for vs in groups.values()]


def _block(rows: Sequence[ScoredRow], n_boot: int, seed: int, level: float) -> dict[str, Aggregate]:
    kw = {"n_boot": n_boot, "seed": seed, "level": level}
    return {
        "aAcc": bootstrap_ci([r.value for r in rows], [r.group for r in rows], **kw),
        "fAcc": bootstrap_ci(_all_right_share(rows, 1), **kw),
        "qAcc": bootstrap_ci(_all_right_share(rows, 2), **kw),
    }


def hallusion_aggregates(
    rows: Sequence[ScoredRow], n_boot: int, seed: int, level: float
) -> dict[str, Aggregate]:
    scored = [
        r
        for r in rows
        if not is_missing(r.value) and r.group is not None and hallusion_ids(r.sample_id) is not None
    ]
    n_missing = len(rows) - len(scored)
    if not scored:
        return {}
    out = {k: with_missing(a, n_missing) for k, a in _block(scored, n_boot, seed, level).items()}
    by_l2: dict[str, list[ScoredRow]] = {}
    by_cat: dict[str, list[ScoredRow]] = {}
    for r in scored:
        assert r.group is not None
        by_l2.setdefault(r.group.rsplit("_", 1)[0], []).append(r)
        if r.category is not None:
            by_cat.setdefault(r.category, []).append(r)
    for label, members in [*sorted(by_cat.items()), *sorted(by_l2.items())]:
        for key, agg in _block(members, n_boot, seed, level).items():
            out[f"{key}/{label}"] = agg
    return out
