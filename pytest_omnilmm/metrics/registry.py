"""Metrics by name: what the plugin and the gate look up, with the dataset-level aggregation each needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .anls import ANLS_FLAVORS, anls
from .chartqa import RELAXED_FLAVORS, relaxed_accuracy
from .flavors import DEFAULT_FLAVOR, MetricError, check_flavor
from .mcq import MCQ_FLAVORS, multiple_choice
from .ocrbench import OCRBENCH_FLAVORS, ocrbench
from .vqa import EXACT_MATCH_FLAVORS, VQA_FLAVORS, exact_match, vqa_accuracy
from .yesno import YES_NO_FLAVORS, canonical_yes_no, extract_yes_no

if TYPE_CHECKING:
    from ..sample import Sample
    from .judge import Judge

AGGREGATES: tuple[str, ...] = ("mean", "mme", "circular", "pope", "hallusion")
NO_REFERENCES = "no references (predictions only): not scorable"


@dataclass(frozen=True)
class Score:
    """One sample's score. ``value`` None means not scorable (e.g. a test split without answers)."""

    value: float | None
    note: str | None = None


Scorer = Callable[[str, "Sample", str], Score]
JudgedScorer = Callable[[str, "Sample", str, "Judge"], Score]


@dataclass(frozen=True)
class Metric:
    """A named per-sample metric, the flavours it implements, and how a dataset's scores combine.

    ``aggregate`` is one of ``AGGREGATES``: ``mean`` (plain average), ``mme`` (accuracy, accuracy+ per
    image, MME score) or ``circular`` (MMBench: a question counts only if all its rotations are right).
    A metric with ``judged`` is graded by a judge model: ``score(..., judge=...)`` uses it; without a
    judge its ``scorer`` says in one line how to give one.
    """

    name: str
    flavors: tuple[str, ...]
    aggregate: str
    description: str
    scorer: Scorer
    judged: JudgedScorer | None = None

    def score(
        self, prediction: str, sample: Sample, flavor: str = DEFAULT_FLAVOR, judge: Judge | None = None
    ) -> Score:
        """``judge`` is only used by judge-graded metrics; the others ignore it."""
        check_flavor(self.name, flavor, self.flavors)
        if self.judged is not None and judge is not None:
            return self.judged(prediction, sample, flavor, judge)
        return self.scorer(prediction, sample, flavor)


def _references_metric(fn: Callable[[str, tuple[str, ...], str], float]) -> Scorer:
    def scorer(prediction: str, sample: Sample, flavor: str) -> Score:
        if not sample.references:
            return Score(None, NO_REFERENCES)
        return Score(fn(prediction, sample.references, flavor))

    return scorer


def _score_mcq(prediction: str, sample: Sample, flavor: str) -> Score:
    if not sample.references:
        return Score(None, NO_REFERENCES)
    result = multiple_choice(prediction, sample.choices, sample.references[0], flavor)
    if not result.parseable:
        return Score(result.value, f"unparseable answer: {result.reason}")
    return Score(result.value, f"extracted {result.letter}")


def _score_yes_no(prediction: str, sample: Sample, flavor: str) -> Score:
    if not sample.references:
        return Score(None, NO_REFERENCES)
    expected = canonical_yes_no(sample.references[0])
    got = extract_yes_no(prediction, flavor)
    if got is None:
        return Score(0.0, "unparseable answer: neither or both of yes/no")
    return Score(1.0 if got == expected else 0.0, f"extracted {got}")


def _score_ocrbench(prediction: str, sample: Sample, flavor: str) -> Score:
    if not sample.references:
        return Score(None, NO_REFERENCES)
    return Score(ocrbench(prediction, sample.references, sample.category, flavor))


def _score_hallusion(prediction: str, sample: Sample, flavor: str) -> Score:
    from .hallusion import INDEX_FORM, hallusion_ids

    if not sample.references:
        return Score(None, NO_REFERENCES)
    if hallusion_ids(sample.id) is None:
        return Score(None, f"index {sample.id!r} is not of HallusionBench's form {INDEX_FORM}: not scorable")
    return _score_yes_no(prediction, sample, flavor)


def _score_mathvista(prediction: str, sample: Sample, flavor: str) -> Score:
    from .mathvista import mathvista_prefetch

    if not sample.references:
        return Score(None, NO_REFERENCES)
    value, note = mathvista_prefetch(prediction, sample, flavor)
    return Score(value, note)


