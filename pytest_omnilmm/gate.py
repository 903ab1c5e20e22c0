"""The regression gate: a candidate run compared with a baseline, sample by sample, with verdicts.

Statistics (all paired: a sample is matched to itself by sample id, so per-sample difficulty cancels):

- 0-1 scores, every sample its own image: exact McNemar test (two-sided exact binomial on the
  discordant pairs) for the p-value. The CI of the difference is exact too, conditional on the number
  of discordant pairs ``m``: Δ = m·(2π − 1)/n where π, the share of discordant pairs the candidate won,
  gets a Clopper-Pearson interval. That interval inverts the same binomial test, so "the CI excludes 0"
  and "p < 1 − level" agree.
- 0-1 scores, several samples per image: the bootstrap CI below, and the clustered McNemar statistic
  of Durkalski et al. (2003), which reduces to plain McNemar when every cluster is a single sample.
- Continuous scores (VQA accuracy, ANLS, ...): paired bootstrap of the mean difference, resampling
  whole image clusters; percentile CI; two-sided p-value from the bootstrap distribution shifted to 0.

Verdicts, for a margin m (the drop that is allowed):
- ``strict``: fail when the observed Δ < −m.
- ``significant``: fail when the CI's upper bound < −m, i.e. a drop larger than the margin with
  one-sided confidence (1 + level)/2 (97.5 % for a 95 % CI). When Δ < −m but the CI reaches above −m the
  verdict is *inconclusive* and says how many matched samples would resolve a drop of that size (normal
  approximation, 80 % power). Otherwise pass.

Everything that makes the comparison meaningless fails closed with its reason: no matched samples, a
dataset missing from the run, changed sample content, a changed generation setting, another metric
flavour. Rows are computed from records sorted by id, so merged shards give the same verdicts as one run.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pytest_omnilmm.baseline import Baseline, BaselineDataset, clean_score, record_score
from pytest_omnilmm.config import parse_margin_map, parse_percent  # noqa: F401  (the option parsers' home)

if TYPE_CHECKING:
    from pytest_omnilmm.records import Record

PASS = "pass"
FAIL = "fail"
INCONCLUSIVE = "inconclusive"
NOT_GATED = "not gated"

MODES = ("significant", "strict")
GATED_SETTINGS = ("generate_method", "max_new_tokens", "num_beams", "dtype")
MAX_FLIPS = 5  # flipped samples kept per row: enough for triage, short enough for a terminal
MAX_ERROR_IDS = 20
_TOL = 1e-12  # float noise must not turn "no change" into a drop with margin 0
_POWER = 0.80  # for the "samples needed" estimate of an inconclusive verdict
_REGEN = "regenerate the baseline with --save-baseline"


# ------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class GateSettings:
    """How strict the gate is; built once from options/ini by the plugin."""

    max_drop: float = 0.01
    per_metric_max_drop: Mapping[str, float] = field(default_factory=dict)  # dataset or metric -> margin
    mode: str = "significant"
    min_scores: Mapping[str, float] = field(default_factory=dict)  # dataset or metric -> absolute floor
    max_slowdown: float | None = None  # fraction: 0.10 fails a run more than 10 % slower
    level: float = 0.95
    n_boot: int = 2000
    seed: int = 0
    inconclusive_fails: bool = False  # treat "inconclusive" as a failure (for gates that must be sure)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"--gate: unknown mode {self.mode!r}; choose one of: {', '.join(MODES)}")
        if not (math.isfinite(self.max_drop) and self.max_drop >= 0):
            raise ValueError(
                f"--max-drop: must be a number >= 0 (an absolute score drop), got {self.max_drop}"
            )
        for name, margin in self.per_metric_max_drop.items():
            if not (math.isfinite(margin) and margin >= 0):
                raise ValueError(f"max-drop for {name!r}: must be a number >= 0, got {margin}")
        if self.max_slowdown is not None and not (
            math.isfinite(self.max_slowdown) and self.max_slowdown >= 0
        ):
            raise ValueError(f"--max-slowdown: must be >= 0 (e.g. 10%), got {self.max_slowdown}")
        if not 0.5 < self.level < 1:
            raise ValueError(f"gate confidence level must be between 0.5 and 1 (e.g. 0.95), got {self.level}")
        if self.n_boot < 100:
            raise ValueError(f"gate bootstrap resamples must be >= 100, got {self.n_boot}")
        # Read-only views: the settings object is shared and must not change under anyone.
        object.__setattr__(self, "per_metric_max_drop", MappingProxyType(dict(self.per_metric_max_drop)))
        object.__setattr__(self, "min_scores", MappingProxyType(dict(self.min_scores)))

    def margin_for(self, dataset: str, metric: str) -> float:
        """A dataset's own margin wins over its metric's, which wins over the global one."""
        for key in (dataset, metric):
            if key in self.per_metric_max_drop:
                return float(self.per_metric_max_drop[key])
        return self.max_drop


# -------------------------------------------------------------------------------------- exact tests


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b) from its continued fraction (modified Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast only below this point
        return 1.0 - _betainc(b, a, 1.0 - x)
    log_front = a * math.log(x) + b * math.log1p(-x) - math.log(a) - _log_beta(a, b)
    tiny = 1e-300
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
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


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return _betainc(n - k, k + 1, 1.0 - p)


def _beta_ppf(q: float, a: float, b: float) -> float:
    lo, hi = 0.0, 1.0
    for _ in range(100):  # bisection: I_x is monotone in x, and 100 halvings reach float precision
        mid = (lo + hi) / 2
        if _betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact CI for a binomial proportion with k successes out of n."""
    alpha = 1.0 - level
    low = 0.0 if k <= 0 else _beta_ppf(alpha / 2, k, n - k + 1)
    high = 1.0 if k >= n else _beta_ppf(1 - alpha / 2, k + 1, n - k)
    return low, high


