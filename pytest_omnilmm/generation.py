"""From a sample to the prompt text: prompt builders and generate methods. Pure: no model, no timing.

``chat`` (the seed's ``old``): every image first, then the text — what MiniCPM-V's ``model.chat`` does.
``interleave``: text and images in the order the sample gives them.

How the prompt is written depends only on what the processor declares, never on the model's name: with a
chat template, one user turn rendered by it; without one (PaliGemma and other prefix-prompt models), the
parts in order with the processor's own image placeholder (``processor.image_token``) where images stand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .sample import ImageRef, Part, Sample, Text

MCQ_INSTRUCTION = "Answer with the option's letter from the given choices directly."
YES_NO_INSTRUCTION = "Please answer yes or no."

PromptBuilder = Callable[[Sample], tuple[Part, ...]]


def default_prompt(sample: Sample) -> tuple[Part, ...]:
    """The sample's own parts, unchanged."""
    return sample.parts


def _question_and_hint(sample: Sample) -> tuple[str, str]:
    question = str(sample.metadata.get("question") or sample.text)
    hint = sample.metadata.get("hint")
    hint_text = "" if hint is None or str(hint).strip().lower() in ("", "nan", "none") else str(hint)
    return question, hint_text


def mcq_prompt(sample: Sample) -> tuple[Part, ...]:
    """Hint, question, lettered options, instruction (VLMEvalKit's MCQ prompt shape)."""
    question, hint = _question_and_hint(sample)
    lines = [hint] if hint else []
    lines.append(question)
    lines.extend(f"{letter}. {text}" for letter, text in sample.choices)
    lines.append(MCQ_INSTRUCTION)
    return (*sample.images, Text("\n".join(lines)))


def yes_no_prompt(sample: Sample) -> tuple[Part, ...]:
    """The question plus "Please answer yes or no." — unless it already says so (MME's TSV questions do)."""
    question, _ = _question_and_hint(sample)
    if YES_NO_INSTRUCTION.lower().rstrip(".") in question.lower():
        return (*sample.images, Text(question))
    return (*sample.images, Text(f"{question} {YES_NO_INSTRUCTION}"))


PROMPTS: dict[str, PromptBuilder] = {
    "default": default_prompt,
    "mcq": mcq_prompt,
    "yes_no": yes_no_prompt,
}


def get_prompt_builder(name_or_builder: str | PromptBuilder | None) -> PromptBuilder:
    if name_or_builder is None:
        return default_prompt
    if callable(name_or_builder):
        return name_or_builder
    try:
        return PROMPTS[name_or_builder]
    except KeyError:
        raise ValueError(
            f"unknown prompt {name_or_builder!r}; use one of {', '.join(PROMPTS)} or pass a function"
        ) from None


def order_parts(parts: tuple[Part, ...], method: str) -> tuple[Part, ...]:
    """Apply the generate method: ``chat`` moves images before the text, ``interleave`` keeps order."""
    if method == "interleave":
        return parts
    if method == "chat":
        images = tuple(p for p in parts if isinstance(p, ImageRef))
        texts = tuple(p for p in parts if isinstance(p, Text))
        return images + texts
    raise ValueError(f"unknown generate method {method!r}")


def build_messages(parts: tuple[Part, ...], method: str) -> list[dict[str, Any]]:
    """One user turn in the chat-template shape: ``{"type": "image"}`` placeholders and text parts.

    Images are returned separately (by the caller, in the same order) because processors take pixel
    data apart from the text.
    """
    content: list[dict[str, Any]] = []
    for part in order_parts(parts, method):
        if isinstance(part, ImageRef):
            content.append({"type": "image"})
        elif part.text:
            content.append({"type": "text", "text": part.text})
    return [{"role": "user", "content": content}]


def has_chat_template(processor: Any) -> bool:
    """Whether ``processor.apply_chat_template`` has a template to render (what transformers checks)."""
    return getattr(processor, "chat_template", None) is not None


def image_placeholder(processor: Any) -> str | None:
    """The text the processor expands into one image's tokens, as it declares it: ``processor.image_token``,
    else its tokenizer's ``image_token``; None when neither declares one."""
    for owner in (processor, getattr(processor, "tokenizer", None)):
        token = getattr(owner, "image_token", None)
        if isinstance(token, str) and token:
            return token
    return None


def render_prompt(processor: Any, parts: tuple[Part, ...], method: str) -> str:
    """The prompt text for ``parts``, image placeholders not yet expanded into image tokens.

    With a chat template: one user turn, then the generation prompt. Without: the parts concatenated in the
    method's order, each image as the processor's placeholder; the processor adds its own framing around
    that prefix (PaliGemma: BOS after the images, a newline after the text).
    """
    if has_chat_template(processor):
        messages = build_messages(parts, method)
        return str(processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    placeholder = image_placeholder(processor)
    pieces: list[str] = []
    for part in order_parts(parts, method):
        if isinstance(part, Text):
            pieces.append(part.text)
        elif placeholder is None:
            raise ValueError(
                f"{type(processor).__name__} has no chat template and declares no image token "
                "(processor.image_token), so there is no way to say where an image goes; add a "
                "chat_template.jinja to the model directory"
            )
        else:
            pieces.append(placeholder)
    return "".join(pieces)


def images_in_order(parts: tuple[Part, ...], method: str) -> list[ImageRef]:
    return [p for p in order_parts(parts, method) if isinstance(p, ImageRef)]


def legacy_msgs(
    parts: tuple[Part, ...], method: str, load: Callable[[ImageRef], Any]
) -> list[dict[str, Any]]:
    """The remote-code ``model.chat(msgs=...)`` shape: content is a list of PIL images and strings."""
    content: list[Any] = []
    for part in order_parts(parts, method):
        content.append(load(part) if isinstance(part, ImageRef) else part.text)
    return [{"role": "user", "content": content}]
