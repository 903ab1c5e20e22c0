"""OCRBench: an answer is right when it contains one of the references, with a rule per category."""

from __future__ import annotations

from collections.abc import Sequence

from .flavors import DEFAULT_FLAVOR, VLMEVALKIT, VLMEVALKIT_2025_01, MetricError, check_flavor

OCRBENCH_FLAVORS: tuple[str, ...] = (VLMEVALKIT, VLMEVALKIT_2025_01)

HANDWRITTEN_MATH = "Handwritten Mathematical Expression Recognition"

# The ten categories of OCRBench v1 and the five groups its final score reports (each counts 1 point).
CATEGORIES: tuple[str, ...] = (
    "Regular Text Recognition",
    "Irregular Text Recognition",
    "Artistic Text Recognition",
    "Handwriting Recognition",
    "Digit String Recognition",
    "Non-Semantic Text Recognition",
    "Scene Text-centric VQA",
    "Doc-oriented VQA",
    "Key Information Extraction",
    HANDWRITTEN_MATH,
)


# The six categories VLMEvalKit sums into "Text Recognition".
TEXT_RECOGNITION: tuple[str, ...] = CATEGORIES[:6]


def _math_form(text: str) -> str:
    # LaTeX answers are compared with every space removed and case kept (\Sigma is not \sigma).
    return text.strip().replace("\n", " ").replace(" ", "")


def _text_form(text: str) -> str:
    return text.lower().strip().replace("\n", " ")


def ocrbench(
    prediction: str, references: Sequence[str], category: str | None, flavor: str = DEFAULT_FLAVOR
) -> float:
    """1.0 when a reference occurs inside the prediction, else 0.0.

    Handwritten mathematical expressions: both sides lose all spaces and newlines, case-sensitive.
    Every other category: both sides lower-cased, trimmed, newlines made spaces (inner spaces kept).
    An empty reference is contained in every prediction, as in VLMEvalKit. Both VLMEvalKit flavours
    define this identically.
    """
    check_flavor("ocrbench", flavor, OCRBENCH_FLAVORS)
    if not references:
        raise MetricError("ocrbench needs at least one reference; this sample has none")
    form = _math_form if category == HANDWRITTEN_MATH else _text_form
    pred = form(prediction)
    return 1.0 if any(form(ref) in pred for ref in references) else 0.0
