"""Generate methods and prompt builders, checked on the real processor's expanded template."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_omnilmm.generation import (
    build_messages,
    get_prompt_builder,
    images_in_order,
    mcq_prompt,
    order_parts,
    yes_no_prompt,
)
from pytest_omnilmm.sample import ImageRef, Sample, Text


@pytest.fixture
def interleaved(tmp_path: Path) -> Sample:
    from PIL import Image

    Image.new("RGB", (56, 56), "red").save(tmp_path / "a.png")
    Image.new("RGB", (112, 56), "blue").save(tmp_path / "b.png")
    parts = (
        Text("first look at"),
        ImageRef(path=tmp_path / "a.png"),
        Text("then at"),
        ImageRef(path=tmp_path / "b.png"),
        Text("which is wider?"),
    )
    return Sample(id="x1", dataset="d", parts=parts, references=("b",))


def test_chat_puts_images_first_interleave_keeps_order(interleaved: Sample) -> None:
    chat = order_parts(interleaved.parts, "chat")
    assert [type(p).__name__ for p in chat] == ["ImageRef", "ImageRef", "Text", "Text", "Text"]
    assert order_parts(interleaved.parts, "interleave") == interleaved.parts
    assert [p.path.name for p in images_in_order(interleaved.parts, "chat")] == ["a.png", "b.png"]
    with pytest.raises(ValueError, match="unknown generate method"):
        order_parts(interleaved.parts, "sideways")


def _expanded(processor, sample: Sample, method: str) -> str:
    text = processor.apply_chat_template(
        build_messages(sample.parts, method), add_generation_prompt=True, tokenize=False
    )
    images = [ref.load() for ref in images_in_order(sample.parts, method)]
    inputs = processor(text=[text], images=[images] if images else None, return_tensors="pt")
    return processor.tokenizer.decode(inputs["input_ids"][0])


def _skeleton(expanded: str) -> str:
    """Each image block collapsed to IMG so the order of text and images is visible."""
    return re.sub(r"<image_id>\d+</image_id><image>(<\|image_pad\|>)+</image>", "IMG", expanded)


def test_expanded_template_places_images(tiny_model: Path, interleaved: Sample) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model)
    chat = _skeleton(_expanded(processor, interleaved, "chat"))
    inter = _skeleton(_expanded(processor, interleaved, "interleave"))
    assert (
        "<|im_start|>user\nIMGIMGfirst look atthen atwhich is wider?<|im_end|>\n<|im_start|>assistant\n"
        in chat
    )
    assert "<|im_start|>user\nfirst look atIMGthen atIMGwhich is wider?<|im_end|>" in inter
    # one visual-token block per image, in the order the method gives
    assert chat.count("IMG") == inter.count("IMG") == 2


def test_sample_without_image_is_valid_for_both(tiny_model: Path) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model)
    sample = Sample(id="t", dataset="d", parts=(Text("how many is one plus one?"),))
    for method in ("chat", "interleave"):
        assert "<|image_pad|>" not in _expanded(processor, sample, method)


def test_mcq_and_yes_no_prompts() -> None:
    sample = Sample(
        id="q",
        dataset="d",
        parts=(Text("What shape is it?"),),
        choices=(("A", "circle"), ("B", "square")),
        metadata={"question": "What shape is it?", "hint": "Look closely."},
    )
    (text,) = mcq_prompt(sample)
    assert text.text == (
        "Look closely.\nWhat shape is it?\nA. circle\nB. square\n"
        "Answer with the option's letter from the given choices directly."
    )
    (yn,) = yes_no_prompt(Sample(id="y", dataset="d", parts=(Text("Is it red?"),)))
    assert yn.text == "Is it red? Please answer yes or no."
    (mme,) = yes_no_prompt(Sample(id="m", dataset="d", parts=(Text("Is it red? Please answer yes or no."),)))
    assert mme.text == "Is it red? Please answer yes or no."  # MME's questions carry it already
    assert get_prompt_builder("mcq") is mcq_prompt
    with pytest.raises(ValueError, match="unknown prompt 'nope'"):
        get_prompt_builder("nope")
