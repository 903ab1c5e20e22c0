"""Where the references disagree (issue 9): each test scores one input under two flavours."""

from __future__ import annotations

import math

import pytest

from pytest_omnilmm.metrics import (
    anls,
    extract_yes_no,
    get_metric,
    multiple_choice,
    relaxed_accuracy,
    vqa_accuracy,
    warn_few_references,
    yes_no,
)
from pytest_omnilmm.sample import Sample, Text

CURRENT, VENDORED, OMNILMM = "vlmevalkit", "vlmevalkit-2025.01", "omnilmm"


def test_vqa_period_after_a_digit() -> None:
    refs = ["3"] * 10
    # Official rule (and OmniLMM, and the vendored copy) strips the period: "3." == "3", 9 agree -> 1.
    assert vqa_accuracy("3.", refs, VENDORED) == 1.0
    assert vqa_accuracy("3.", refs, OMNILMM) == 1.0
    # Current VLMEvalKit keeps a period next to a digit: "3." != "3" -> 0.
    assert vqa_accuracy("3.", refs, CURRENT) == 0.0


def test_vqa_empty_answer_list() -> None:
    # VLMEvalKit: np.mean([]) -> NaN. OmniLMM: "if gtAcc else 0".
    assert math.isnan(vqa_accuracy("yes", [], CURRENT))
    assert math.isnan(vqa_accuracy("yes", [], VENDORED))
    assert vqa_accuracy("yes", [], OMNILMM) == 0.0


@pytest.mark.parametrize("whitespace", ["\n", "\t"])
def test_vqa_newline_or_tab_next_to_punctuation_in_a_ground_truth(whitespace: str) -> None:
    refs = [f"e-mail{whitespace}-"] * 4
    # VLMEvalKit turns the newline/tab into a space first: "e-mail -" has " -", so every '-' is
    # deleted -> "email"; 3 others agree on each leave-one-out subset -> 1.
    assert vqa_accuracy("email", refs, CURRENT) == 1.0
    assert vqa_accuracy("email", refs, VENDORED) == 1.0
    # OmniLMM normalises ground truths without that step: no '-' touches a *space*, so each '-'
    # becomes a space -> "e mail" != "email" -> 0.
    assert vqa_accuracy("email", refs, OMNILMM) == 0.0


def test_vqa_single_ground_truth_is_zero_in_every_flavour_and_warned() -> None:
    for flavor in (CURRENT, VENDORED, OMNILMM):
        assert vqa_accuracy("yes", ["yes"], flavor) == 0.0
    warning = warn_few_references("vqa_accuracy", 1)
    assert warning is not None and "use exact_match" in warning and "always 0" in warning
    # Two or three references cap the score below 1: (n - 1) / 3.
    assert "at most 0.33" in (warn_few_references("vqa_accuracy", 2) or "")
    assert "at most 0.67" in (warn_few_references("vqa_accuracy", 3) or "")
    assert warn_few_references("vqa_accuracy", 10) is None
    assert warn_few_references("anls", 1) is None
    assert "no references" in (warn_few_references("anls", 0) or "")


def test_anls_extra_whitespace_crosses_the_threshold() -> None:
    # Normalised: "xbz" vs "abc" -> distance 2.
    # OmniLMM divides by the normalised length 3: 1 - 2/3 = 0.33 < 0.5 -> 0.
    assert anls("  xbz  ", ["abc"], OMNILMM) == 0.0
    # VLMEvalKit's anls_compute (current and vendored) divides by the raw length 7: 1 - 2/7 = 5/7 -> kept.
    assert anls("  xbz  ", ["abc"], CURRENT) == pytest.approx(5 / 7)
    assert anls("  xbz  ", ["abc"], VENDORED) == pytest.approx(5 / 7)


def test_anls_vlmevalkit_divides_by_the_raw_lengths() -> None:
    # The worked examples: distance 2 ("abxy" vs "abcd") over the raw, upper-cased lengths.
    assert anls("abxy ", ["abcd"], CURRENT) == pytest.approx(1 - 2 / 5)  # 0.6 (normalised length: 0.5)
    assert anls("abxy\n\n", ["abcd"], CURRENT) == pytest.approx(1 - 2 / 6)  # 0.667
    assert anls("abxy ", ["abcd"], OMNILMM) == pytest.approx(0.5)


