"""Per-benchmark steps VLMEvalKit applies between its TSV and the model or the scorer.

* ``mmmu_prepare``: VLMEvalKit's ``MMMU_preproc`` (vlmeval/dataset/utils/multiple_choice.py): an open
  question (no option A) becomes a two-option item, A = the reference answer and B = "Other Answers",
  and any answer that is not a capital letter is taken as "A".
* ``mmmu_prompt``: the MCQ prompt with each image placed where its ``<image k>`` tag stands (what
  ``--generate_method interleave`` sends; ``chat`` still puts every image first).
* ``hallusion_prepare``: groups HallusionBench rows by (l2-category, set) so the bootstrap resamples whole
  sets; ``Hallusion_rating`` reads set, figure and question ids from the index (see metrics/hallusion.py).

All are total functions: a row they cannot interpret is left as it is and its scorer says why.
"""

from __future__ import annotations

import re
import string
from dataclasses import replace

from ..generation import mcq_prompt
from ..sample import ImageRef, Part, Sample, Text

OTHER_ANSWERS = "Other Answers"
_IMAGE_TAG = re.compile(r"<image (\d+)>")


def mmmu_prepare(sample: Sample) -> Sample:
    choices = sample.choices
    if not any(letter == "A" for letter, _ in choices):
        if not sample.references:
            return sample
        choices = (("A", sample.references[0]), ("B", OTHER_ANSWERS))
    refs = sample.references
    if refs and not (len(refs[0]) == 1 and refs[0] in string.ascii_uppercase):
        refs = ("A", *refs[1:])  # upstream maps every answer that is not one capital letter to A
    return replace(sample, choices=choices, references=refs)


def interleave_image_tags(text: str, images: tuple[ImageRef, ...]) -> tuple[Part, ...]:
    """``text`` cut at each ``<image k>`` (1-based) with image k put there; images no tag names go first.

    A tag naming an image the row does not have stays in the text as written.
    """
    parts: list[Part] = []
    used: set[int] = set()
    pos = 0
    for match in _IMAGE_TAG.finditer(text):
        k = int(match.group(1))
        if not 1 <= k <= len(images):
            continue
        if match.start() > pos:
            parts.append(Text(text[pos : match.start()]))
        parts.append(images[k - 1])
        used.add(k - 1)
        pos = match.end()
    if pos < len(text):
        parts.append(Text(text[pos:]))
    unplaced = [img for i, img in enumerate(images) if i not in used]
    return (*unplaced, *parts)


def mmmu_prompt(sample: Sample) -> tuple[Part, ...]:
    """The MCQ prompt (hint, question, options, instruction) with images at their ``<image k>`` tags."""
    built = mcq_prompt(sample)
    text = "\n".join(p.text for p in built if isinstance(p, Text))
    return interleave_image_tags(text, sample.images)


def hallusion_prepare(sample: Sample) -> Sample:
    parts = sample.id.split("_")
    if len(parts) < 6:
        return sample
    l2 = sample.metadata.get("l2-category")
    return replace(sample, group=f"{l2}_{parts[3]}")
