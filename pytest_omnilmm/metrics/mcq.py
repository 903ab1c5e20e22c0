"""Multiple choice: find which option an answer picks, the way VLMEvalKit's exact matching does.

Extraction (VLMEvalKit ``can_infer``) tries the option letter first, then the option text:

* letter: the answer is split into words after turning ``.()[],:;!*#{}`` into spaces; if exactly one
  option letter occurs as a word, that is the pick. A known refusal phrase, or a lone ``Z`` with no
  option letter, means "refused".
* text: if exactly one option's text occurs (case-insensitively) inside the answer, that is the pick.

Upstream changed the rules after the copy vendored in MiniCPM-V (``vlmevalkit-2025.01``):

* the letter only counts when it is among the last four words (``"A is wrong, the answer is B"``
  picks B; ``"B. It is the red one on the left"`` no longer picks B by letter);
* when the letter rule finds nothing, ``answer is X`` / ``correct answer is **X**`` picks X (A-D only,
  case-insensitive, as upstream's pattern is);
* option-text matching is skipped when the answer is longer than twice the options' total length.

No LLM judge is involved: these flavours reproduce VLMEvalKit's ``exact_matching`` judge setting.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .flavors import DEFAULT_FLAVOR, VLMEVALKIT, VLMEVALKIT_2025_01, MetricError, check_flavor

MCQ_FLAVORS: tuple[str, ...] = (VLMEVALKIT, VLMEVALKIT_2025_01)

REFUSAL = "Z"
_API_FAILURE = "Failed to obtain answer via API"
_REFUSAL_PHRASES = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_SEPARATORS = str.maketrans(dict.fromkeys(".()[],:;!*#{}", " "))
_LAST_WORDS = 4  # upstream accepts a letter at word index > len(words) - 5
_ANSWER_IS = re.compile(r"(?:correct\s+)?answer\s+is\s+\**([ABCD])\**", re.IGNORECASE)


@dataclass(frozen=True)
class ChoiceScore:
    """The outcome of one multiple-choice answer.

    ``letter`` is the option the answer was read as (None when none could be read, or on a refusal);
    ``parseable`` is False exactly when ``letter`` is None; ``reason`` says why in that case.
    """

    value: float
    letter: str | None
    parseable: bool
    reason: str | None = None


def _letter_from_words(answer: str, letters: Sequence[str], flavor: str) -> str | None:
    if _API_FAILURE in answer:
        return None
    if any(phrase in answer for phrase in _REFUSAL_PHRASES):
        return REFUSAL
    words = answer.translate(_SEPARATORS).split()
    present = [letter for letter in letters if letter in words]
    if len(present) == 1:
        letter = present[0]
        if flavor == VLMEVALKIT_2025_01 or words.index(letter) > len(words) - (_LAST_WORDS + 1):
            return letter
    elif not present and REFUSAL in words:
        return REFUSAL
    if flavor == VLMEVALKIT:
        found = _ANSWER_IS.search(answer)
        if found and found.group(1).upper() in letters:
            return found.group(1).upper()
    return None


def _letter_from_text(answer: str, choices: Sequence[tuple[str, str]], flavor: str) -> str | None:
    lowered = answer.lower()
    if flavor == VLMEVALKIT and len(lowered) > 2 * sum(len(text) for _, text in choices):
        return None
    hits = [letter for letter, text in choices if text.lower() in lowered]
    return hits[0] if len(hits) == 1 else None


def extract_choice(
    prediction: str, choices: Sequence[tuple[str, str]], flavor: str = DEFAULT_FLAVOR
) -> str | None:
    """The option letter ``prediction`` picks, ``"Z"`` for a refusal, or None when it cannot be told."""
    check_flavor("mcq", flavor, MCQ_FLAVORS)
    letters = [letter for letter, _ in choices]
    return _letter_from_words(prediction, letters, flavor) or _letter_from_text(prediction, choices, flavor)


def _check_choices(choices: Sequence[tuple[str, str]], answer: str) -> None:
    if not choices:
        raise MetricError("multiple_choice needs the options; this sample has no choices")
    letters = [letter for letter, _ in choices]
    bad = [letter for letter in letters if len(letter) != 1 or not ("A" <= letter <= "Z")]
    if bad:
        raise MetricError(f"option labels must be single capital letters A-Z; got {bad!r}")
    if answer not in letters:
        raise MetricError(f"the answer {answer!r} is not one of the option letters {', '.join(letters)}")


def multiple_choice(
    prediction: str, choices: Sequence[tuple[str, str]], answer: str, flavor: str = DEFAULT_FLAVOR
) -> ChoiceScore:
    """Score a multiple-choice answer: 1 when the extracted option is ``answer``; unreadable counts 0."""
    check_flavor("mcq", flavor, MCQ_FLAVORS)
    answer = answer.strip()
    _check_choices(choices, answer)
    picked = extract_choice(prediction, choices, flavor)
    if picked is None:
        return ChoiceScore(0.0, None, False, "no option could be read from the answer")
    if picked == REFUSAL and REFUSAL not in [letter for letter, _ in choices]:
        return ChoiceScore(0.0, None, False, "the answer refuses or says it cannot determine")
    return ChoiceScore(1.0 if picked == answer else 0.0, picked, True)
