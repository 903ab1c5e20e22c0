"""Verdicts for all paired comparisons of a run at once (Holm needs them together).

``significant`` (the default) — a dataset **fails** when its drop is significant against zero
(one-sided p, Holm-adjusted over every gated (checkpoint, dataset, metric) of the run, below α) **and**
its observed Δ is worse than −margin. It is **inconclusive** when it did not fail but the run could not
have seen a drop of the margin's size: the minimal detectable drop (80 % power, one-sided level α/k for
k gated comparisons, Holm's strictest step, from the SE under "no change") exceeds the margin, or there
are fewer than two clusters to test. Otherwise it **passes**. The run's A/A false-alarm rate (fail
verdicts) is <= α by Holm.

``noninferiority`` (alias ``strict``) — a dataset **passes** only when the one-sided (1 − α) lower
bound of Δ is above −margin: the data show the drop is smaller than the margin. A true drop of the
margin or more passes with probability <= α per dataset (and so for the run: all must pass); an
underpowered run fails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .stats import POWER, PairedStats, holm, minimal_detectable_drop

PASS = "pass"
FAIL = "fail"
INCONCLUSIVE = "inconclusive"
NOT_GATED = "not gated"
TOL = 1e-12  # float noise must not turn "no change" into a drop with margin 0


@dataclass(frozen=True)
class Decision:
    verdict: str
    reason: str
    p_adjusted: float | None = None
    mdd: float | None = None  # minimal detectable drop at 80 % power
    n_needed: int | None = None  # paired samples for the margin to become detectable
    bound: float | None = None  # non-inferiority: the one-sided lower bound of Δ


def _ci(stats: PairedStats) -> str:
    if stats.ci_low is None or stats.ci_high is None:
        return "no CI"
    return f"{stats.level * 100:g} % CI of Δ [{stats.ci_low:+.4f}, {stats.ci_high:+.4f}]"


def _needed(stats: PairedStats, mdd: float, margin: float) -> int | None:
    if margin <= 0 or mdd <= 0:
        return None
    return math.ceil(stats.n * (mdd / margin) ** 2)


def decide_all(
    stats: Sequence[PairedStats], margins: Sequence[float], *, mode: str, alpha: float
) -> list[Decision]:
    """One decision per comparison, same order; ``stats[i]`` is judged against ``margins[i]``."""
    if mode == "noninferiority":
        return [_noninferiority(s, m, alpha) for s, m in zip(stats, margins, strict=True)]
    testable = [i for i, s in enumerate(stats) if s.p_value is not None]
    p_values = [float(stats[i].p_value) for i in testable]  # type: ignore[arg-type]
    adjusted = dict(zip(testable, holm(p_values), strict=True))
    k = max(1, len(testable))
    return [
        _significant(s, m, alpha, adjusted.get(i), k)
        for i, (s, m) in enumerate(zip(stats, margins, strict=True))
    ]


def _significant(stats: PairedStats, margin: float, alpha: float, p_adj: float | None, k: int) -> Decision:
    delta = stats.delta
    if p_adj is None or stats.se is None:
        return Decision(
            INCONCLUSIVE,
            f"Δ {delta:+.4f} on {stats.n} samples in {stats.n_clusters} cluster: "
            "one cluster cannot be tested; "
            "add samples from other images",
        )
    p = f"one-sided p {stats.p_value:.3g}, Holm {p_adj:.3g}"
    mdd = minimal_detectable_drop(stats.se_null, alpha / k)
    if p_adj < alpha and delta < -margin - TOL:
        return Decision(
            FAIL,
            f"dropped {-delta:.4f} ({_ci(stats)}; {p} < {alpha:g}), beyond the margin {margin:.4f}",
            p_adj,
            mdd,
        )
    if mdd > margin + TOL:
        needed = _needed(stats, mdd, margin)
        more = (
            f"about {needed} paired samples (have {stats.n}) would detect it, or allow more"
            if needed
            else "allow"
        )
        return Decision(
            INCONCLUSIVE,
            f"no significant drop ({p}), but this run detects only drops >= {mdd:.4f} "
            f"({POWER:.0%} power), more than the margin {margin:.4f}: {more} with --max-drop-for "
            f"(e.g. {math.ceil(mdd * 1000) / 1000:g}); --gate-inconclusive pass accepts it",
            p_adj,
            mdd,
            needed,
        )
    if p_adj < alpha:
        why = f"a significant drop of {-delta:.4f} ({p}), within the margin {margin:.4f}"
    elif delta < -margin - TOL:
        why = f"Δ {delta:+.4f} is beyond the margin but not significant ({p})"
    else:
        why = f"Δ {delta:+.4f} ({_ci(stats)}; {p})"
    return Decision(PASS, f"{why}; drops >= {mdd:.4f} would be caught ({POWER:.0%} power)", p_adj, mdd)


def _noninferiority(stats: PairedStats, margin: float, alpha: float) -> Decision:
    bound = stats.lower_bound(alpha)
    level = f"{(1 - alpha) * 100:g} %"
    if bound is None:
        return Decision(
            FAIL,
            f"Δ {stats.delta:+.4f} on {stats.n_clusters} cluster: non-inferiority cannot be shown; "
            "add samples "
            "from other images",
        )
    mdd = None if stats.se is None else minimal_detectable_drop(stats.se_null, alpha)
    if bound > -margin:
        return Decision(
            PASS,
            f"the one-sided {level} lower bound of Δ, {bound:+.4f}, is above -{margin:.4f}",
            bound=bound,
            mdd=mdd,
        )
    needed = None if mdd is None else _needed(stats, mdd, margin)
    hint = f"; about {needed} paired samples (have {stats.n}) could show it" if needed else ""
    return Decision(
        FAIL,
        f"cannot show the drop is within {margin:.4f}: "
        f"the one-sided {level} lower bound of Δ is {bound:+.4f} "
        f"(Δ {stats.delta:+.4f}){hint}",
        bound=bound,
        mdd=mdd,
        n_needed=needed,
    )