def mcnemar_exact_p(gains: int, losses: int) -> float:
    """Two-sided exact McNemar p-value: doubled smaller binomial tail of the discordant pairs."""
    m = gains + losses
    if m == 0:
        return 1.0
    return min(1.0, 2.0 * binom_cdf(min(gains, losses), m, 0.5))


def clustered_mcnemar_p(cluster_diffs: Sequence[float]) -> float:
    """Durkalski's clustered McNemar: per cluster (gains − losses); chi-square with 1 df."""
    num = math.fsum(cluster_diffs) ** 2
    den = math.fsum(d * d for d in cluster_diffs)
    if den == 0:
        return 1.0
    return math.erfc(math.sqrt(num / den / 2.0))


# -------------------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class MeanCI:
    """A mean with its bootstrap CI (the same shape as ``metrics.aggregate.Aggregate``)."""

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    n_groups: int


def _clusters(values: Sequence[float], groups: Sequence[Hashable] | None) -> tuple[list[float], list[int]]:
    """Per-cluster sums and sizes, clusters sorted by key so the input order never matters."""
    if groups is None:
        return sorted(values), [1] * len(values)
    sums: dict[Hashable, list[float]] = {}
    for value, key in zip(values, groups, strict=True):
        sums.setdefault(key, []).append(value)
    keys = sorted(sums, key=repr)
    return [math.fsum(sums[k]) for k in keys], [len(sums[k]) for k in keys]


