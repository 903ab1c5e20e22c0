"""MathVista as VLMEvalKit scores it: ``mathvista_prefetch`` (no judge) and ``mathvista`` (with one).

``mathvista_prefetch`` is VLMEvalKit's *prefetch* step only — not the leaderboard number.

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

``mathvista`` (``mathvista_judged``) is the whole of ``MathVista_auxeval``: the same prefetch, then the
judge model where it reads nothing, then ``post_check`` on what the judge extracted.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

from .mcq import extract_choice

if TYPE_CHECKING:
    from ..sample import Sample
    from .judge import Judge, JudgedScore


def _choices(cell: object) -> tuple[tuple[str, str], ...] | None:
    from ..literals import parse_list_literal

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


# --------------------------------------------------------------------------------------- with a judge
# ``mathvista``: VLMEvalKit's whole MathVista_auxeval + MathVista_acc rule for one row. The prefetch above is
# its first step; what it cannot read goes to the judge, whose reply is then read by post_check.

MATHVISTA_MAX_TOKENS = 128  # MathVista.evaluate: build_judge(max_tokens=128, ...)


def mathvista_judge_prompt(question: str, prediction: str) -> str:
    """``build_mathvista_gpt4_prompt``: the task, the five examples, the row's question, the answer."""
    from .judge_prompts import (
        MATHVISTA_ANSWER_LABEL,
        MATHVISTA_EXAMPLES,
        MATHVISTA_RESPONSE_LABEL,
        MATHVISTA_TASK_DESCRIPTION,
    )

    prompt = MATHVISTA_TASK_DESCRIPTION
    for example in MATHVISTA_EXAMPLES:
        prompt += example + "\n"
    return prompt + question + "\n" + MATHVISTA_RESPONSE_LABEL + prediction + MATHVISTA_ANSWER_LABEL


def post_check(sample: Sample, response: object, flavor: str, *, prefetch: bool) -> tuple[object, object]:
    """VLMEvalKit's ``post_check``: (what it returns, what it read from ``response``).

    With ``prefetch`` it returns the read value when it equals the answer (a multi_choice row returns the
    letter ``can_infer`` read, right or wrong, or False); without, True or False. The caller must test the
    prefetch value for *truth* as upstream does: an integer answer 0 read correctly is falsy and goes to
    the judge. Floats compare exactly (``float(res) == float(answer)``; the ``precision`` column is not
    used), integers need ``int()`` to accept the whole text, and any other answer type compares
    ``str(None)`` with the answer.
    """
    from .judge import answer_cell

    meta = sample.metadata
    res: object = None
    ans: object = answer_cell(sample)
    try:
        if meta.get("question_type") == "multi_choice":
            ans = meta.get("answer_option")
            choices = _choices(meta.get("choices")) or ()
            res = extract_choice(str(response), choices, flavor)
            if prefetch:
                return (res if res is not None else False), res
        elif meta.get("answer_type") == "integer":
            res = int(response)  # type: ignore[call-overload]
            ans = int(str(ans))
        elif meta.get("answer_type") == "float":
            res = float(response)  # type: ignore[arg-type]
            ans = float(str(ans))
        else:
            res = str(res)
            ans = str(ans)
    except ValueError:
        pass
    if res == ans:
        return (res if prefetch else True), res
    return False, res


def mathvista_judged(prediction: str, sample: Sample, flavor: str, judge: Judge) -> JudgedScore:
    """``MathVista_auxeval`` then ``post_check(line, prefetch=False)`` for one row.

    Prefetch first; when it gives nothing truthy, the judge is asked up to 5 times (temperature 0, 0.5,
    ...) until a reply is not VLMEvalKit's API-failure text (an empty reply counts as one: the wrapper
    turns it into that text); after 5 such tries the extracted answer is "". The extracted answer is
    then checked against the row's answer with ``post_check``.
    """
    from .judge import JUDGE_TRIES, JudgedScore, temperature_of_try
    from .judge_prompts import FAIL_MSG

    first, _read = post_check(sample, prediction, flavor, prefetch=True)
    replies: list[str] = []
    if first:
        res: object = first
        log = "Prefetch succeed"
    else:
        prompt = mathvista_judge_prompt(str(sample.metadata.get("question") or sample.text), prediction)
        res, log = "", ""
        for attempt in range(JUDGE_TRIES):
            reply = judge.complete(
                prompt, temperature=temperature_of_try(attempt), max_tokens=MATHVISTA_MAX_TOKENS
            )
            replies.append(reply)
            if reply == "" or FAIL_MSG in reply:
                log += f"Try {attempt}: output is {prediction}, failed to parse.\n"  # sic: the prediction
            else:
                log += "Succeed"
                res = reply
                break
        else:
            log += f"All {JUDGE_TRIES} retries failed.\n"
    correct, read = post_check(sample, res, flavor, prefetch=False)
    return JudgedScore(1.0 if correct else 0.0, log, tuple(replies), read, judge.model)
