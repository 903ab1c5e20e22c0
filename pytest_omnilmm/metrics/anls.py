"""ANLS: average normalised Levenshtein similarity (DocVQA, InfographicVQA)."""

from __future__ import annotations

from collections.abc import Sequence

from .flavors import DEFAULT_FLAVOR, OMNILMM, VLMEVALKIT, VLMEVALKIT_2025_01, MetricError, check_flavor

ANLS_FLAVORS: tuple[str, ...] = (VLMEVALKIT, VLMEVALKIT_2025_01, OMNILMM)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions, each costing 1), by code point."""
    if len(a) > len(b):
        a, b = b, a
    previous = list(range(len(a) + 1))
    for i, cb in enumerate(b, start=1):
        current = [i]
        for j, ca in enumerate(a, start=1):
            if ca == cb:
                current.append(previous[j - 1])
            else:
                current.append(1 + min(previous[j - 1], previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def anls_text(text: str) -> str:
    """The comparison form all references use: trimmed, lower-cased, runs of whitespace made one space."""
    return " ".join(text.strip().lower().split())


def normalized_distance(reference: str, prediction: str, flavor: str = DEFAULT_FLAVOR) -> float:
    """Edit distance of the comparison forms divided by a length; 0.0 when that length is 0.

    The distance is always taken between the normalised strings. The divisor differs: VLMEvalKit's
    ``anls_compute`` (``vlmeval/dataset/utils/vqa_eval.py``; current and the copy vendored in MiniCPM-V)
    divides by the longer *raw* string measured after ``str.upper()`` (so extra spaces, or characters
    such as ``ß`` that upper-case to two, enlarge it); OmniLMM divides by the longer *normalised* string.
    """
    check_flavor("anls", flavor, ANLS_FLAVORS)
    ref_n, pred_n = anls_text(reference), anls_text(prediction)
    distance = levenshtein(ref_n, pred_n)
    if flavor in (VLMEVALKIT, VLMEVALKIT_2025_01):
        length = max(len(reference.upper()), len(prediction.upper()))
    else:
        length = max(len(ref_n), len(pred_n))
    return 0.0 if length == 0 else distance / length


def anls(
    prediction: str, references: Sequence[str], flavor: str = DEFAULT_FLAVOR, threshold: float = 0.5
) -> float:
    """``1 - min(normalised distance)`` over the references, or 0 when that similarity is below ``threshold``.

    A similarity exactly at the threshold is kept (every reference tests ``< threshold``).
    """
    check_flavor("anls", flavor, ANLS_FLAVORS)
    if not references:
        raise MetricError("anls needs at least one reference; this sample has none")
    similarity = 1 - min(normalized_distance(ref, prediction, flavor) for ref in references)
    return 0.0 if similarity < threshold else similarity