def _bootstrap_means(sums: Sequence[float], sizes: Sequence[int], *, n_boot: int, seed: int) -> Any:
    """Means of ``n_boot`` cluster resamples (ratio of resampled sums to resampled sizes)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    s = np.asarray(sums, dtype=float)
    z = np.asarray(sizes, dtype=float)
    k = len(s)
    chunk = max(1, min(n_boot, 2_000_000 // max(k, 1)))  # bounded memory on large datasets
    out = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, k, size=(stop - start, k))
        out[start:stop] = s[idx].sum(axis=1) / z[idx].sum(axis=1)
    return out


def _percentiles(boot: Any, level: float) -> tuple[float, float]:
    import numpy as np

    alpha = 1.0 - level
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_mean_ci(
    values: Sequence[float],
    groups: Sequence[Hashable] | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> MeanCI:
    """Mean and percentile CI, resampling whole clusters when ``groups`` says which samples share one."""
    n = len(values)
    if n == 0:
        return MeanCI(None, None, None, 0, 0)
    sums, sizes = _clusters(values, groups)
    mean = math.fsum(values) / n
    if len(sums) < 2:
        return MeanCI(mean, None, None, n, len(sums))
    low, high = _percentiles(_bootstrap_means(sums, sizes, n_boot=n_boot, seed=seed), level)
    return MeanCI(mean, low, high, n, len(sums))


# ------------------------------------------------------------------------------------ paired stats


@dataclass(frozen=True)
class PairedStats:
    n: int
    n_groups: int
    baseline_mean: float
    candidate_mean: float
    delta: float
    ci_low: float | None  # None when there is no variability to measure (a single cluster)
    ci_high: float | None
    p_value: float
    test: str  # "mcnemar-exact" | "clustered-mcnemar" | "paired-bootstrap"
    worse: int  # samples that scored lower than in the baseline (right -> wrong for 0-1 scores)
    better: int


def paired_stats(
    baseline: Sequence[float],
    candidate: Sequence[float],
    groups: Sequence[Hashable] | None = None,
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> PairedStats:
    """Compare two score lists aligned sample by sample (``groups``: the image cluster of each)."""
    n = len(baseline)
    if n == 0 or len(candidate) != n:
        raise ValueError(
            f"paired_stats needs two non-empty lists of equal length, got {n} and {len(candidate)}"
        )
    diffs = [c - b for b, c in zip(baseline, candidate, strict=True)]
    delta = math.fsum(diffs) / n
    worse = sum(1 for d in diffs if d < 0)
    better = sum(1 for d in diffs if d > 0)
    binary = all(v in (0.0, 1.0) for v in (*baseline, *candidate))
    sums, sizes = _clusters(diffs, groups)
    clustered = max(sizes) > 1
    ci_low: float | None
    ci_high: float | None
    if binary and not clustered:
        test = "mcnemar-exact"
        p_value = mcnemar_exact_p(better, worse)
        m = better + worse
        if m == 0:
            ci_low = ci_high = 0.0
        else:
            lo, hi = clopper_pearson(better, m, level)
            ci_low, ci_high = m * (2 * lo - 1) / n, m * (2 * hi - 1) / n
    elif len(sums) < 2:
        test = "clustered-mcnemar" if binary else "paired-bootstrap"
        ci_low = ci_high = None
        p_value = 1.0
    else:
        boot = _bootstrap_means(sums, sizes, n_boot=n_boot, seed=seed)
        ci_low, ci_high = _percentiles(boot, level)
        if binary:
            test = "clustered-mcnemar"
            p_value = clustered_mcnemar_p(sums)
        else:
            test = "paired-bootstrap"
            # Shift the bootstrap distribution to the null (no difference) and count as-extreme draws.
            extreme = int((abs(boot - delta) >= abs(delta) - _TOL).sum()) if delta != 0 else n_boot
            p_value = min(1.0, (1 + extreme) / (n_boot + 1))
    return PairedStats(
        n=n,
        n_groups=len(sums),
        baseline_mean=math.fsum(baseline) / n,
        candidate_mean=math.fsum(candidate) / n,
        delta=delta,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_value,
        test=test,
        worse=worse,
        better=better,
    )


@dataclass(frozen=True)
class Decision:
    verdict: str
    reason: str
    n_needed: int | None = None


def decide(stats: PairedStats, *, margin: float, mode: str, level: float = 0.95) -> Decision:
    """The verdict for one paired comparison (see the module docstring for the rules)."""
    delta = stats.delta
    pct = _pct(level)
    beyond = delta < -margin - _TOL
    if mode == "strict":
        if beyond:
            return Decision(
                FAIL, f"Δ {delta:+.4f} is below -{margin:.4f} (strict gate: any drop beyond the margin)"
            )
        return Decision(PASS, f"Δ {delta:+.4f} is within the margin {margin:.4f}")
    if stats.ci_low is None or stats.ci_high is None:
        if beyond:
            return Decision(
                INCONCLUSIVE,
                f"Δ {delta:+.4f} exceeds the margin {margin:.4f}, but all {stats.n} samples share one image: "
                "no CI; add samples from other images",
            )
        return Decision(PASS, f"Δ {delta:+.4f} is within the margin {margin:.4f} (one image cluster: no CI)")
    ci = f"{pct} CI of Δ [{stats.ci_low:+.4f}, {stats.ci_high:+.4f}]"
    if stats.ci_high < -margin - _TOL:
        return Decision(FAIL, f"dropped {-delta:.4f}: {ci} lies below -{margin:.4f}")
    if beyond:
        needed = _samples_needed(stats, margin, level)
        return Decision(
            INCONCLUSIVE,
            f"observed drop {-delta:.4f} exceeds the margin {margin:.4f} but the {ci} reaches above "
            f"-{margin:.4f}; about {needed} matched samples (have {stats.n}) would resolve a drop this size",
            needed,
        )
    if stats.ci_low > -margin:
        return Decision(PASS, f"{ci} lies above -{margin:.4f}")
    return Decision(PASS, f"Δ {delta:+.4f} is within the margin {margin:.4f}; no significant drop beyond it")


def _samples_needed(stats: PairedStats, margin: float, level: float) -> int:
    """Matched samples for 80 % power against a true Δ equal to the observed one (normal approx.)."""
    assert stats.ci_low is not None and stats.ci_high is not None
    z_alpha = NormalDist().inv_cdf(1 - (1 - level) / 2)
    z_beta = NormalDist().inv_cdf(_POWER)
    sd = (stats.ci_high - stats.ci_low) / (2 * z_alpha) * math.sqrt(stats.n)
    gap = abs(stats.delta + margin)
    return math.ceil(((z_alpha + z_beta) * sd / gap) ** 2)


# ------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Flip:
    """A sample that scored lower than in the baseline (right -> wrong for 0-1 scores)."""

    sample_id: str
    baseline_score: float
    candidate_score: float
    baseline_prediction: str | None
    candidate_prediction: str | None
    candidate_error: str | None = None


@dataclass(frozen=True)
class CategoryDelta:
    category: str
    n: int
    baseline_mean: float
    candidate_mean: float
    delta: float


@dataclass(frozen=True)
class Row:
    """One line of the gate table.

    ``check``: "paired" (baseline vs candidate), "floor" (--min-score), "latency" (--max-slowdown),
    "setting" (generation setting changed), "coverage" (dataset missing/extra, no records).
    ``limit``: the margin, floor or allowed slowdown. For latency rows ``delta`` is the relative slowdown.
    """

    check: str
    checkpoint: str
    dataset: str
    metric: str
    verdict: str
    reason: str
    baseline: float | None = None
    candidate: float | None = None
    delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    test: str = ""
    limit: float | None = None
    n: int = 0
    n_needed: int | None = None
    n_errors: int = 0
    error_ids: tuple[str, ...] = ()
    n_worse: int = 0
    n_better: int = 0
    flips: tuple[Flip, ...] = ()
    categories: tuple[CategoryDelta, ...] = ()

    @property
    def label(self) -> str:
        parts = [p for p in (self.checkpoint, self.dataset, self.metric) if p and p != "*"]
        return " / ".join(parts)


@dataclass(frozen=True)
class GateReport:
    rows: tuple[Row, ...]
    mode: str
    level: float
    baseline_source: str | None = None
    notes: tuple[str, ...] = ()
    inconclusive_fails: bool = False

    def _failing(self, row: Row) -> bool:
        return row.verdict == FAIL or (self.inconclusive_fails and row.verdict == INCONCLUSIVE)

    @property
    def failed(self) -> bool:
        return any(self._failing(r) for r in self.rows)

    @property
    def reasons(self) -> list[str]:
        """One line per failing row: why the gate failed."""
        return [f"{r.label}: {r.reason}" for r in self.rows if self._failing(r)]

    @property
    def warnings(self) -> list[str]:
        """Inconclusive and not-gated rows that did not fail the gate, one line each."""
        return [
            f"{r.label} ({r.verdict}): {r.reason}"
            for r in self.rows
            if r.verdict in (INCONCLUSIVE, NOT_GATED) and not self._failing(r)
        ]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "failed": self.failed, "reasons": self.reasons}


def compare(
    baseline: Baseline | None,
    records: Iterable[Record],
    run_info: Mapping[str, Any],
    settings: GateSettings,
) -> GateReport:
    """Gate every checkpoint of the run against the baseline (and the absolute floors)."""
    records = sorted(records, key=lambda r: (r.checkpoint, r.dataset, r.sample_id))
    by_key: dict[tuple[str, str], list[Record]] = {}
    for rec in records:
        by_key.setdefault((rec.checkpoint, rec.dataset), []).append(rec)
    labels = sorted({label for label, _ in by_key}, key=natural_key)
    rows: list[Row] = []
    notes: list[str] = []

    if baseline is not None:
        rows.extend(_setting_rows(baseline, run_info))
        notes.extend(_version_notes(baseline, run_info))
        if not labels:
            rows.append(
                Row(
                    "coverage",
                    "*",
                    "*",
                    "*",
                    FAIL,
                    "this run produced no records to compare with the baseline",
                )
            )
        for label in labels:
            fingerprint = ((run_info.get("checkpoints") or {}).get(label) or {}).get("fingerprint")
            if fingerprint and fingerprint == baseline.checkpoint.get("fingerprint"):
                notes.append(f"{label} has the same weights as the baseline (fingerprint {fingerprint[:12]})")
            run_datasets = {ds for lab, ds in by_key if lab == label}
            for ds in sorted(set(baseline.datasets) | run_datasets):
                if ds not in run_datasets:
                    rows.append(
                        Row(
                            "coverage",
                            label,
                            ds,
                            baseline.datasets[ds].metric,
                            FAIL,
                            f"dataset {ds!r} is in the baseline but not in this run; "
                            f"run it too or {_REGEN} without it",
                        )
                    )
                elif ds not in baseline.datasets:
                    metric = _primary_metric(by_key[(label, ds)])
                    rows.append(
                        Row(
                            "coverage",
                            label,
                            ds,
                            metric,
                            NOT_GATED,
                            f"dataset {ds!r} is not in the baseline {baseline.source}: reported, not gated; "
                            "add it with --save-baseline",
                        )
                    )
                else:
                    rows.append(_paired_row(label, baseline.datasets[ds], by_key[(label, ds)], settings))
            if settings.max_slowdown is not None:
                rows.extend(_latency_rows(label, baseline, run_info, settings.max_slowdown))

    rows.extend(_floor_rows(by_key, labels, settings))
    return GateReport(
        rows=tuple(rows),
        mode=settings.mode,
        level=settings.level,
        baseline_source=None if baseline is None else baseline.source,
        notes=tuple(notes),
        inconclusive_fails=settings.inconclusive_fails,
    )


def natural_key(label: str) -> tuple[Any, ...]:
    """Sort "ckpt2" before "ckpt10" (checkpoint labels of a sweep in their order)."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", label))


