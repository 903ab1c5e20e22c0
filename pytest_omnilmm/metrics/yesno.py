"""Yes/no questions (MME, POPE, HallusionBench): read yes or no from the answer, then compare.

Extraction follows VLMEvalKit's ``YOrN_Extraction``: lower-case, apply the VQA punctuation step, split
into words; "yes" without "no" is Yes, "no" without "yes" is No, anything else is unknown (scored 0,
flagged). The flavours differ only in that punctuation step's period rule, which matters because it
removes at most 32 periods: in a long answer the 2025.01 copy spends that budget on periods after
digits ("1. 2. 3. ..."), so a final "yes." keeps its period and is no longer the word "yes".
"""

from __future__ import annotations

from .flavors import DEFAULT_FLAVOR, VLMEVALKIT, VLMEVALKIT_2025_01, MetricError, check_flavor
from .normalize import PeriodRule, strip_punctuation

YES_NO_FLAVORS: tuple[str, ...] = (VLMEVALKIT, VLMEVALKIT_2025_01)

_PERIOD_RULE = {VLMEVALKIT: PeriodRule.DIGIT_SAFE, VLMEVALKIT_2025_01: PeriodRule.OFFICIAL}


def extract_yes_no(prediction: str, flavor: str = DEFAULT_FLAVOR) -> str | None:
    """``"Yes"``, ``"No"``, or None when the answer says both or neither."""
    check_flavor("yes_no", flavor, YES_NO_FLAVORS)
    words = strip_punctuation(prediction.lower(), _PERIOD_RULE[flavor]).split()
    has_yes, has_no = "yes" in words, "no" in words
    if has_yes and not has_no:
        return "Yes"
    if has_no and not has_yes:
        return "No"
    return None


def canonical_yes_no(answer: str) -> str:
    """A ground truth as ``"Yes"``/``"No"``; anything else is a data error."""
    value = answer.strip().lower()
    if value not in ("yes", "no"):
        raise MetricError(f"a yes/no ground truth must be 'Yes' or 'No', got {answer!r}")
    return "Yes" if value == "yes" else "No"


def yes_no(prediction: str, answer: str, flavor: str = DEFAULT_FLAVOR) -> float:
    """1.0 when the extracted yes/no equals ``answer``; an unreadable answer scores 0.0.

    Use ``extract_yes_no`` to tell an unreadable answer from a wrong one.
    """
    check_flavor("yes_no", flavor, YES_NO_FLAVORS)
    expected = canonical_yes_no(answer)
    return 1.0 if extract_yes_no(prediction, flavor) == expected else 0.0
