"""VQA accuracy (TextVQA / VQAv2 style) and case-insensitive exact match."""

from __future__ import annotations

from collections.abc import Sequence

from ._arith import numpy_mean
from .flavors import DEFAULT_FLAVOR, OMNILMM, VLMEVALKIT, VLMEVALKIT_2025_01, MetricError, check_flavor
from .normalize import PeriodRule, normalize_vqa

VQA_FLAVORS: tuple[str, ...] = (VLMEVALKIT, VLMEVALKIT_2025_01, OMNILMM)
EXACT_MATCH_FLAVORS: tuple[str, ...] = (VLMEVALKIT, VLMEVALKIT_2025_01)

_PERIOD_RULE = {
    VLMEVALKIT: PeriodRule.DIGIT_SAFE,
    VLMEVALKIT_2025_01: PeriodRule.OFFICIAL,
    OMNILMM: PeriodRule.OFFICIAL,
}


def normalize_answer(text: str, flavor: str = DEFAULT_FLAVOR, *, reference: bool = False) -> str:
    """An answer as ``flavor``'s VQA scorer compares it.

    ``reference=True`` normalises a ground truth: OmniLMM skips the newline/tab step for those.
    """
    check_flavor("vqa_accuracy", flavor, VQA_FLAVORS)
    flatten = not (reference and flavor == OMNILMM)
    return normalize_vqa(text, _PERIOD_RULE[flavor], flatten=flatten)


def vqa_accuracy(prediction: str, references: Sequence[str], flavor: str = DEFAULT_FLAVOR) -> float:
    """VQA accuracy: ``min(1, matches / 3)`` averaged over the leave-one-out subsets of the references.

    For each reference, the prediction is compared with the *other* references; with the usual ten
    human answers, three agreeing humans give full credit. A single reference therefore always
    scores 0 (there is no other answer to agree with): use ``exact_match`` for such datasets.
    An empty reference list gives NaN in the VLMEvalKit flavours (``np.mean([])``) and 0 in OmniLMM's.
    """
    check_flavor("vqa_accuracy", flavor, VQA_FLAVORS)
    pred = normalize_answer(prediction, flavor)
    refs = [normalize_answer(r, flavor, reference=True) for r in references]
    per_subset = []
    for i in range(len(refs)):
        agreeing = sum(1 for j, ref in enumerate(refs) if j != i and ref == pred)
        per_subset.append(min(1.0, agreeing / 3))
    if flavor == OMNILMM:
        # OmniLMM averages with Python's own sum and scores an empty list as 0.
        return float(sum(per_subset)) / len(per_subset) if per_subset else 0.0
    return numpy_mean(per_subset)


def exact_match(prediction: str, references: Sequence[str], flavor: str = DEFAULT_FLAVOR) -> float:
    """1.0 when the prediction equals any reference after trimming and lower-casing, else 0.0.

    This is VLMEvalKit's ``accuracy`` method (OCRVQA, GQA); nothing else is normalised, so ``"3."``
    does not match ``"3"``. Both VLMEvalKit flavours define it identically.
    """
    check_flavor("exact_match", flavor, EXACT_MATCH_FLAVORS)
    if not references:
        raise MetricError("exact_match needs at least one reference; this sample has none")
    pred = prediction.strip().lower()
    return 1.0 if any(ref.strip().lower() == pred for ref in references) else 0.0
