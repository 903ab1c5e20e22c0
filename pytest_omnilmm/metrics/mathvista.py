"""MathVista, rule-based: VLMEvalKit's *prefetch* step only — not the leaderboard number.

VLMEvalKit (``post_check(line, prefetch=True)`` in vlmeval/dataset/utils/mathvista.py) first tries to
read the answer without a judge; only when that fails does it ask a GPT judge to extract one. This
scorer applies the prefetch rules and scores 0 where VLMEvalKit would go on to the judge, so it is a
lower bound of the judged score, labelled as such:

* ``question_type == "multi_choice"``: the options come from the ``choices`` cell (a list, lettered
  A, B, ...); the pick is read with ``can_infer`` (the ``mcq`` extraction) and compared with
  ``answer_option``;
* ``answer_type == "integer"`` / ``"float"``: the whole prediction must parse as an int / float
  (surrounding whitespace allowed, as Python's ``int``/``float`` allow) and equal the answer;
* any other answer type never prefetches (upstream compares ``str(None)`` with the answer), so it
  scores 0 here.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

from .mcq import extract_choice

if TYPE_CHECKING:
    from ..sample import Sample


def _choices(cell: object) -> tuple[tuple[str, str], ...] | None:
    from ..datasets._common import parse_list_literal

    values = parse_list_literal(str(cell)) if cell is not None else None
    if not values:
        return None
    return tuple((string.ascii_uppercase[i], str(v)) for i, v in enumerate(values[:26]))


def mathvista_prefetch(prediction: str, sample: Sample, flavor: str) -> tuple[float, str]:
    """(score, what happened) for one MathVista row."""
    meta = sample.metadata
    answer = sample.references[0] if sample.references else ""
    if meta.get("question_type") == "multi_choice":
        choices = _choices(meta.get("choices"))
        if choices is None:
            return 0.0, "multi_choice row without a readable 'choices' list"
        picked = extract_choice(prediction, choices, flavor)
        if picked is None or picked == "Z":
            return 0.0, "no option read without a judge"
        return (1.0 if picked == meta.get("answer_option") else 0.0), f"extracted {picked}"
    kind = meta.get("answer_type")
    cast = {"integer": int, "float": float}.get(str(kind))
    if cast is None:
        return 0.0, f"answer_type {kind!r} needs the judge; scored 0 without one"
    try:
        got, want = cast(prediction), cast(answer)
    except ValueError:
        return 0.0, f"not a bare {kind}: the judge would be asked; scored 0 without one"
    return (1.0 if got == want else 0.0), f"read {got!r}"