def _needs_judge(metric: str, fallback: str) -> Scorer:
    def scorer(prediction: str, sample: Sample, flavor: str) -> Score:
        from .judge import judge_missing

        if not sample.references:
            return Score(None, NO_REFERENCES)  # nothing to grade, judge or not
        raise judge_missing(metric, fallback)

    return scorer


def _judge_mathvista(prediction: str, sample: Sample, flavor: str, judge: Judge) -> Score:
    from .mathvista import _choices, mathvista_judged

    if not sample.references:
        return Score(None, NO_REFERENCES)
    meta = sample.metadata
    if meta.get("question_type") == "multi_choice" and _choices(meta.get("choices")) is None:
        return Score(0.0, "multi_choice row without a readable 'choices' list (the judge is not asked)")
    judged = mathvista_judged(prediction, sample, flavor, judge)
    return Score(judged.value, judged.note())


def _judge_mmvet(prediction: str, sample: Sample, flavor: str, judge: Judge) -> Score:
    from .mmvet import mmvet_judged

    if not sample.references:
        return Score(None, NO_REFERENCES)
    judged = mmvet_judged(prediction, sample, flavor, judge)
    return Score(judged.value, judged.note())


_METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "vqa_accuracy",
            VQA_FLAVORS,
            "mean",
            "min(1, agreeing/3) over leave-one-out reference subsets, VQA normalisation",
            _references_metric(vqa_accuracy),
        ),
        Metric(
            "anls",
            ANLS_FLAVORS,
            "mean",
            "1 - normalised edit distance to the closest reference, 0 below 0.5",
            _references_metric(anls),
        ),
        Metric(
            "exact_match",
            EXACT_MATCH_FLAVORS,
            "mean",
            "trimmed, lower-cased prediction equals a reference",
            _references_metric(exact_match),
        ),
        Metric(
            "relaxed_accuracy",
            RELAXED_FLAVORS,
            "mean",
            "ChartQA: numbers within 5 %, text by exact match",
            _references_metric(relaxed_accuracy),
        ),
        Metric("mcq", MCQ_FLAVORS, "circular", "multiple choice by option letter or text", _score_mcq),
        Metric("yes_no", YES_NO_FLAVORS, "mean", "yes/no accuracy", _score_yes_no),
        Metric("mme", YES_NO_FLAVORS, "mme", "yes/no accuracy, MME accuracy+ and score", _score_yes_no),
        Metric("pope", YES_NO_FLAVORS, "pope", "POPE: yes/no accuracy, precision, recall, F1", _score_yes_no),
        Metric(
            "hallusion",
            YES_NO_FLAVORS,
            "hallusion",
            "HallusionBench: yes/no aAcc, fAcc (per figure), qAcc (per question)",
            _score_hallusion,
        ),
        Metric(
            "mathvista_prefetch",
            MCQ_FLAVORS,
            "mean",
            "MathVista without a judge: VLMEvalKit's prefetch rules only (not the leaderboard number)",
            _score_mathvista,
        ),
        Metric(
            "mathvista",
            MCQ_FLAVORS,
            "mean",
            "MathVista as VLMEvalKit grades it: prefetch, then a judge model extracts the answer",
            _needs_judge("mathvista", "mathvista_prefetch"),
            judged=_judge_mathvista,
        ),
        Metric(
            "mmvet_gpt",
            MCQ_FLAVORS,  # both VLMEvalKit copies grade MM-Vet alike
            "mean",
            "MM-Vet as VLMEvalKit grades it: a judge model's 0.0-1.0 correctness score",
            _needs_judge("mmvet_gpt", "exact_match"),
            judged=_judge_mmvet,
        ),
        Metric(
            "ocrbench",
            OCRBENCH_FLAVORS,
            "mean",
            "OCRBench containment per category",
            _score_ocrbench,
        ),
    )
}

# The built-in names, for docs and option help; ``metric_names()`` includes registered ones.
METRIC_NAMES: tuple[str, ...] = tuple(_METRICS)
_BUILTIN: frozenset[str] = frozenset(_METRICS)

UserScorer = Callable[[str, "Sample"], "float | Score | None"]