def _primary_metric(recs: Sequence[Record]) -> str:
    metrics = sorted({r.metric for r in recs if r.metric})
    return metrics[0] if len(metrics) == 1 else "/".join(metrics) or "?"


def _setting_rows(baseline: Baseline, run_info: Mapping[str, Any]) -> list[Row]:
    generation = run_info.get("generation") or {}
    rows = []
    for name in GATED_SETTINGS:
        before, now = baseline.generation.get(name), generation.get(name)
        if before != now:
            rows.append(
                Row(
                    "setting",
                    "*",
                    "*",
                    name,
                    FAIL,
                    f"generation setting {name} changed: baseline {before!r}, this run {now!r}; "
                    f"rerun with {name}={before!r} or {_REGEN}",
                )
            )
    return rows


def _version_notes(baseline: Baseline, run_info: Mapping[str, Any]) -> list[str]:
    versions = run_info.get("versions") or {}
    notes = []
    for name in sorted(set(baseline.versions) | set(versions)):
        before, now = baseline.versions.get(name), versions.get(name)
        if before != now:
            notes.append(f"{name}: baseline {before}, this run {now}")
    return notes


def _paired_row(label: str, base: BaselineDataset, recs: list[Record], settings: GateSettings) -> Row:
    metric = base.metric
    margin = settings.margin_for(base.name, metric)
    problems: list[str] = []
    remarks: list[str] = []

    by_id: dict[str, Record] = {}
    duplicates: list[str] = []
    for rec in recs:
        if rec.sample_id in by_id:
            duplicates.append(rec.sample_id)
        by_id[rec.sample_id] = rec
    if duplicates:
        problems.append(
            f"{_count(len(duplicates), 'sample id')} duplicated in this run, e.g. {duplicates[0]!r} "
            "(overlapping shards?)"
        )
    flavors = sorted({r.metric_flavor for r in recs})
    if flavors != [base.metric_flavor]:
        problems.append(
            f"baseline used flavour {base.metric_flavor!r}, this run {', '.join(map(repr, flavors))}; "
            f"rerun with --metric-flavor {base.metric_flavor} or {_REGEN}"
        )
    if not any(metric in r.scores for r in recs if r.error is None) and any(r.error is None for r in recs):
        problems.append(
            f"this run has no {metric!r} scores (its metric is {_primary_metric(recs)}); "
            f"the baseline gates {metric!r}: score it or {_REGEN}"
        )

    matched = sorted(set(by_id) & set(base.samples))
    if not matched:
        problems.append(
            f"no matched samples: none of the {len(base.samples)} baseline sample ids are among this run's "
            f"{len(by_id)}; {_REGEN}"
        )
    changed = [sid for sid in matched if by_id[sid].sample_hash != base.samples[sid].sample_hash]
    if changed:
        problems.append(
            f"dataset content changed for {_count(len(changed), 'sample')}, e.g. {changed[0]!r}; {_REGEN}"
        )

    pairs: list[tuple[str, float, float]] = []
    unscored = 0
    changed_set = set(changed)
    for sid in matched:
        if sid in changed_set:
            continue
        b, c = base.samples[sid].score, record_score(by_id[sid], metric)
        if b is None or c is None:
            unscored += 1
        else:
            pairs.append((sid, b, c))
    if len(matched) < len(base.samples):
        remarks.append(f"compared on {len(matched)} of {len(base.samples)} baseline samples")
    if unscored:
        remarks.append(f"{_count(unscored, 'sample')} without a {metric} score left out")
    errors = sorted(sid for sid, r in by_id.items() if r.error is not None)
    if errors:
        remarks.append(_errored(errors))

    common = {
        "n_errors": len(errors),
        "error_ids": tuple(errors[:MAX_ERROR_IDS]),
        "limit": margin,
    }
    if not pairs:
        reason = "; ".join((problems or [f"no scored sample pairs for {metric}"]) + remarks)
        return Row("paired", label, base.name, metric, FAIL, reason, **common)

    groups = [by_id[sid].group or base.samples[sid].group or f"\0{sid}" for sid, _, _ in pairs]
    stats = paired_stats(
        [b for _, b, _ in pairs],
        [c for _, _, c in pairs],
        groups,
        level=settings.level,
        n_boot=settings.n_boot,
        seed=settings.seed,
    )
    decision = decide(stats, margin=margin, mode=settings.mode, level=settings.level)
    verdict = FAIL if problems else decision.verdict
    reason = "; ".join([*problems, decision.reason, *remarks])
    worst = sorted((p for p in pairs if p[2] < p[1]), key=lambda p: (p[2] - p[1], p[0]))[:MAX_FLIPS]
    flips = tuple(
        Flip(
            sample_id=sid,
            baseline_score=b,
            candidate_score=c,
            baseline_prediction=base.samples[sid].prediction,
            candidate_prediction=by_id[sid].prediction,
            candidate_error=by_id[sid].error,
        )
        for sid, b, c in worst
    )
    return Row(
        "paired",
        label,
        base.name,
        metric,
        verdict,
        reason,
        baseline=stats.baseline_mean,
        candidate=stats.candidate_mean,
        delta=stats.delta,
        ci_low=stats.ci_low,
        ci_high=stats.ci_high,
        p_value=stats.p_value,
        test=stats.test,
        n=stats.n,
        n_needed=decision.n_needed,
        n_worse=stats.worse,
        n_better=stats.better,
        flips=flips,
        categories=_category_deltas(pairs, by_id, base),
        **common,
    )