def test_anls_case_mapping_that_changes_length() -> None:
    # "ßß" vs "ss": distance 2. Normalised length 2 -> 1 - 2/2 = 0 (OmniLMM).
    assert anls("ss", ["ßß"], OMNILMM) == 0.0
    # Raw length after upper(): "ßß".upper() == "SSSS" (4) -> 1 - 2/4 = 0.5, at the threshold: kept.
    assert anls("ss", ["ßß"], CURRENT) == 0.5
    assert anls("ss", ["ßß"], VENDORED) == 0.5
    # The other way round: "İ".lower() is two code points, so the normalised form is *longer*.
    # "i̇i̇" (4) vs "ii": distance 2 -> 1 - 2/4 = 0.5 kept; raw upper lengths 2 -> 1 - 2/2 = 0.
    assert anls("ii", ["İİ"], CURRENT) == 0.0
    assert anls("ii", ["İİ"], OMNILMM) == 0.5
    assert anls("ii", ["İİ"], VENDORED) == 0.0
    # "ﬁ" (one ligature) upper-cases to "FI": the raw length grows by one.
    # "ﬁx" vs "fix": distance 2 (ﬁ->f, insert i); normalised length 3 -> 1/3 -> 0;
    # raw: max(len("FIX"), len("FIX")) = 3 as well -> 0. Both agree here: the divisor is the same.
    assert anls("fix", ["ﬁx"], CURRENT) == anls("fix", ["ﬁx"], VENDORED) == 0.0


def test_chartqa_divides_by_target_or_prediction() -> None:
    # Current: |95 - 100| / 100 = 0.05 -> pass. Vendored: |100 - 95| / 95 = 0.0526 -> fail.
    assert relaxed_accuracy("95", ["100"], CURRENT) == 1.0
    assert relaxed_accuracy("95", ["100"], VENDORED) == 0.0
    # And the mirror case: 105 vs 100 passes in both (5/100 and 5/105).
    assert relaxed_accuracy("105", ["100"], CURRENT) == 1.0
    assert relaxed_accuracy("105", ["100"], VENDORED) == 1.0


def test_chartqa_float_artefacts_in_both() -> None:
    # Both keep binary floating point: with a divisor of 1, a 5 % error computes as
    # 0.050000000000000044 and fails; with a divisor of 100 it is 0.05 exactly and passes.
    # Current divides by the reference ...
    assert relaxed_accuracy("1.05", ["1"], CURRENT) == 0.0
    assert relaxed_accuracy("105", ["100"], CURRENT) == 1.0
    # ... the vendored copy by the prediction, so the same input shows it with the roles swapped:
    assert relaxed_accuracy("1.05", ["1"], VENDORED) == 1.0  # |1 - 1.05| / 1.05 = 0.048
    assert relaxed_accuracy("1", ["1.05"], VENDORED) == 0.0  # |1.05 - 1| / 1 = 0.050000000000000044
    assert relaxed_accuracy("100", ["105"], VENDORED) == 1.0  # |105 - 100| / 100 = 0.05
    assert relaxed_accuracy("1", ["1.05"], CURRENT) == 1.0  # |1 - 1.05| / 1.05 = 0.048


def test_chartqa_zero_falls_back_to_strings_on_the_divisor_side() -> None:
    # Target 0: current compares strings ("0.0" != "0") -> 0; the vendored copy divides by the
    # prediction 0.0 -> also strings -> 0.
    assert relaxed_accuracy("0.0", ["0"], CURRENT) == 0.0
    assert relaxed_accuracy("0.0", ["0"], VENDORED) == 0.0
    # Prediction 0, target 0.01: current |0 - 0.01| / 0.01 = 1 -> 0; vendored: strings "0" vs "0.01" -> 0.
    assert relaxed_accuracy("0", ["0.01"], CURRENT) == 0.0
    assert relaxed_accuracy("0", ["0.01"], VENDORED) == 0.0
    # Prediction 0.01, target 0: current strings -> 0; vendored |0 - 0.01| / 0.01 = 1 -> 0.
    assert relaxed_accuracy("0.01", ["0"], CURRENT) == 0.0