def _wrap_user_scorer(name: str, fn: UserScorer) -> Scorer:
    def scorer(prediction: str, sample: Sample, flavor: str) -> Score:
        out = fn(prediction, sample)
        if out is None or isinstance(out, Score):
            return out if isinstance(out, Score) else Score(None, f"{name}: not scorable")
        if isinstance(out, bool) or not isinstance(out, int | float):
            raise MetricError(
                f"metric {name!r} returned {type(out).__name__}; a scorer returns a float, a Score or None"
            )
        return Score(float(out))

    return scorer


def register_metric(
    name: str,
    fn: UserScorer | None = None,
    *,
    aggregate: str = "mean",
    description: str = "",
    replace: bool = False,
) -> Metric:
    """Add a metric by name, for ``@pytest.mark.dataset(metric=name)`` and ``score(value, metric=name)``.

    ``fn(prediction, sample)`` scores a generated answer: a float in [0, 1], a ``Score``, or None (not
    scorable). Without ``fn`` the metric only takes values you compute yourself (``score(0.73,
    metric=name)``). ``aggregate`` is ``mean`` (bootstrap CI over samples, clustered by group), ``mme``
    or ``circular``. A built-in name cannot be replaced; a registered one only with ``replace=True``.
    """
    if not name or not isinstance(name, str) or "/" in name:
        raise MetricError(f"metric name {name!r}: give a non-empty name without '/'")
    if aggregate not in AGGREGATES:
        raise MetricError(
            f"metric {name!r}: unknown aggregate {aggregate!r}; choose one of {', '.join(AGGREGATES)}"
        )
    if name in _BUILTIN:
        raise MetricError(f"metric {name!r} is built in and cannot be replaced; register another name")
    if name in _METRICS and not replace:
        raise MetricError(f"metric {name!r} is already registered; pass replace=True to replace it")

    def _values_only(prediction: str, sample: Sample, flavor: str) -> Score:
        raise MetricError(
            f"metric {name!r} was registered without a scorer: pass a number, score(0.7, metric={name!r}), "
            f"or register_metric({name!r}, fn)"
        )

    metric = Metric(
        name,
        (DEFAULT_FLAVOR,),
        aggregate,
        description or f"user metric {name}",
        _wrap_user_scorer(name, fn) if fn is not None else _values_only,
    )
    _METRICS[name] = metric
    return metric


def unregister_metric(name: str) -> None:
    """Remove a metric added with ``register_metric`` (tests, notebooks); built-ins stay."""
    if name in _BUILTIN:
        raise MetricError(f"metric {name!r} is built in and cannot be removed")
    _METRICS.pop(name, None)


def metric_names() -> tuple[str, ...]:
    """Every metric name known now: the built-ins, then the registered ones."""
    return tuple(_METRICS)


def get_metric(name: str) -> Metric:
    """The metric called ``name``; an unknown name raises one line listing the known ones."""
    try:
        return _METRICS[name]
    except KeyError:
        raise MetricError(
            f"unknown metric {name!r}; known metrics: {', '.join(_METRICS)} "
            "(add one with pytest_omnilmm.register_metric)"
        ) from None


def judge_graded(name: str | None) -> bool:
    """True for a metric graded by a judge model (``mathvista``, ``mmvet_gpt``); False for any other name."""
    metric = _METRICS.get(name) if name else None
    return metric is not None and metric.judged is not None


def aggregate_kind(name: str) -> str:
    """How values recorded under ``name`` combine over a dataset. A name never registered holds values
    the eval computed itself (``score(0.73, metric="my_metric")``): they aggregate as a plain mean."""
    metric = _METRICS.get(name)
    return "mean" if metric is None else metric.aggregate


def warn_few_references(metric: str, n_refs: int) -> str | None:
    """A warning when ``n_refs`` references per question (pass the dataset's smallest count) are too
    few for ``metric`` to mean anything; None when they are enough."""
    get_metric(metric)
    if n_refs <= 0:
        return f"{metric}: the dataset has no references, so it gives predictions only and no score"
    if metric == "vqa_accuracy" and n_refs == 1:
        return (
            "vqa_accuracy with 1 reference per question is always 0 by definition (each answer is "
            "compared with the *other* references, and there are none); use exact_match"
        )
    if metric == "vqa_accuracy" and n_refs < 4:
        best = (n_refs - 1) / 3
        return (
            f"vqa_accuracy with {n_refs} references per question can reach at most {best:.2f} "
            "(full credit needs 3 other agreeing answers); use exact_match"
        )
    return None
