"""Worked examples for the text metrics (VQA accuracy, exact match, ANLS, ChartQA relaxed accuracy).

Every expected value is computed by hand from the published definitions; the arithmetic is in the
comment above it.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from pytest_omnilmm.metrics import (
    FLAVORS,
    MetricError,
    anls,
    exact_match,
    normalize_answer,
    relaxed_accuracy,
    vqa_accuracy,
)
from pytest_omnilmm.metrics._arith import numpy_mean
from pytest_omnilmm.metrics.anls import levenshtein
from pytest_omnilmm.metrics.normalize import PeriodRule, strip_punctuation

VQA_FLAVORS = ("vlmevalkit", "vlmevalkit-2025.01", "omnilmm")
VLMEVALKIT_ONLY = ("vlmevalkit", "vlmevalkit-2025.01")


# --- normalisation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Dog!", "dog"),  # '!' touches no space -> space; 'the' dropped; lower-cased
        ("two", "2"),  # number words up to ten become digits
        ("None", "0"),
        ("eleven", "eleven"),  # ... and no further, in every reference
        ("dont", "don't"),  # contractions get their apostrophe back
        ("1,000", "1000"),  # a comma between digits deletes every symbol
        ("1,000 (approx)", "1000 approx"),  # ... including the brackets elsewhere in the text
        ("a,b", "b"),  # ',' becomes a space, so 'a' is a lone article and goes
        ("x - y", "x y"),  # '-' touches a space -> deleted
        ("x-y", "x y"),  # '-' touches no space -> space
        ("3.5", "3.5"),  # a period before a digit always stays
        ("end.", "end"),
        ("an apple", "apple"),
    ],
)
def test_normalisation_worked_examples(text: str, expected: str) -> None:
    for flavor in VQA_FLAVORS:
        assert normalize_answer(text, flavor) == expected


def test_period_after_a_digit_depends_on_the_rule() -> None:
    # "3." : the official (misspelt) expression removes a period not followed by a digit;
    # current VLMEvalKit also requires no digit before it, so the period stays.
    assert strip_punctuation("3.", PeriodRule.OFFICIAL) == "3"
    assert strip_punctuation("3.", PeriodRule.DIGIT_SAFE) == "3."


def test_at_most_32_periods_are_removed() -> None:
    # re.UNICODE (32) lands in Pattern.sub's count: the 33rd and later periods survive.
    text = "x." * 40
    out = strip_punctuation(text, PeriodRule.OFFICIAL)
    assert out.count(".") == 40 - 32


# --- VQA accuracy --------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", VQA_FLAVORS)
def test_vqa_accuracy_ten_answers(flavor: str) -> None:
    refs = ["2", "two", "3", "3", "3", "3", "3", "3", "3", "3"]
    # normalised: two "2", eight "3". For each "2" left out, 1 other "2" agrees: min(1, 1/3) = 1/3;
    # for each "3" left out, both "2" agree: 2/3. Mean = (2*(1/3) + 8*(2/3)) / 10 = 18/30 = 0.6.
    assert vqa_accuracy("2", refs, flavor) == pytest.approx(0.6, abs=1e-15)


@pytest.mark.parametrize("flavor", VQA_FLAVORS)
def test_vqa_accuracy_full_credit_with_three_agreeing(flavor: str) -> None:
    refs = ["it is dog"] * 4 + ["cat"] * 6
    # "It is the Dog!" -> "it is dog". Leaving out a matching ref leaves 3 agreeing: 1; leaving out a
    # "cat" leaves 4: min(1, 4/3) = 1. Mean 1.0.
    assert vqa_accuracy("It is the Dog!", refs, flavor) == 1.0


@pytest.mark.parametrize("flavor", VQA_FLAVORS)
def test_vqa_accuracy_duplicates_and_misses(flavor: str) -> None:
    # Ten identical answers: each leave-one-out subset has 9 agreeing -> 1. A wrong answer: 0.
    assert vqa_accuracy("yes", ["yes"] * 10, flavor) == 1.0
    assert vqa_accuracy("no", ["yes"] * 10, flavor) == 0.0


@pytest.mark.parametrize("flavor", VQA_FLAVORS)
def test_vqa_accuracy_edge_cases(flavor: str) -> None:
    # Empty prediction matches nothing.
    assert vqa_accuracy("", ["yes"] * 10, flavor) == 0.0
    # Numbers as words on either side; beyond ten they are not mapped.
    assert vqa_accuracy("two", ["2"] * 4, flavor) == 1.0
    assert vqa_accuracy("eleven", ["11"] * 4, flavor) == 0.0
    # Commas in numbers: "1,000" -> "1000" (4 refs: each subset has 3 agreeing -> 1).
    assert vqa_accuracy("1,000", ["1000"] * 4, flavor) == 1.0
    # Unicode is lower-cased, not stripped of accents.
    assert vqa_accuracy("Café", ["café"] * 4, flavor) == 1.0
    assert vqa_accuracy("Cafe", ["café"] * 4, flavor) == 0.0
    # Contractions: "dont know" -> "don't know".
    assert vqa_accuracy("dont know", ["don't know"] * 4, flavor) == 1.0


@pytest.mark.parametrize("flavor", VQA_FLAVORS)
def test_vqa_accuracy_single_reference_is_always_zero(flavor: str) -> None:
    # Leave-one-out leaves no other answer to agree with.
    assert vqa_accuracy("yes", ["yes"], flavor) == 0.0


def test_vqa_average_is_numpy_mean_bit_for_bit() -> None:
    # VLMEvalKit averages with np.mean (pairwise summation); our pure-Python sum must agree exactly.
    rng = random.Random(7)
    for _ in range(500):
        n = rng.randint(0, 300)
        values = [rng.choice([0.0, 1 / 3, 2 / 3, 1.0, rng.random()]) for _ in range(n)]
        expected = float(np.mean(np.array(values))) if values else math.nan
        got = numpy_mean(values)
        assert got == expected or (math.isnan(got) and math.isnan(expected))


# --- exact match ---------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", VLMEVALKIT_ONLY)
def test_exact_match(flavor: str) -> None:
    assert exact_match("  Harry Potter ", ["harry potter"], flavor) == 1.0  # trimmed, lower-cased
    assert exact_match("3.", ["3"], flavor) == 0.0  # nothing else is normalised
    assert exact_match("b", ["a", "B"], flavor) == 1.0  # any reference
    assert exact_match("", ["a"], flavor) == 0.0
    with pytest.raises(MetricError, match="at least one reference"):
        exact_match("a", [], flavor)


def test_exact_match_has_no_omnilmm_flavour() -> None:
    with pytest.raises(MetricError, match=r"supports: vlmevalkit, vlmevalkit-2025\.01"):
        exact_match("a", ["a"], "omnilmm")


# --- ANLS ----------------------------------------------------------------------------------------


def test_levenshtein() -> None:
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert levenshtein("abc", "abc") == 0
    assert levenshtein("flaw", "lawn") == 2


@pytest.mark.parametrize("flavor", VQA_FLAVORS)
def test_anls_worked_examples(flavor: str) -> None:
    # "helo world" vs "hello world": distance 1, longer length 11 -> 1 - 1/11 = 10/11.
    assert anls("helo world", ["hello world"], flavor) == pytest.approx(10 / 11)
    # Case and surrounding/inner whitespace are normalised before the distance: identical -> 1.
    assert anls("Hello   World", ["hello world"], flavor) == 1.0
    # The closest reference counts: "abcd" vs ["abxy", "abcx"] -> distances 2 and 1 of 4 -> 3/4.
    assert anls("abcd", ["abxy", "abcx"], flavor) == pytest.approx(0.75)
    # Exactly at the threshold is kept: 2/4 -> similarity 0.5, not < 0.5.
    assert anls("abxy", ["abcd"], flavor) == 0.5
    # Below it scores 0: "abc" vs "xyz" -> 1 - 3/3 = 0.
    assert anls("abc", ["xyz"], flavor) == 0.0
    # Empty prediction against a non-empty reference: distance = length -> 0.
    assert anls("", ["abc"], flavor) == 0.0
    # Both empty: length 0 -> distance taken as 0 -> 1.
    assert anls("", [""], flavor) == 1.0


def test_anls_threshold_is_a_parameter() -> None:
    # 1 - 2/4 = 0.5 is dropped under a 0.6 threshold.
    assert anls("abxy", ["abcd"], threshold=0.6) == 0.0


def test_anls_needs_references() -> None:
    with pytest.raises(MetricError, match="at least one reference"):
        anls("a", [])


# --- ChartQA relaxed accuracy --------------------------------------------------------------------


@pytest.mark.parametrize("flavor", VLMEVALKIT_ONLY)
def test_relaxed_accuracy_worked_examples(flavor: str) -> None:
    # |12.5 - 12| / 12 = 0.0417 <= 0.05 (and / 12.5 = 0.04 in the vendored copy) -> pass.
    assert relaxed_accuracy("12.5", ["12"], flavor) == 1.0
    # |13 - 12| / 12 = 0.083 (or / 13 = 0.077) -> fail.
    assert relaxed_accuracy("13", ["12"], flavor) == 0.0
    # A trailing % means hundredths: 50% == 0.5.
    assert relaxed_accuracy("50%", ["0.5"], flavor) == 1.0
    # Text compares lower-cased, after stripping the prediction.
    assert relaxed_accuracy("  Yes ", ["yes"], flavor) == 1.0
    # Thousands separators are not numbers: "1,000" vs "1000" compares as strings -> 0.
    assert relaxed_accuracy("1,000", ["1000"], flavor) == 0.0
    # Any reference may match.
    assert relaxed_accuracy("7", ["seven", "7"], flavor) == 1.0
    assert relaxed_accuracy("", ["100"], flavor) == 0.0


def test_relaxed_accuracy_keeps_float_artefacts() -> None:
    # Current VLMEvalKit divides by the reference: |1.05 - 1| / 1 = 0.050000000000000044 > 0.05 -> fail,
    # although it "is" 5 %, while |105 - 100| / 100 = 0.05 exactly -> pass.
    assert relaxed_accuracy("1.05", ["1"], "vlmevalkit") == 0.0
    assert relaxed_accuracy("105", ["100"], "vlmevalkit") == 1.0
    # The vendored copy divides by the prediction, so the same artefact shows with the roles swapped.
    assert relaxed_accuracy("1", ["1.05"], "vlmevalkit-2025.01") == 0.0
    assert relaxed_accuracy("100", ["105"], "vlmevalkit-2025.01") == 1.0


@pytest.mark.parametrize("flavor", VLMEVALKIT_ONLY)
def test_relaxed_accuracy_zero_target_compares_strings(flavor: str) -> None:
    # A zero divisor switches to string comparison: "0" == "0" passes, "0.0" != "0" fails.
    assert relaxed_accuracy("0", ["0"], flavor) == 1.0
    assert relaxed_accuracy("0.0", ["0"], flavor) == 0.0


def test_every_flavour_name_is_known() -> None:
    assert set(FLAVORS) == {"vlmevalkit", "vlmevalkit-2025.01", "omnilmm"}