def _category_deltas(
    pairs: Sequence[tuple[str, float, float]], by_id: Mapping[str, Record], base: BaselineDataset
) -> tuple[CategoryDelta, ...]:
    per: dict[str, list[tuple[float, float]]] = {}
    for sid, b, c in pairs:
        category = by_id[sid].category or base.samples[sid].category
        if category is not None:
            per.setdefault(category, []).append((b, c))
    out = []
    for category in sorted(per):
        values = per[category]
        n = len(values)
        b_mean = math.fsum(b for b, _ in values) / n
        c_mean = math.fsum(c for _, c in values) / n
        out.append(CategoryDelta(category, n, b_mean, c_mean, math.fsum(c - b for b, c in values) / n))
    return tuple(out)


def _latency_rows(
    label: str, baseline: Baseline, run_info: Mapping[str, Any], max_slowdown: float
) -> list[Row]:
    hw_then = baseline.hardware
    hw_now = run_info.get("hardware") or {}
    same_hw = bool(hw_then.get("device")) and all(
        hw_then.get(k) == hw_now.get(k) for k in ("device", "device_name")
    )
    perf_now = (run_info.get("perf") or {}).get(label) or {}
    rows = []
    # (figure, higher is worse): a slowdown is time per sample going up, whichever figure shows it.
    for figure, higher_is_worse in (("p50_latency_s", True), ("samples_per_s", False)):
        before, now = clean_score(baseline.perf.get(figure)), clean_score(perf_now.get(figure))
        if before is None or now is None or before <= 0 or now <= 0:
            where = "the baseline" if before is None or before <= 0 else "this run"
            rows.append(
                Row(
                    "latency",
                    label,
                    "*",
                    figure,
                    NOT_GATED,
                    f"no {figure} in {where}: latency not gated",
                    baseline=before,
                    candidate=now,
                    limit=max_slowdown,
                )
            )
            continue
        slowdown = now / before - 1 if higher_is_worse else before / now - 1
        common = {"baseline": before, "candidate": now, "delta": slowdown, "limit": max_slowdown}
        if not same_hw:
            reason = (
                f"hardware differs (baseline {_hw(hw_then)}, this run {_hw(hw_now)}): "
                f"{slowdown:+.1%} reported, not gated"
            )
            rows.append(Row("latency", label, "*", figure, NOT_GATED, reason, **common))
        elif slowdown > max_slowdown + _TOL:
            reason = f"{slowdown:.1%} slower than the baseline ({figure}); allowed {max_slowdown:.0%}"
            rows.append(Row("latency", label, "*", figure, FAIL, reason, **common))
        else:
            reason = f"{slowdown:+.1%} vs the baseline ({figure}); allowed {max_slowdown:.0%}"
            rows.append(Row("latency", label, "*", figure, PASS, reason, **common))
    return rows


