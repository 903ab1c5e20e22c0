"""Tiny random-weight image-text-to-text models of many families, built offline (no hub).

Each builder writes a ``save_pretrained`` directory (model, tokenizer, processor) that
``AutoModelForImageTextToText`` / ``AutoProcessor`` load back. The tokenizer is a byte-level BPE trained
here on a few sentences with the family's special tokens; the chat template is a short template in the
family's own turn format (the real ones come from the hub), or none where the family has none
(PaliGemma: the prompt is a prefix). Sizes are the smallest the architectures accept: a few hundred
thousand parameters, a 56 px image, a handful of image tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS = (
    "what colour is the shape? red green blue yellow purple orange white black",
    "user assistant model system question answer yes no the a is in on 0 1 2 3 4 5",
)
IMAGE = 56  # px; 14 px patches -> a 4 x 4 grid
PATCH = 14


def tokenizer(
    specials: Sequence[str], named: dict[str, str] | None = None, vocab: int = 320, **roles: str
) -> Any:
    """A fast BPE tokenizer: ``specials`` are added as special tokens, ``named`` become attributes
    (``tokenizer.image_token`` ...), ``roles`` are eos/pad/bos tokens. Padding on the left."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=list(dict.fromkeys(specials)),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(list(CORPUS), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, padding_side="left", extra_special_tokens=dict(named or {}), **roles
    )


def chat_template(turn: str, end: str, assistant: str, image: str) -> str:
    """A one-line Jinja chat template: ``turn`` formats the role (``{role}``), ``image`` stands for an
    ``{"type": "image"}`` part, text parts are copied; ``assistant`` opens the answer."""
    head = turn.replace("{role}", "' + message['role'] + '")
    return (
        "{% for message in messages %}"
        f"{{{{ '{head}' }}}}"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for part in message['content'] %}"
        f"{{% if part['type'] == 'image' %}}{{{{ '{image}' }}}}"
        "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
        "{% endfor %}{% endif %}"
        f"{{{{ '{end}' }}}}"
        "{% endfor %}"
        f"{{% if add_generation_prompt %}}{{{{ '{assistant}' }}}}{{% endif %}}"
    )


CHATML = chat_template("<|im_start|>{role}\\n", "<|im_end|>\\n", "<|im_start|>assistant\\n", "<|image_pad|>")


def text_config(tok: Any, **extra: Any) -> dict[str, Any]:
    """A 2-layer decoder sized to the tokenizer."""
    return {
        "vocab_size": len(tok),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "max_position_embeddings": 512,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        "bos_token_id": tok.bos_token_id,
        **extra,
    }


def vision(**extra: Any) -> dict[str, Any]:
    """A 1-layer ViT on 56 px images with 14 px patches."""
    return {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": IMAGE,
        "patch_size": PATCH,
        **extra,
    }


def ids(tok: Any, **tokens: str) -> dict[str, int]:
    return {name: int(tok.convert_tokens_to_ids(token)) for name, token in tokens.items()}


@dataclass(frozen=True)
class Built:
    model: Any
    processor: Any


# ------------------------------------------------------------------------------------------ families
# Each builder imports transformers inside (``tf``): importing this module stays cheap.


def qwen2_vl(v25: bool = False) -> Built:
    import transformers as tf

    tok = tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"],
        {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    image_processor = tf.Qwen2VLImageProcessor(
        min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 4, patch_size=14, merge_size=2, temporal_patch_size=2
    )
    vision_config: dict[str, Any] = {
        "depth": 1, "num_heads": 2, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
    }  # fmt: skip
    if v25:
        config_class, model_class, processor_class = (
            tf.Qwen2_5_VLConfig, tf.Qwen2_5_VLForConditionalGeneration, tf.Qwen2_5_VLProcessor,
        )  # fmt: skip
        vision_config.update(
            hidden_size=32,
            intermediate_size=64,
            out_hidden_size=64,
            fullatt_block_indexes=[0],
            window_size=56,
        )
    else:
        config_class, model_class, processor_class = (
            tf.Qwen2VLConfig, tf.Qwen2VLForConditionalGeneration, tf.Qwen2VLProcessor,
        )  # fmt: skip
        vision_config.update(hidden_size=64, embed_dim=32)
    processor = processor_class(
        image_processor=image_processor,
        tokenizer=tok,
        video_processor=tf.Qwen2VLVideoProcessor(),
        chat_template=CHATML.replace("<|image_pad|>", "<|vision_start|><|image_pad|><|vision_end|>"),
    )
    rope = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}
    config = config_class(
        text_config=text_config(tok, rope_parameters=rope),
        vision_config=vision_config,
        **ids(
            tok,
            image_token_id="<|image_pad|>",
            video_token_id="<|video_pad|>",
            vision_start_token_id="<|vision_start|>",
            vision_end_token_id="<|vision_end|>",
        ),
    )
    return Built(model_class(config), processor)


