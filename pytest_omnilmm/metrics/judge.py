"""What a judge-graded metric needs from a judge model, and the shape of what it reports back.

VLMEvalKit grades MathVista and MM-Vet by asking a GPT model (its "judge") in plain text. Here the judge is
anything with a ``model`` name and ``complete(prompt, temperature=, max_tokens=) -> str``: the built-in one
talks to an OpenAI-compatible server (``pytest_omnilmm.backends.judge``, chosen with ``--judge-api-base`` /
``--judge-model``); a conftest can hand the metrics its own through the ``omnilmm_judge`` fixture.

Nothing here does I/O: the metrics call ``complete`` and apply VLMEvalKit's rules to the replies.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .flavors import MetricError

if TYPE_CHECKING:
    from ..sample import Sample

JUDGE_TRIES = 5  # MathVista_auxeval / MMVet_auxeval: `retry = 5`, temperature i * 0.5 on try i


@runtime_checkable
class Judge(Protocol):
    """A text-in, text-out judge model."""

    model: str

    def complete(self, prompt: str, *, temperature: float, max_tokens: int) -> str:
        """The judge's reply to ``prompt``, stripped of surrounding whitespace as VLMEvalKit's wrapper
        strips it; ``""`` when it answered nothing. Raise ``JudgeError`` (one line) when it cannot be
        asked at all: the sample then fails alone and keeps its prediction."""
        ...


class JudgeError(MetricError):
    """The judge could not be asked (unreachable, refused the request, timed out after retries)."""


class JudgeMissing(MetricError):
    """A judge-graded metric was asked to score without a judge."""


def temperature_of_try(attempt: int) -> float:
    """VLMEvalKit asks again at a higher temperature after a failed try: 0.0, 0.5, 1.0, 1.5, 2.0."""
    return attempt * 0.5


@dataclass(frozen=True)
class JudgedScore:
    """One sample graded through a judge.

    ``log`` is VLMEvalKit's own log text for the row (``Prefetch succeed``, ``Try 0: output is ..., failed to
    parse.``, ``Succeed``, ``All 5 retries failed.``); ``replies`` every raw judge reply in order (empty when
    the judge was not asked); ``read`` what the rules read from the answer or the reply (a letter, a
    number, ``None``).
    """

    value: float
    log: str
    replies: tuple[str, ...]
    read: object
    judge_model: str

    @property
    def asked(self) -> bool:
        return bool(self.replies)

    def note(self) -> str:
        """One line for the record: which judge graded it, each raw reply (``repr``), what the rules read,
        and VLMEvalKit's log. Starts with ``judge=<model repr>`` (``judge_model_of`` reads it back)."""
        log = " | ".join(line for line in self.log.splitlines() if line.strip())
        if not self.asked:
            return f"judge={self.judge_model!r} not asked; read {self.read!r}; VLMEvalKit log: {log}"
        tries = "; ".join(
            f"try {i} (temperature {temperature_of_try(i):g}) replied {reply!r}"
            for i, reply in enumerate(self.replies)
        )
        return f"judge={self.judge_model!r}; {tries}; read {self.read!r}; VLMEvalKit log: {log}"


_NOTE_JUDGE = re.compile(r"""judge=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")


def judge_model_of(note: str) -> str | None:
    """The judge model a ``JudgedScore.note()`` names, or None for any other note."""
    found = _NOTE_JUDGE.match(note)
    return str(ast.literal_eval(found.group(1))) if found else None


def answer_cell(sample: Sample) -> str:
    """The answer cell as VLMEvalKit's judge prompts read it. A cell holding a list literal became several
    references when the file was read; they are joined back as ``[a, b]`` (exact for lists of numbers)."""
    refs = sample.references
    return refs[0] if len(refs) == 1 else "[" + ", ".join(refs) + "]"


def judge_missing(metric: str, fallback: str) -> JudgeMissing:
    """The one line for a judge-graded metric asked to score without a judge."""
    return JudgeMissing(
        f"metric {metric!r} is graded by a judge model: give --judge-api-base URL and --judge-model NAME "
        f"(an OpenAI-compatible server), or score with {fallback!r}"
    )