def _errored(ids: Sequence[str]) -> str:
    return f"{_count(len(ids), 'sample')} errored (counted as wrong), e.g. {ids[0]!r}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _hw(hw: Mapping[str, Any]) -> str:
    return f"{hw.get('device') or '?'} {hw.get('device_name') or '?'!r}"


def _floor_rows(
    by_key: Mapping[tuple[str, str], list[Record]], labels: Sequence[str], settings: GateSettings
) -> list[Row]:
    rows = []
    for key, floor in sorted(settings.min_scores.items()):
        hits = [
            (label, ds)
            for label in labels
            for lab, ds in sorted(by_key)
            if lab == label and (ds == key or _primary_metric(by_key[(lab, ds)]) == key)
        ]
        if not hits:
            present = sorted({ds for _, ds in by_key})
            rows.append(
                Row(
                    "floor",
                    "*",
                    key,
                    "*",
                    FAIL,
                    f"--min-score {key}={floor}: no dataset or metric named {key!r} in this run "
                    f"(datasets: {', '.join(present) or 'none'})",
                    limit=floor,
                )
            )
            continue
        for label, ds in hits:
            recs = by_key[(label, ds)]
            metric = _primary_metric(recs)
            scores = [s for s in (record_score(r, metric) for r in recs) if s is not None]
            errors = sorted(r.sample_id for r in recs if r.error is not None)
            common = {
                "limit": floor,
                "n": len(scores),
                "n_errors": len(errors),
                "error_ids": tuple(errors[:MAX_ERROR_IDS]),
            }
            if not scores:
                rows.append(
                    Row("floor", label, ds, metric, FAIL, f"no scored samples to hold to {floor}", **common)
                )
                continue
            mean = math.fsum(scores) / len(scores)
            verdict = FAIL if mean < floor else PASS
            relation = "below" if verdict == FAIL else "at or above"
            reason = f"mean {mean:.4f} is {relation} the floor {floor} (--min-score)"
            if errors:
                reason += f"; {_errored(errors)}"
            rows.append(Row("floor", label, ds, metric, verdict, reason, candidate=mean, **common))
    return rows