LLAVA_TEMPLATE = chat_template("{role}: ", "\\n", "assistant:", "<image>\\n")


def llava(siglip: bool = False) -> Built:
    import transformers as tf

    tok = tokenizer(["<pad>", "<s>", "</s>", "<image>"], eos_token="</s>", pad_token="<pad>", bos_token="<s>")
    if siglip:
        image_processor: Any = tf.SiglipImageProcessor(size={"height": IMAGE, "width": IMAGE})
        vision_config = vision(model_type="siglip_vision_model")
        strategy, extra_tokens = "full", 0
    else:
        image_processor = tf.CLIPImageProcessor(
            size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE}
        )
        vision_config = vision(model_type="clip_vision_model")
        strategy, extra_tokens = "default", 1  # CLIP's class token, dropped by "default"
    processor = tf.LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=PATCH,
        vision_feature_select_strategy=strategy,
        num_additional_image_tokens=extra_tokens,
        chat_template=LLAVA_TEMPLATE,
    )
    config = tf.LlavaConfig(
        text_config=text_config(tok, model_type="llama"),
        vision_config=vision_config,
        image_token_index=int(tok.convert_tokens_to_ids("<image>")),
        vision_feature_select_strategy=strategy,
        vision_feature_layer=-1,
        image_seq_length=(IMAGE // PATCH) ** 2,
    )
    return Built(tf.LlavaForConditionalGeneration(config), processor)


def llava_onevision() -> Built:
    import transformers as tf

    tok = tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        {"image_token": "<image>", "video_token": "<video>"},
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    pinpoints = [[IMAGE, IMAGE]]
    processor = tf.LlavaOnevisionProcessor(
        image_processor=tf.LlavaOnevisionImageProcessor(
            size={"height": IMAGE, "width": IMAGE}, image_grid_pinpoints=pinpoints
        ),
        tokenizer=tok,
        video_processor=tf.LlavaOnevisionVideoProcessor(),
        num_image_tokens=(IMAGE // PATCH) ** 2,
        vision_feature_select_strategy="full",
        chat_template=CHATML.replace("<|image_pad|>", "<image>\\n"),
    )
    config = tf.LlavaOnevisionConfig(
        text_config=text_config(tok, model_type="qwen2"),
        vision_config=vision(model_type="siglip_vision_model"),
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        **ids(tok, image_token_index="<image>", video_token_index="<video>"),
    )
    return Built(tf.LlavaOnevisionForConditionalGeneration(config), processor)


GEMMA_TEMPLATE = chat_template(
    "<start_of_turn>{role}\\n", "<end_of_turn>\\n", "<start_of_turn>model\\n", "<start_of_image>"
)


def gemma3() -> Built:
    import transformers as tf

    tok = tokenizer(
        ["<pad>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"],
        {"image_token": "<image_soft_token>", "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>"},
        eos_token="<end_of_turn>",
        pad_token="<pad>",
        bos_token="<bos>",
    )
    processor = tf.Gemma3Processor(
        image_processor=tf.Gemma3ImageProcessor(size={"height": IMAGE, "width": IMAGE}),
        tokenizer=tok,
        image_seq_length=4,
        chat_template=GEMMA_TEMPLATE,
    )
    config = tf.Gemma3Config(
        text_config=text_config(tok, sliding_window=64, query_pre_attn_scalar=16),
        vision_config=vision(),
        mm_tokens_per_image=4,
        **ids(
            tok,
            boi_token_index="<start_of_image>",
            eoi_token_index="<end_of_image>",
            image_token_index="<image_soft_token>",
        ),
    )
    return Built(tf.Gemma3ForConditionalGeneration(config), processor)


def paligemma() -> Built:
    import transformers as tf

    tok = tokenizer(
        ["<pad>", "<bos>", "<eos>"],
        {"image_token": "<image>"},
        eos_token="<eos>",
        pad_token="<pad>",
        bos_token="<bos>",
    )
    image_processor = tf.SiglipImageProcessor(size={"height": IMAGE, "width": IMAGE})
    image_processor.image_seq_length = (IMAGE // PATCH) ** 2
    processor = tf.PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok)  # no chat template
    config = tf.PaliGemmaConfig(
        text_config=text_config(tok, model_type="gemma"),
        vision_config=vision(projection_dim=64),
        projection_dim=64,
        hidden_size=64,
        vocab_size=len(tok),
        image_token_index=int(tok.convert_tokens_to_ids("<image>")),
    )
    return Built(tf.PaliGemmaForConditionalGeneration(config), processor)


def internvl() -> Built:
    import transformers as tf

    named = {"start_image_token": "<img>", "end_image_token": "</img>", "video_token": "<video>"}
    tok = tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        {**named, "context_image_token": "<IMG_CONTEXT>"},
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    processor = tf.InternVLProcessor(
        image_processor=tf.GotOcr2ImageProcessor(
            size={"height": IMAGE, "width": IMAGE}, crop_to_patches=False
        ),
        tokenizer=tok,
        video_processor=tf.InternVLVideoProcessor(),
        image_seq_length=4,
        chat_template=CHATML.replace("<|image_pad|>", "<IMG_CONTEXT>\\n"),
    )
    config = tf.InternVLConfig(
        text_config=text_config(tok, model_type="qwen2"),
        vision_config=vision(image_size=[IMAGE, IMAGE], patch_size=[PATCH, PATCH]),
        image_token_id=int(tok.convert_tokens_to_ids("<IMG_CONTEXT>")),
        image_seq_length=4,
    )
    return Built(tf.InternVLForConditionalGeneration(config), processor)


MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST]' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '[IMG]' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[/INST]' }}{% else %}{{ eos_token }}{% endif %}"
    "{% endfor %}"
)