CHOICES = (("A", "red"), ("B", "green"), ("C", "blue"), ("D", "yellow"))


def test_mcq_letter_must_be_among_the_last_words() -> None:
    answer = "B is correct because the leaves in the picture are that colour"
    # Vendored: exactly one option letter (B) among the words -> B.
    assert multiple_choice(answer, CHOICES, "B", VENDORED).letter == "B"
    # Current: B is word 0 of 12, not after index 12 - 5 = 7 -> not taken; no option text either.
    current = multiple_choice(answer, CHOICES, "B", CURRENT)
    assert (current.value, current.letter, current.parseable) == (0.0, None, False)
    # Near the end it is taken by both.
    late = "Looking at the leaves the answer must be B"
    assert multiple_choice(late, CHOICES, "B", CURRENT).letter == "B"
    assert multiple_choice(late, CHOICES, "B", VENDORED).letter == "B"


def test_mcq_answer_is_rule() -> None:
    answer = "A and B are wrong, so the correct answer is **C**"
    # Three option letters among the words: the letter rule gives up in both.
    # Current then applies "correct answer is **X**" -> C.
    assert multiple_choice(answer, CHOICES, "C", CURRENT).value == 1.0
    # Vendored has no such rule, and no option text ("blue") occurs -> unparseable.
    vendored = multiple_choice(answer, CHOICES, "C", VENDORED)
    assert (vendored.value, vendored.parseable) == (0.0, False)


def test_mcq_answer_is_rule_is_case_insensitive_like_upstream() -> None:
    # Upstream's pattern ignores case, so "the answer is a dog" reads the article "a" as option A.
    # The vendored copy finds no capital option letter and falls back to the option text "dog".
    choices = (("A", "cat"), ("B", "dog"))
    assert multiple_choice("The answer is a dog", choices, "B", CURRENT).letter == "A"
    assert multiple_choice("The answer is a dog", choices, "B", VENDORED).letter == "B"


def test_mcq_option_text_skipped_for_long_answers() -> None:
    answer = "I am fairly sure that this one is green."
    # Letter rule: no capital option letter as a word ("I" is not an option).
    # Vendored: "green" occurs and no other option text -> B.
    assert multiple_choice(answer, CHOICES, "B", VENDORED).letter == "B"
    # Current: 40 characters > 2 * (3 + 5 + 4 + 6) = 36 -> text matching skipped -> unparseable.
    assert multiple_choice(answer, CHOICES, "B", CURRENT).parseable is False
    # A short one is matched by both.
    assert multiple_choice("It is green.", CHOICES, "B", CURRENT).letter == "B"


def _numbered(n: int) -> str:
    return " ".join(f"{i}." for i in range(1, n + 1))


def test_mme_punctuation_budget_differs_for_long_answers() -> None:
    prediction = f"Checking the list {_numbered(33)} so the answer is yes."
    # 34 periods. Vendored (official rule): all 34 qualify, only the first 32 go, so "33." and
    # "yes." keep their periods -> the word "yes" is absent -> unknown -> 0.
    assert extract_yes_no(prediction, VENDORED) is None
    assert yes_no(prediction, "Yes", VENDORED) == 0.0
    # Current: periods after digits do not qualify, so the budget reaches "yes." -> Yes -> 1.
    assert extract_yes_no(prediction, CURRENT) == "Yes"
    assert yes_no(prediction, "Yes", CURRENT) == 1.0
    # The same through the registry's MME metric.
    sample = Sample(id="1", dataset="mme", parts=(Text("Is it?"),), references=("Yes",), group="img1")
    mme = get_metric("mme")
    assert mme.score(prediction, sample, CURRENT).value == 1.0
    assert mme.score(prediction, sample, VENDORED).value == 0.0


def test_mme_short_answers_agree() -> None:
    for flavor in (CURRENT, VENDORED):
        assert yes_no("Yes, it is.", "Yes", flavor) == 1.0


def test_number_words_beyond_ten_are_not_mapped_anywhere() -> None:
    for flavor in (CURRENT, VENDORED, OMNILMM):
        assert vqa_accuracy("twelve", ["12"] * 4, flavor) == 0.0
        assert vqa_accuracy("ten", ["10"] * 4, flavor) == 1.0