# ---------------------------------------------------------------------------------------- rendering


def _pct(level: float) -> str:
    return f"{level * 100:g} %"


def _num(x: float | None, fmt: str = ".4f") -> str:
    return "-" if x is None else format(x, fmt)


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _cells(row: Row, level: float) -> dict[str, str]:
    if row.check == "latency":
        unit = "s" if "latency" in row.metric else "/s"
        base = "-" if row.baseline is None else f"{row.baseline:.4g}{unit}"
        cand = "-" if row.candidate is None else f"{row.candidate:.4g}{unit}"
        return {
            "baseline": base,
            "candidate": cand,
            "delta": "-" if row.delta is None else f"{row.delta:+.1%} slower",
            "ci": "-",
            "p": "-",
            "limit": "-" if row.limit is None else f"≤ {row.limit:.0%} slower",
        }
    ci = "-" if row.ci_low is None or row.ci_high is None else f"[{row.ci_low:+.4f}, {row.ci_high:+.4f}]"
    if row.check == "floor":
        limit = f"≥ {row.limit:.4f}" if row.limit is not None else "-"
    elif row.limit is not None and row.check == "paired":
        limit = f"Δ ≥ {-row.limit:+.4f}"
    else:
        limit = "-"
    return {
        "baseline": _num(row.baseline),
        "candidate": _num(row.candidate),
        "delta": _num(row.delta, "+.4f"),
        "ci": ci,
        "p": _p(row.p_value),
        "limit": limit,
    }


_COLUMNS = (
    "checkpoint",
    "dataset",
    "metric",
    "n",
    "baseline",
    "candidate",
    "delta",
    "ci",
    "p",
    "limit",
    "verdict",
)


def _headers(level: float) -> dict[str, str]:
    return {
        "checkpoint": "checkpoint",
        "dataset": "dataset",
        "metric": "metric",
        "n": "n",
        "baseline": "baseline",
        "candidate": "candidate",
        "delta": "Δ",
        "ci": f"{_pct(level)} CI of Δ",
        "p": "p",
        "limit": "limit",
        "verdict": "verdict",
    }


def _table_rows(report: GateReport) -> list[dict[str, str]]:
    out = []
    for row in report.rows:
        cells = _cells(row, report.level)
        out.append(
            {
                "checkpoint": row.checkpoint,
                "dataset": row.dataset,
                "metric": row.metric,
                "n": str(row.n) if row.n else "-",
                **cells,
                "verdict": row.verdict.upper() if report._failing(row) else row.verdict,
            }
        )
    return out


def _short(text: str | None, width: int = 60) -> str:
    if text is None:
        return "(none)"
    return repr(text if len(text) <= width else text[: width - 1] + "…")  # repr shows newlines as \n


def render_gate_table(report: GateReport) -> list[str]:
    """Terminal lines: the gate table, the reason of every row that is not a plain pass, the flips."""
    if not report.rows:
        return ["regression gate: nothing to gate (no baseline and no --min-score)"]
    headers = _headers(report.level)
    body = _table_rows(report)
    widths = {c: max(len(headers[c]), *(len(r[c]) for r in body)) for c in _COLUMNS}
    status = "FAILED" if report.failed else "passed"
    source = f" vs {report.baseline_source}" if report.baseline_source else ""
    lines = [f"regression gate ({report.mode}){source}: {status}"]
    lines.append("  ".join(headers[c].ljust(widths[c]) for c in _COLUMNS).rstrip())
    lines.append("  ".join("-" * widths[c] for c in _COLUMNS))
    lines.extend("  ".join(r[c].ljust(widths[c]) for c in _COLUMNS).rstrip() for r in body)
    explained = [r for r in report.rows if r.verdict != PASS or r.n_errors]
    if explained:
        lines.append("")
        lines.extend(f"{r.verdict.upper():>12}  {r.label}: {r.reason}" for r in explained)
    for row in report.rows:
        if report._failing(row) and row.flips:
            lines.append("")
            lines.append(
                f"worse than the baseline in {row.label}: {row.n_worse} samples "
                f"({row.n_better} better); the {len(row.flips)} worst:"
            )
            for flip in row.flips:
                got = (
                    f"error: {_short(flip.candidate_error)}"
                    if flip.candidate_error
                    else _short(flip.candidate_prediction)
                )
                lines.append(
                    f"  {flip.sample_id}  {flip.baseline_score:g} -> {flip.candidate_score:g}  "
                    f"baseline {_short(flip.baseline_prediction)}  now {got}"
                )
    for note in report.notes:
        lines.append(f"note: {note}")
    return lines


