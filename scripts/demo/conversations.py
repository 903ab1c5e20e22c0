"""Training conversations: several questions about one image in one sequence.

The demo model learns from answer tokens only. One question per image spends a whole forward pass
(64 visual tokens and the prompt) on one or two supervised tokens; a conversation asks a few more
questions about the first question's image in later turns, so one pass trains several answers and the
Yes and the No question about one picture, or the three fields of one form, sit side by side.

The first turn is exactly the single-turn prompt the plugin sends; later turns are text only (the image
stays in the first user turn, as in a real multi-turn chat). Multi-image questions have no follow-ups,
and neither do word cards (a second wording of the same question would teach copying, not reading).

Follow-ups may ask about what an earlier turn already answered ("What colour is the shape? red", then
"Is the shape red?"): that part of a conversation can be answered from the text, which lets the model
learn the comparison itself before it learns it against the image. Whether that helps was not measured
apart; the recipe as a whole was (``train.py``: 0.862 with follow-ups, 0.844 without). Known skew: every
single-shape scene can be asked its count, so "1" is over-represented among count answers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from scripts.demo.synth import (
    FORM_FIELDS,
    QA,
    FormPage,
    ShapeScene,
    make_docvqa,
    mcq_about,
    rotate_choices,
    vqa_about,
    yesno_pair_about,
)

Conversation = tuple[QA, ...]

SCENE_VQA = ("colour", "shape", "position", "count")
SCENE_MCQ = ("colour", "shape", "count")


def follow_ups(rng: random.Random, qa: QA, families: frozenset[str] | None = None) -> list[QA]:
    """Other questions about ``qa``'s one image (in the eval shapes), optionally of some families only."""
    if len(qa.images) != 1:
        return []
    spec = qa.images[0]
    found: list[QA] = []
    if isinstance(spec, ShapeScene):
        # One shape: every category; several shapes (a count scene): only the count is well defined.
        vqa_cats = SCENE_VQA if len(spec.shapes) == 1 else ("count",)
        mcq_cats = SCENE_MCQ if len(spec.shapes) == 1 else ("count",)
        found += [vqa_about(spec, c) for c in vqa_cats]
        found += [q for c in vqa_cats for q in yesno_pair_about(rng, spec, c)]
        for c in mcq_cats:
            mcq = mcq_about(rng, spec, c)
            found.append(rotate_choices(mcq, rng.randrange(len(mcq.choices))))
    elif isinstance(spec, FormPage):
        found += [make_docvqa(rng, spec, i) for i in range(len(FORM_FIELDS))]
    # Not the same question again, nor another wording of it (that would teach copying the last answer).
    return [
        q
        for q in found
        if (q.question != qa.question and not (q.family == "docvqa" and q.answer == qa.answer))
        and (families is None or q.family in families)
    ]


def converse(
    rng: random.Random, qa: QA, max_extra: int, families: frozenset[str] | None = None
) -> Conversation:
    """``qa`` then up to ``max_extra`` follow-ups about its image, in random order."""
    extra = follow_ups(rng, qa, families)
    rng.shuffle(extra)
    return (qa, *extra[: rng.randint(0, min(max_extra, len(extra)))])


def conversations(
    seed: int, questions: Iterator[QA], max_extra: int, families: frozenset[str] | None = None
) -> Iterator[Conversation]:
    """Each question of ``questions`` as the first turn of a conversation (its own ``random.Random``)."""
    rng = random.Random(seed)
    for qa in questions:
        yield converse(rng, qa, max_extra, families)
