"""MM-Vet as VLMEvalKit grades it (``mmvet_gpt``): a judge model fills in a 0.0-1.0 correctness score.

Follows ``build_mmvet_gpt4_prompt`` and ``MMVet_auxeval`` (vlmeval/dataset/utils/mmvet.py) and the
judge settings of ``MMVet.evaluate`` (vlmeval/dataset/image_vqa.py: ``build_judge(max_tokens=3)``):

* the prompt is the fixed table of examples, then ``question | answer | prediction | `` with ``<AND>`` and
  ``<OR>`` in the answer padded by a space on each side;
* up to 5 tries at temperature 0, 0.5, 1.0, 1.5, 2.0; a try succeeds when Python's ``float()`` reads the
  whole reply and the value lies in [0, 1]; otherwise the log says "failed to parse" or "invalid score";
* when every try fails the row scores 0.0;
* one deviation: a reply of ``nan`` passes upstream's range check (NaN compares false both ways) and makes
  upstream's mean NaN; here it is an invalid score and the next try is made.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..sample import Sample
    from .judge import Judge, JudgedScore

MMVET_MAX_TOKENS = 3  # MMVet.evaluate: build_judge(max_tokens=3, ...)


def mmvet_judge_prompt(question: str, answer: str, prediction: str) -> str:
    """``build_mmvet_gpt4_prompt``: the table, then this row with its correctness cell left empty."""
    from .judge_prompts import MMVET_TABLE

    gt = answer.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
    return MMVET_TABLE + "\n" + " | ".join([question, gt, prediction, ""])


def read_mmvet_score(output: str) -> float | None:
    """``float_cvt``: the whole reply as a Python float, else None."""
    try:
        return float(output)
    except ValueError:
        return None


def mmvet_judged(prediction: str, sample: Sample, flavor: str, judge: Judge) -> JudgedScore:
    """``MMVet_auxeval`` for one row: the judge's score, or 0.0 after 5 failed tries."""
    from .judge import JUDGE_TRIES, JudgedScore, answer_cell, temperature_of_try
    from .judge_prompts import FAIL_MSG

    question = str(sample.metadata.get("question") or sample.text)
    prompt = mmvet_judge_prompt(question, answer_cell(sample), prediction)
    log = ""
    replies: list[str] = []
    for attempt in range(JUDGE_TRIES):
        reply = judge.complete(prompt, temperature=temperature_of_try(attempt), max_tokens=MMVET_MAX_TOKENS)
        replies.append(reply)
        output = reply or FAIL_MSG  # VLMEvalKit's wrapper answers its failure text for an empty reply
        score = read_mmvet_score(output)
        if score is None:
            log += f"Try {attempt}: output is {output}, failed to parse.\n"
        elif score < 0 or score > 1 or math.isnan(score):
            log += f"Try {attempt}: output is {output}, invalid score: {score}.\n"
        else:
            log += "Succeed"
            return JudgedScore(score, log, tuple(replies), score, judge.model)
    log += f"All {JUDGE_TRIES} retries failed.\n"
    return JudgedScore(0.0, log, tuple(replies), None, judge.model)