def mistral3() -> Built:
    import transformers as tf

    tok = tokenizer(
        ["<pad>", "<s>", "</s>", "[INST]", "[/INST]", "[IMG]", "[IMG_BREAK]", "[IMG_END]"],
        eos_token="</s>",
        pad_token="<pad>",
        bos_token="<s>",
    )
    processor = tf.PixtralProcessor(
        image_processor=tf.PixtralImageProcessor(size={"longest_edge": IMAGE}, patch_size=PATCH),
        tokenizer=tok,
        patch_size=PATCH,
        spatial_merge_size=2,
        chat_template=MISTRAL_TEMPLATE,
    )
    config = tf.Mistral3Config(
        text_config=text_config(tok, model_type="mistral"),
        vision_config=vision(model_type="pixtral", head_dim=16, image_size=IMAGE),
        image_token_index=int(tok.convert_tokens_to_ids("[IMG]")),
        spatial_merge_size=2,
    )
    return Built(tf.Mistral3ForConditionalGeneration(config), processor)


SMOL_TEMPLATE = chat_template(
    "<|im_start|>{role}: ", "<end_of_utterance>\\n", "<|im_start|>assistant:", "<image>"
)


@contextmanager
def _num2words_optional() -> Iterator[None]:
    """SmolVLM's processor refuses to be *built* without num2words; the files it saves do not need it.
    Building here lets the tests load it as a user would (and see the missing package then)."""
    import transformers.models.smolvlm.processing_smolvlm as smol

    saved = smol.num2words
    if saved is None:
        smol.num2words = str
    try:
        yield
    finally:
        smol.num2words = saved


