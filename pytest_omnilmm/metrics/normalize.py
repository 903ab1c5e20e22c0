"""Answer normalisation of the official VQA evaluation, in the variants the references use.

The official VQA scorer (GT-Vision-Lab/VQA, ``vqaEval.py``) normalises an answer in two steps:

1. punctuation: each of 21 symbols is deleted when it touches a space anywhere in the text (or when the
   text holds a comma between two digits, which switches *every* symbol to deletion), and is otherwise
   replaced by a space; then periods are removed by a regular expression;
2. words: lower-case, split on whitespace, map the number words ``none``/``zero`` .. ``ten`` to digits,
   drop the articles ``a``/``an``/``the``, and re-insert the apostrophe of known contractions.

Two historical accidents of that code are part of the definition, because every reference inherited
them and published numbers depend on them:

* the period expression was meant to keep a period that follows a digit, but its look-behind is
  misspelt as a look-ahead, so it only keeps periods *followed* by a digit: ``"3."`` becomes ``"3"``.
  Current VLMEvalKit (2025) spells the look-behind correctly and keeps that period.
* the expression is applied with ``re.UNICODE`` passed where ``count`` belongs, so at most
  ``re.UNICODE == 32`` periods are removed. Long texts keep their later periods, which also makes the
  normalisation non-idempotent once a text has more than 32 removable periods.
"""

from __future__ import annotations

import re
from enum import Enum

# The 21 symbols of the official list (the period is handled separately).
PUNCTUATION = ';/[]"{}()=+\\_-><@`,?!'

# re.UNICODE's integer value, which the references pass as the ``count`` of ``Pattern.sub``.
PERIOD_LIMIT = 32

_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
# A period not followed by a digit (what the misspelt official expression actually matches).
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
# A period with a digit on neither side (the corrected expression of current VLMEvalKit).
_PERIOD_NOT_NEXT_TO_DIGIT = re.compile(r"(?<!\d)\.(?!\d)")

NUMBER_WORDS: dict[str, str] = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})


def _parse_pairs(spec: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in spec.split():
        key, value = item.split(">")
        pairs[key] = value
    return pairs


# Contractions of the official list, written ``spelling>replacement``. Only keys that are already
# lower-case are kept: the lookup runs on lower-cased words, so the list's few capitalised keys
# ("Im", "Ive", "Id've", "I'dve") can never match in any reference.
CONTRACTIONS: dict[str, str] = _parse_pairs(
    """
    aint>ain't arent>aren't cant>can't couldve>could've couldnt>couldn't couldn'tve>couldn't've
    couldnt've>couldn't've didnt>didn't doesnt>doesn't dont>don't hadnt>hadn't hadnt've>hadn't've
    hadn'tve>hadn't've hasnt>hasn't havent>haven't hed>he'd hed've>he'd've he'dve>he'd've hes>he's
    howd>how'd howll>how'll hows>how's isnt>isn't itd>it'd itd've>it'd've it'dve>it'd've itll>it'll
    let's>let's maam>ma'am mightnt>mightn't mightnt've>mightn't've mightn'tve>mightn't've
    mightve>might've mustnt>mustn't mustve>must've neednt>needn't notve>not've oclock>o'clock
    oughtnt>oughtn't ow's'at>'ow's'at 'ows'at>'ow's'at 'ow'sat>'ow's'at shant>shan't
    shed've>she'd've she'dve>she'd've she's>she's shouldve>should've shouldnt>shouldn't
    shouldnt've>shouldn't've shouldn'tve>shouldn't've somebody'd>somebodyd somebodyd've>somebody'd've
    somebody'dve>somebody'd've somebodyll>somebody'll somebodys>somebody's someoned>someone'd
    someoned've>someone'd've someone'dve>someone'd've someonell>someone'll someones>someone's
    somethingd>something'd somethingd've>something'd've something'dve>something'd've
    somethingll>something'll thats>that's thered>there'd thered've>there'd've there'dve>there'd've
    therere>there're theres>there's theyd>they'd theyd've>they'd've they'dve>they'd've
    theyll>they'll theyre>they're theyve>they've twas>'twas wasnt>wasn't wed've>we'd've
    we'dve>we'd've weve>we've werent>weren't whatll>what'll whatre>what're whats>what's
    whatve>what've whens>when's whered>where'd wheres>where's whereve>where've whod>who'd
    whod've>who'd've who'dve>who'd've wholl>who'll whos>who's whove>who've whyll>why'll
    whyre>why're whys>why's wont>won't wouldve>would've wouldnt>wouldn't wouldnt've>wouldn't've
    wouldn'tve>wouldn't've yall>y'all yall'll>y'all'll y'allll>y'all'll yall'd've>y'all'd've
    y'alld've>y'all'd've y'all'dve>y'all'd've youd>you'd youd've>you'd've you'dve>you'd've
    youll>you'll youre>you're youve>you've
    """
)


class PeriodRule(Enum):
    """Which periods the punctuation step removes (see the module docstring)."""

    OFFICIAL = "official"  # not followed by a digit: "3." -> "3"
    DIGIT_SAFE = "digit-safe"  # no digit on either side: "3." stays "3."


_PERIOD_PATTERNS = {
    PeriodRule.OFFICIAL: _PERIOD_NOT_BEFORE_DIGIT,
    PeriodRule.DIGIT_SAFE: _PERIOD_NOT_NEXT_TO_DIGIT,
}


def strip_punctuation(text: str, period_rule: PeriodRule = PeriodRule.OFFICIAL) -> str:
    """The punctuation step of the official normaliser.

    Whether a symbol is deleted or turned into a space is decided once per symbol, on the text as
    given, so the result does not depend on the order the symbols are visited in.
    """
    delete_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    table: dict[int, str] = {}
    for symbol in PUNCTUATION:
        if symbol not in text:
            continue
        touches_space = f"{symbol} " in text or f" {symbol}" in text
        table[ord(symbol)] = "" if (delete_all or touches_space) else " "
    out = text.translate(table) if table else text
    return _PERIOD_PATTERNS[period_rule].sub("", out, count=PERIOD_LIMIT)


def normalize_words(text: str) -> str:
    """The word step: lower-case, number words to digits, drop articles, restore contractions."""
    words = []
    for word in text.lower().split():
        word = NUMBER_WORDS.get(word, word)
        if word not in ARTICLES:
            words.append(CONTRACTIONS.get(word, word))
    return " ".join(words)


def flatten_whitespace(text: str) -> str:
    """Newlines and tabs to spaces, then trim: what the references do before the punctuation step."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_vqa(text: str, period_rule: PeriodRule = PeriodRule.OFFICIAL, *, flatten: bool = True) -> str:
    """Full VQA normalisation.

    ``flatten=False`` skips the newline/tab step, as OmniLMM's scorer does for ground truths: a newline
    next to a symbol then does not count as "touching a space", which can change the symbol's fate.
    """
    if flatten:
        text = flatten_whitespace(text)
    return normalize_words(strip_punctuation(text, period_rule))
