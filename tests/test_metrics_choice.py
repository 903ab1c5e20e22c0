"""Worked examples for multiple choice, yes/no and OCRBench."""

from __future__ import annotations

import pytest

from pytest_omnilmm.metrics import (
    ChoiceScore,
    MetricError,
    extract_choice,
    extract_yes_no,
    multiple_choice,
    ocrbench,
    yes_no,
)
from pytest_omnilmm.metrics.ocrbench import HANDWRITTEN_MATH

BOTH = ("vlmevalkit", "vlmevalkit-2025.01")
ANIMALS = (("A", "cat"), ("B", "dog"), ("C", "bird"))


@pytest.mark.parametrize("flavor", BOTH)
@pytest.mark.parametrize("prediction", ["B", "(B)", "B.", "B. dog", "[B]", "Answer: B", "**B**", "dog"])
def test_mcq_reads_the_usual_answer_shapes(prediction: str, flavor: str) -> None:
    # Letters: separators .()[],:;!*# become spaces, leaving the lone word "B" near the end.
    # "dog": no option letter; the only option text it contains is B's.
    assert multiple_choice(prediction, ANIMALS, "B", flavor) == ChoiceScore(1.0, "B", True)


@pytest.mark.parametrize("flavor", BOTH)
def test_mcq_wrong_ambiguous_and_unreadable(flavor: str) -> None:
    # A readable wrong pick scores 0 but is parseable.
    assert multiple_choice("C", ANIMALS, "B", flavor) == ChoiceScore(0.0, "C", True)
    # Two option letters and no rule to choose: the letter rule gives up; no option text -> None.
    assert extract_choice("B or C", ANIMALS, flavor) is None
    # Two option texts: ambiguous.
    assert extract_choice("cat or dog", ANIMALS, flavor) is None
    # Empty answer.
    empty = multiple_choice("", ANIMALS, "B", flavor)
    assert (empty.value, empty.letter, empty.parseable) == (0.0, None, False)
    # Lower-case letters are not option letters.
    assert extract_choice("b", ANIMALS, flavor) is None


@pytest.mark.parametrize("flavor", BOTH)
def test_mcq_refusals(flavor: str) -> None:
    refused = multiple_choice("Cannot determine the answer from the image.", ANIMALS, "B", flavor)
    assert (refused.value, refused.letter, refused.parseable) == (0.0, None, False)
    assert refused.reason is not None and "refuses" in refused.reason
    # A lone "Z" with no option letter is the "none of these" answer.
    assert extract_choice("Z", ANIMALS, flavor) == "Z"


@pytest.mark.parametrize("flavor", BOTH)
def test_mcq_unicode_option_text(flavor: str) -> None:
    choices = (("A", "Café"), ("B", "Thé"))
    # Lower-cased containment: "thé" occurs, "café" does not.
    assert multiple_choice("thé", choices, "B", flavor).letter == "B"


def test_mcq_rejects_bad_data() -> None:
    with pytest.raises(MetricError, match="no choices"):
        multiple_choice("A", (), "A")
    with pytest.raises(MetricError, match="not one of the option letters A, B, C"):
        multiple_choice("A", ANIMALS, "E")
    with pytest.raises(MetricError, match="single capital letters"):
        multiple_choice("A", (("a", "x"), ("B", "y")), "B")


def test_mcq_has_no_omnilmm_flavour() -> None:
    with pytest.raises(MetricError, match="mcq has no 'omnilmm' flavour"):
        multiple_choice("A", ANIMALS, "A", "omnilmm")


@pytest.mark.parametrize("flavor", BOTH)
@pytest.mark.parametrize(
    ("prediction", "extracted"),
    [
        ("Yes", "Yes"),
        ("yes.", "Yes"),  # the period goes in the punctuation step
        ("No, there is no dog.", "No"),
        ("Yes! It's a dog", "Yes"),
        ("Yes and no", None),  # both words
        ("Maybe", None),  # neither
        ("", None),
        ("Not really", None),  # "not" is not "no"
        ("YES", "Yes"),  # lower-cased first
        ("yes/no", None),  # '/' becomes a space: both words
    ],
)
def test_yes_no_extraction(prediction: str, extracted: str | None, flavor: str) -> None:
    assert extract_yes_no(prediction, flavor) == extracted


@pytest.mark.parametrize("flavor", BOTH)
def test_yes_no_scoring(flavor: str) -> None:
    assert yes_no("Yes, it is.", "Yes", flavor) == 1.0
    assert yes_no("Yes, it is.", "No", flavor) == 0.0
    assert yes_no("I cannot tell", "No", flavor) == 0.0  # unreadable counts wrong
    assert yes_no("no", "NO", flavor) == 1.0  # ground truth case does not matter
    with pytest.raises(MetricError, match="must be 'Yes' or 'No'"):
        yes_no("yes", "maybe", flavor)


@pytest.mark.parametrize("flavor", BOTH)
def test_ocrbench_text_categories(flavor: str) -> None:
    category = "Scene Text-centric VQA"
    # Lower-cased containment: "hello world" is inside "the sign says hello world.".
    assert ocrbench("The sign says HELLO WORLD.", ["Hello World"], category, flavor) == 1.0
    # Inner spaces matter outside the math category.
    assert ocrbench("helloworld", ["hello world"], category, flavor) == 0.0
    # A newline in the prediction becomes a space.
    assert ocrbench("hello\nworld", ["hello world"], category, flavor) == 1.0
    # Any reference; unicode lower-cased.
    assert ocrbench("CAFÉ au lait", ["tea", "café"], category, flavor) == 1.0
    assert ocrbench("", ["x"], category, flavor) == 0.0
    # An empty reference is contained in everything (as in VLMEvalKit).
    assert ocrbench("anything", [""], category, flavor) == 1.0
    # No category: the text rule.
    assert ocrbench("ABC", ["abc"], None, flavor) == 1.0


@pytest.mark.parametrize("flavor", BOTH)
def test_ocrbench_handwritten_math(flavor: str) -> None:
    # All spaces and newlines removed on both sides: "\frac{1}{2}" is inside "$\frac{1}{2}$".
    assert ocrbench("$ \\frac { 1 }\n{ 2 } $", ["\\frac{1}{2}"], HANDWRITTEN_MATH, flavor) == 1.0
    # Case-sensitive: \Sigma is not \sigma (the text rule would lower-case and accept it).
    assert ocrbench("\\sigma", ["\\Sigma"], HANDWRITTEN_MATH, flavor) == 0.0
    assert ocrbench("\\sigma", ["\\Sigma"], "Regular Text Recognition", flavor) == 1.0


def test_ocrbench_needs_references_and_a_known_flavour() -> None:
    with pytest.raises(MetricError, match="at least one reference"):
        ocrbench("x", [], None)
    with pytest.raises(MetricError, match=r"supports: vlmevalkit, vlmevalkit-2025\.01"):
        ocrbench("x", ["x"], None, "omnilmm")