def idefics3(smol: bool = False) -> Built:
    import transformers as tf

    grid = ["<global-img>", *(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7))]
    tok = tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", *grid],
        {"image_token": "<image>"},
        vocab=360,
        eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>",
        bos_token="<|im_start|>",
    )
    sizes = {"size": {"longest_edge": IMAGE}, "max_image_size": {"longest_edge": IMAGE}}
    common = {"text_config": text_config(tok, model_type="llama"), "scale_factor": 2}
    image_id = int(tok.convert_tokens_to_ids("<image>"))
    if smol:
        with _num2words_optional():
            processor: Any = tf.SmolVLMProcessor(
                image_processor=tf.SmolVLMImageProcessor(do_image_splitting=False, **sizes),
                tokenizer=tok,
                video_processor=tf.SmolVLMVideoProcessor(),
                image_seq_len=4,
                chat_template=SMOL_TEMPLATE,
            )
        config: Any = tf.SmolVLMConfig(vision_config=vision(), image_token_id=image_id, **common)
        return Built(tf.SmolVLMForConditionalGeneration(config), processor)
    processor = tf.Idefics3Processor(
        image_processor=tf.Idefics3ImageProcessor(do_image_splitting=False, **sizes),
        tokenizer=tok,
        image_seq_len=4,
        chat_template=SMOL_TEMPLATE,
    )
    config = tf.Idefics3Config(vision_config=vision(), image_token_id=image_id, **common)
    return Built(tf.Idefics3ForConditionalGeneration(config), processor)


def minicpm(version: str) -> Built:
    """MiniCPM-V 4.6 through the demo's own builder; 4.7 and OCR with the same tokenizer."""
    import transformers as tf

    from scripts.demo.build import TinySpec, build_config, build_processor, train_tokenizer

    spec = TinySpec(hidden=64, vision_hidden=32, vision_layers=2, image_size=IMAGE, vocab_size=320)
    tok = train_tokenizer(CORPUS, spec.vocab_size)
    processor = build_processor(tok, spec)
    base = build_config(tok, spec).to_dict()
    if version == "4.6":
        config = tf.MiniCPMV4_6Config(**base)
        return Built(tf.MiniCPMV4_6ForConditionalGeneration(config), processor)
    keep = ("text_config", "insert_layer_id", "image_token_id", "video_token_id", "downsample_mode")
    kwargs = {k: base[k] for k in keep}
    kwargs["vision_config"] = {k: base["vision_config"][k] for k in vision()} | {"window_kernel_size": [2, 2]}
    if version == "4.7":
        processor = tf.MiniCPMV4_7Processor(
            image_processor=processor.image_processor,
            video_processor=processor.video_processor,
            tokenizer=tok,
            chat_template=processor.chat_template,
        )
        config = tf.MiniCPMV4_7Config(image_size=IMAGE, **kwargs)
        return Built(tf.MiniCPMV4_7ForConditionalGeneration(config), processor)
    processor = tf.MiniCPMOcrProcessor(
        image_processor=tf.MiniCPMOcrImageProcessor(**processor.image_processor.to_dict()),
        video_processor=tf.MiniCPMOcrVideoProcessor(downsample_mode=spec.downsample_mode),
        tokenizer=tok,
        chat_template=processor.chat_template,
    )
    return Built(tf.MiniCPMOcrForConditionalGeneration(tf.MiniCPMOcrConfig(**kwargs)), processor)


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[[], Built]


FAMILIES: tuple[Family, ...] = (
    Family("minicpmv4_6", lambda: minicpm("4.6")),
    Family("minicpmv4_7", lambda: minicpm("4.7")),
    Family("minicpm_ocr", lambda: minicpm("ocr")),
    Family("qwen2_vl", qwen2_vl),
    Family("qwen2_5_vl", lambda: qwen2_vl(v25=True)),
    Family("llava", llava),
    Family("llava_siglip", lambda: llava(siglip=True)),
    Family("llava_onevision", llava_onevision),
    Family("gemma3", gemma3),
    Family("paligemma", paligemma),
    Family("internvl", internvl),
    Family("mistral3", mistral3),
    Family("idefics3", idefics3),
    Family("smolvlm", lambda: idefics3(smol=True)),
)


def build_family(family: Family, out_dir: Path, state_dict: Path | None = None, seed: int = 0) -> Path:
    """Write ``family``'s tiny model, tokenizer and processor to ``out_dir`` (greedy generation config);
    with ``state_dict``, also ``model.state_dict()`` as one safetensors file there (tied tensors cloned:
    safetensors refuses shared storage)."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    built = family.build()
    model = built.model.eval()
    tok = getattr(built.processor, "tokenizer", built.processor)
    model.generation_config = tf.GenerationConfig(
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, do_sample=False
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    built.processor.save_pretrained(out_dir)
    if state_dict is not None:
        from safetensors.torch import save_file

        save_file({k: v.clone().contiguous() for k, v in model.state_dict().items()}, str(state_dict))
    return out_dir
