"""Build a tiny MiniCPM-V 4.6 (the native transformers architecture) entirely offline.

Used by the test-suite (random weights, seconds) and by the demo trainer (which then trains it).
The tokenizer is a byte-level BPE trained here with ``tokenizers``; the processor is the official
``MiniCPMV4_6Processor`` so ``AutoProcessor.from_pretrained(dir)`` loads it without remote code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The chat template: ChatML; an {"type": "image"} part becomes the image placeholder, in order.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<|image_pad|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS: dict[str, str] = {
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "image_start_token": "<image>",
    "image_end_token": "</image>",
    "slice_start_token": "<slice>",
    "slice_end_token": "</slice>",
    "image_id_start_token": "<image_id>",
    "image_id_end_token": "</image_id>",
}
BASE_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

DEFAULT_CORPUS = (
    "what colour is the shape? red green blue yellow purple orange white black",
    "how many shapes are there? one two three four five six 0 1 2 3 4 5 6 7 8 9",
    "is there a circle square triangle in the image? yes no",
    "which option is correct? answer with the letter A B C D",
    "what word is written in the image? where is the shape: left right top bottom middle",
    "user assistant system question answer the of a an is are in on",
)


@dataclass(frozen=True)
class TinySpec:
    """Sizes of the tiny model. Defaults: ~0.6 M parameters, a 224 px image -> 64 visual tokens."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 32
    vision_hidden: int = 64
    vision_layers: int = 2
    image_size: int = 224
    vocab_size: int = 512
    downsample_mode: str = "4x"
    # Hybrid linear attention is what 4.6 ships, but on CPU without fused kernels it is slow:
    # two plain attention layers keep the same classes and weights layout and run fast.
    layer_types: tuple[str, ...] = ("full_attention", "full_attention")
    seed: int = 0


def train_tokenizer(corpus: Iterable[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer wrapped as a transformers fast tokenizer, left padding."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = BASE_SPECIALS + list(SPECIAL_TOKENS.values())
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        extra_special_tokens=dict(SPECIAL_TOKENS),
    )


def build_processor(tokenizer: Any, spec: TinySpec) -> Any:
    from transformers import (
        MiniCPMV4_6ImageProcessor,
        MiniCPMV4_6Processor,
        MiniCPMV4_6VideoProcessor,
    )

    image_processor = MiniCPMV4_6ImageProcessor(
        scale_resolution=spec.image_size,
        max_slice_nums=1,
        slice_mode=False,
        patch_size=14,
        downsample_mode=spec.downsample_mode,
    )
    video_processor = MiniCPMV4_6VideoProcessor(downsample_mode=spec.downsample_mode)
    return MiniCPMV4_6Processor(
        image_processor=image_processor,
        video_processor=video_processor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )


def build_config(tokenizer: Any, spec: TinySpec) -> Any:
    from transformers import MiniCPMV4_6Config

    image_token_id = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["image_token"])
    video_token_id = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS["video_token"])
    config = MiniCPMV4_6Config(
        text_config={
            "model_type": "qwen3_5_text",
            "vocab_size": len(tokenizer),
            "hidden_size": spec.hidden,
            "intermediate_size": spec.hidden * 2,
            "num_hidden_layers": spec.layers,
            "num_attention_heads": spec.heads,
            "num_key_value_heads": spec.kv_heads,
            "head_dim": spec.head_dim,
            "layer_types": list(spec.layer_types),
            "max_position_embeddings": 1024,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": None,
        },
        vision_config={
            "hidden_size": spec.vision_hidden,
            "intermediate_size": spec.vision_hidden * 2,
            "num_hidden_layers": spec.vision_layers,
            "num_attention_heads": 4,
            "patch_size": 14,
            "image_size": spec.image_size,
        },
        # Must be below the vision layer count, or the merger silently sees the wrong features.
        insert_layer_id=spec.vision_layers - 1,
        image_size=spec.image_size,
        downsample_mode=spec.downsample_mode,
        image_token_id=image_token_id,
        video_token_id=video_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return config


def build_tiny_model(
    out_dir: Path,
    spec: TinySpec = TinySpec(),
    corpus: Sequence[str] = DEFAULT_CORPUS,
) -> Path:
    """Write a random-weight tiny MiniCPM-V 4.6 (model, tokenizer, processor) to ``out_dir``."""
    import torch
    from transformers import GenerationConfig, MiniCPMV4_6ForConditionalGeneration

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(corpus, spec.vocab_size)
    processor = build_processor(tokenizer, spec)
    config = build_config(tokenizer, spec)
    torch.manual_seed(spec.seed)
    model = MiniCPMV4_6ForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