def _md(text: Any, width: int | None = None) -> str:
    flat = str(text).replace("\r", " ").replace("\n", " ")
    if width is not None and len(flat) > width:
        flat = flat[: width - 1] + "…"
    return flat.replace("|", "\\|")


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[str]], width: int | None = None) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines.extend("| " + " | ".join(_md(c, width) for c in row) + " |" for row in rows)
    return lines


_VERDICT_MD = {
    PASS: "✅ pass",
    FAIL: "❌ **fail**",
    INCONCLUSIVE: "⚠️ inconclusive",
    NOT_GATED: "➖ not gated",
}


def render_markdown(
    report: GateReport | None, summary_rows: Sequence[Mapping[str, Any]] | None = None
) -> str:
    """report.md: the gate table (GitHub markdown), its reasons and flips, then the run summary."""
    lines = ["# pytest-omnilmm report", ""]
    if report is not None and report.rows:
        status = "❌ FAILED" if report.failed else "✅ passed"
        lines.append(f"## Regression gate: {status}")
        lines.append("")
        source = f"baseline `{report.baseline_source}`, " if report.baseline_source else ""
        lines.append(f"{source}mode `{report.mode}`, {_pct(report.level)} confidence.")
        lines.append("")
        headers = _headers(report.level)
        body = _table_rows(report)
        for cells, row in zip(body, report.rows, strict=True):
            cells["verdict"] = _VERDICT_MD.get(row.verdict, row.verdict)
            if report.inconclusive_fails and row.verdict == INCONCLUSIVE:
                cells["verdict"] += " (fails the gate)"
        lines.extend(_md_table([headers[c] for c in _COLUMNS], ([r[c] for c in _COLUMNS] for r in body)))
        explained = [r for r in report.rows if r.verdict != PASS or r.n_errors]
        if explained:
            lines += ["", "### Why", ""]
            lines.extend(f"- **{r.verdict}** {_md(r.label)}: {_md(r.reason)}" for r in explained)
        for row in report.rows:
            if report._failing(row) and row.flips:
                lines += ["", f"### Worse than the baseline: {_md(row.label)}", ""]
                lines.append(f"{row.n_worse} samples scored lower ({row.n_better} higher); the worst:")
                lines.append("")
                flips = (
                    (
                        f.sample_id,
                        f"{f.baseline_score:g} → {f.candidate_score:g}",
                        f.baseline_prediction or "",
                        f"error: {f.candidate_error}"
                        if f.candidate_error
                        else (f.candidate_prediction or ""),
                    )
                    for f in row.flips
                )
                lines.extend(
                    _md_table(["sample", "score", "baseline prediction", "candidate prediction"], flips, 80)
                )
        if report.notes:
            lines += ["", "### Notes", ""]
            lines.extend(f"- {_md(n)}" for n in report.notes)
        lines.append("")
    elif report is not None:
        lines += ["Regression gate: nothing to gate (no baseline and no --min-score).", ""]
    if summary_rows:
        lines += ["## Results", ""]
        headers = [
            "checkpoint",
            "dataset",
            "metric",
            "n",
            "errors",
            "mean",
            "95 % CI",
            "p50 batch latency",
            "samples/s",
        ]
        body = []
        for r in summary_rows:
            ci = (
                "-"
                if r.get("ci_low") is None or r.get("ci_high") is None
                else f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
            )
            body.append(
                [
                    str(r.get("checkpoint", "")),
                    str(r.get("dataset", "")),
                    str(r.get("metric", "")),
                    str(r.get("n", "")),
                    str(r.get("errors", "")),
                    _num(r.get("mean")),
                    ci,
                    "-" if r.get("p50_latency_s") is None else f"{r['p50_latency_s']:.4g} s",
                    "-" if r.get("samples_per_s") is None else f"{r['samples_per_s']:.4g}",
                ]
            )
        lines.extend(_md_table(headers, body))
        lines.append("")
    return "\n".join(lines)


def append_step_summary(markdown: str) -> bool:
    """Append to the GitHub Actions job summary when ``$GITHUB_STEP_SUMMARY`` is set.

    Returns whether it was written; an unwritable summary file must not break the run itself.
    """
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(markdown.rstrip("\n") + "\n\n")
    except OSError:
        return False
    return True
