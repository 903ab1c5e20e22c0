"""Load a model + processor for one checkpoint, and run one batch of generation on it.

Two kinds of model:
- ``native``: any architecture transformers maps to ``AutoModelForImageTextToText`` (MiniCPM-V 4.6 /
  4.7 / OCR, Qwen-VL, LLaVA, Gemma 3, PaliGemma, ...). Prompts go through the processor's chat template, or,
  for a processor without one, are a prefix with its image token (``generation.render_prompt``); batches
  are left padded.
- ``legacy``: MiniCPM-V 2.x / MiniCPM-o 2.6 repositories whose own code provides
  ``model.chat(image=, msgs=, tokenizer=)``. Their code runs only with ``--trust-remote-code``.

torch and transformers are imported inside functions: this module is imported lazily by the plugin.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .generation import (
    has_chat_template,
    image_placeholder,
    images_in_order,
    legacy_msgs,
    render_prompt,
)
from .packages import missing_package_line
from .sample import ImageRef, Part, SampleError, Text


class ModelLoadError(Exception):
    """The model cannot be loaded as asked; one line saying why and what to do."""


class MissingPackage(ModelLoadError):
    """A package the model's code or processor imports is not installed: nothing of this run can change
    that, so the line is said once and the checkpoint's other samples are skipped, pointing at it."""


@dataclass(frozen=True)
class ModelRequest:
    label: str
    model_path: str  # "" when the checkpoint is a standalone save_pretrained directory
    ckpt: Path | None
    standalone: bool
    device: str
    dtype: str
    trust_remote_code: bool
    allow_partial: bool


@dataclass
class LoadedModel:
    """A model ready to generate. Not frozen: it owns torch objects."""

    request: ModelRequest
    model: Any
    processor: Any
    kind: str  # "native" | "legacy"
    fingerprint: str
    load_time_s: float
    device: str
    dtype: str
    device_name: str
    replaced_tensors: int | None  # tensors a --ckpt replaced (None: no checkpoint applied)
    total_tensors: int


@dataclass(frozen=True)
class GenerationSettings:
    method: str
    max_new_tokens: int
    num_beams: int
    max_prompt_tokens: int | None = None  # None: the model's context length less max_new_tokens


@dataclass(frozen=True)
class Generated:
    """One sample's output of a batch call. ``error`` set means only this sample failed.

    ``ttft_s``: seconds from the start of the call (preprocessing included) to the first generated token,
    as the streamer interface sees it; None where generation cannot stream (beam search, legacy chat).
    """

    prediction: str | None
    prompt_tokens: int = 0
    generated_tokens: int = 0
    error: str | None = None
    ttft_s: float | None = None


class FirstTokenClock:
    """A generate() streamer that notes when the first new token arrives (its first put is the prompt)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.puts = 0
        self.ttft_s: float | None = None

    def put(self, value: Any) -> None:
        self.puts += 1
        if self.puts == 2:
            self.ttft_s = time.perf_counter() - self.started

    def end(self) -> None:
        pass


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def device_name(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda"):
        return str(torch.cuda.get_device_name(torch.device(device)))
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def _read_config(model_path: str) -> dict[str, Any]:
    local = Path(model_path) / "config.json"
    if local.is_file():
        path = local
    elif Path(model_path).is_absolute():
        raise ModelLoadError(
            f"no model at {model_path} (the bundled demo model is missing?); reinstall pytest-omnilmm "
            "or pass --model_path"
        )
    else:
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(model_path, "config.json"))
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: config.json is not readable JSON ({exc})") from None


def model_kind(model_path: str, trust_remote_code: bool) -> str:
    """``native`` when transformers knows the architecture; ``legacy`` for remote-code repos."""
    from transformers import CONFIG_MAPPING

    config = _read_config(model_path)
    model_type = config.get("model_type")
    if model_type in CONFIG_MAPPING:
        return "native"
    if "auto_map" in config:
        if not trust_remote_code:
            raise ModelLoadError(
                f"{model_path}: model_type {model_type!r} needs the repository's own Python code "
                "(e.g. MiniCPM-V 2.x / MiniCPM-o 2.6); rerun with --trust-remote-code if you trust it"
            )
        return "legacy"
    raise ModelLoadError(
        f"{model_path}: transformers does not know model_type {model_type!r} and the repository ships no "
        "code for it; upgrade transformers or check --model_path"
    )


def _weights_fingerprint(request: ModelRequest) -> str:
    from .checkpoint import fingerprint, fingerprint_model_dir, inspect_checkpoint

    h = hashlib.sha256()
    if request.model_path:
        if Path(request.model_path).is_dir():
            h.update(b"base:" + fingerprint_model_dir(Path(request.model_path)).encode())
        else:
            h.update(b"hub:" + request.model_path.encode())
    if request.ckpt is not None:
        h.update(b"ckpt:" + fingerprint(inspect_checkpoint(request.ckpt)).encode())
    return h.hexdigest()


@contextlib.contextmanager
def _missing_packages(source: str, what: str) -> Iterator[None]:
    """A package the model's code or its processor needs, missing here: one line naming it and the pip
    command, said once (the pool keeps the failure) instead of an ImportError on every sample."""
    try:
        yield
    except ImportError as exc:
        raise MissingPackage(missing_package_line(exc, source, what)) from None


def _check_prompt_format(processor: Any, source: str) -> None:
    """A processor without a chat template takes a prefix prompt, which needs its image token."""
    if not has_chat_template(processor) and image_placeholder(processor) is None:
        raise ModelLoadError(
            f"{source}: the processor ({type(processor).__name__}) has no chat template and declares no "
            "image token (processor.image_token), so prompts cannot say where images go; add a "
            "chat_template.jinja to the model directory"
        )


def load_model(request: ModelRequest) -> LoadedModel:
    """Load base model + processor, apply the checkpoint strictly, move to the device."""
    import torch

    from .checkpoint import apply_checkpoint, inspect_checkpoint

    started = time.perf_counter()
    device = resolve_device(request.device)
    torch_dtype = resolve_dtype(request.dtype, device)
    source = str(request.ckpt) if request.standalone else request.model_path
    kind = model_kind(source, request.trust_remote_code)
    if kind == "native":
        from transformers import AutoModelForImageTextToText, AutoProcessor

        with _missing_packages(source, "model"):
            model, info = AutoModelForImageTextToText.from_pretrained(
                source, dtype=torch_dtype, trust_remote_code=False, output_loading_info=True
            )
        missing = list(info.get("missing_keys") or [])
        if missing:
            raise ModelLoadError(
                f"{source}: {len(missing)} weights are missing from the model files (e.g. {missing[0]}) and "
                "would be randomly initialised; check the directory is complete"
            )
        with _missing_packages(source, "processor"):
            processor = AutoProcessor.from_pretrained(source, trust_remote_code=False)
        _check_prompt_format(processor, source)
        tokenizer = getattr(processor, "tokenizer", processor)
        tokenizer.padding_side = "left"
    else:
        from transformers import AutoModel, AutoTokenizer

        with _missing_packages(source, "model"):
            model = AutoModel.from_pretrained(source, dtype=torch_dtype, trust_remote_code=True)
            processor = AutoTokenizer.from_pretrained(source, trust_remote_code=True)

    replaced: int | None = None
    total = len({id(t) for t in model.state_dict().values()})
    if request.ckpt is not None and not request.standalone:
        report = apply_checkpoint(
            model, inspect_checkpoint(request.ckpt), allow_partial=request.allow_partial
        )
        replaced, total = report.replaced, report.total
        model = report.model  # the merged model for a PEFT adapter, else the same object
    model = model.to(device).eval()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return LoadedModel(
        request=request,
        model=model,
        processor=processor,
        kind=kind,
        fingerprint=_weights_fingerprint(request),
        load_time_s=time.perf_counter() - started,
        device=device,
        dtype=str(torch_dtype).removeprefix("torch."),
        device_name=device_name(device),
        replaced_tensors=replaced,
        total_tensors=total,
    )


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA out-of-memory, and the CPU allocator's failure, which torch raises as a plain RuntimeError
    (``[enforce fail at alloc_cpu.cpp] ... DefaultCPUAllocator: can't allocate memory: ...``)."""
    import torch

    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    message = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in message
        or "can't allocate memory" in message
        or "cannot allocate memory" in message
    )


# Tokenize at most this many characters per allowed token before judging a prompt: no tokenizer here
# packs more into one token, so a multi-MB field is refused after reading a bounded prefix.
_CHARS_PER_TOKEN_BOUND = 16


def context_length(model: Any) -> int | None:
    """The text model's position limit as its config declares it (None when it declares none)."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    value = getattr(text_config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def prompt_limit(loaded: LoadedModel, settings: GenerationSettings) -> tuple[int | None, str]:
    """The most prompt tokens a sample may have, and where that limit comes from (for the message)."""
    limits: list[tuple[int, str]] = []
    if settings.max_prompt_tokens is not None:
        limits.append((settings.max_prompt_tokens, "--max-prompt-tokens"))
    context = context_length(loaded.model)
    if context is not None:
        room = max(1, context - settings.max_new_tokens)
        limits.append(
            (room, f"the model's context {context} less --max-new-tokens {settings.max_new_tokens}")
        )
    if not limits:
        return None, ""
    return min(limits)


def prompt_length_error(tokenizer: Any, text: str, limit: int | None, source: str) -> str | None:
    """Why ``text`` is too long for ``limit`` tokens, or None; never tokenizes more than a bounded prefix
    unless the prefix is under the limit."""
    if limit is None:
        return None
    bound = (limit + 1) * _CHARS_PER_TOKEN_BOUND
    head = text[:bound]
    count = len(tokenizer(head, add_special_tokens=False)["input_ids"])
    exact = len(head) == len(text)
    if count <= limit and not exact:
        count = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        exact = True
    if count <= limit:
        return None
    measured = (
        f"{count:,} tokens"
        if exact
        else f"more than {limit:,} tokens (its first {len(head):,} characters alone "
        f"are {count:,} tokens; {len(text):,} characters in all)"
    )
    return (
        f"prompt too long: {measured}, limit {limit:,} ({source}); this sample was not generated — "
        "shorten the field or raise --max-prompt-tokens if the model takes more"
    )


def _load_images(
    parts_list: Sequence[tuple[Part, ...]], method: str
) -> tuple[list[list[Any]], list[str | None]]:
    """Decode each sample's images; a sample whose image fails gets an error, the others go on."""
    images: list[list[Any]] = []
    errors: list[str | None] = []
    for parts in parts_list:
        try:
            images.append([ref.load() for ref in images_in_order(parts, method)])
            errors.append(None)
        except SampleError as exc:
            images.append([])
            errors.append(str(exc))
    return images, errors


def generate_batch(
    loaded: LoadedModel, parts_list: Sequence[tuple[Part, ...]], settings: GenerationSettings
) -> list[Generated]:
    """Generate answers for a batch of prompts (one call, left padded). Greedy unless beams > 1.

    A prompt longer than the limit (see ``prompt_limit``) fails alone, before its images are decoded.
    """
    limit, source = prompt_limit(loaded, settings)
    tokenizer = getattr(loaded.processor, "tokenizer", loaded.processor)
    too_long = [
        prompt_length_error(tokenizer, _prompt_text(loaded, parts, settings.method), limit, source)
        for parts in parts_list
    ]
    images, errors = _load_images(
        [() if err else parts for parts, err in zip(parts_list, too_long, strict=True)], settings.method
    )
    errors = [long or err for long, err in zip(too_long, errors, strict=True)]
    live = [i for i, err in enumerate(errors) if err is None]
    results: list[Generated] = [Generated(None, error=err) for err in errors]
    if not live:
        return results
    if loaded.kind == "legacy":
        for i in live:
            results[i] = _generate_legacy(loaded, parts_list[i], images[i], settings)
        return results
    outputs = _generate_native(loaded, [parts_list[i] for i in live], [images[i] for i in live], settings)
    for i, out in zip(live, outputs, strict=True):
        results[i] = out
    return results


def _prompt_text(loaded: LoadedModel, parts: tuple[Part, ...], method: str) -> str:
    """The text the tokenizer will see (image placeholders not yet expanded into image tokens)."""
    if loaded.kind == "legacy":
        return "\n".join(p.text for p in parts if isinstance(p, Text))
    return render_prompt(loaded.processor, parts, method)


def _generate_native(
    loaded: LoadedModel,
    parts_list: Sequence[tuple[Part, ...]],
    images: list[list[Any]],
    settings: GenerationSettings,
) -> list[Generated]:
    import torch

    started = time.perf_counter()
    processor = loaded.processor
    texts = [render_prompt(processor, parts, settings.method) for parts in parts_list]
    kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
    if any(images):
        kwargs["images"] = images
    inputs = processor(**kwargs).to(loaded.device)
    if "pixel_values" in inputs and loaded.dtype != "float32":
        inputs["pixel_values"] = inputs["pixel_values"].to(loaded.model.dtype)
    clock = FirstTokenClock(started) if settings.num_beams == 1 else None
    with torch.inference_mode():
        out = loaded.model.generate(
            **inputs,
            max_new_tokens=settings.max_new_tokens,
            num_beams=settings.num_beams,
            do_sample=False,
            streamer=clock,
        )
    ttft = clock.ttft_s if clock is not None else None
    prompt_len = inputs["input_ids"].shape[1]
    new_tokens = out[:, prompt_len:]
    tokenizer = getattr(processor, "tokenizer", processor)
    stop_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    results = []
    for row, mask in zip(new_tokens.tolist(), inputs["attention_mask"].sum(dim=1).tolist(), strict=True):
        kept: list[int] = []
        for tok in row:
            if tok in stop_ids:
                break
            kept.append(tok)
        text = tokenizer.decode(kept, skip_special_tokens=True).strip()
        results.append(Generated(text, prompt_tokens=int(mask), generated_tokens=len(kept), ttft_s=ttft))
    return results


def _generate_legacy(
    loaded: LoadedModel, parts: tuple[Part, ...], images: list[Any], settings: GenerationSettings
) -> Generated:
    queue = iter(images)

    def next_image(_: ImageRef) -> Any:
        return next(queue)

    msgs = legacy_msgs(parts, settings.method, next_image)
    answer = loaded.model.chat(
        image=None,
        msgs=msgs,
        tokenizer=loaded.processor,
        sampling=False,
        max_new_tokens=settings.max_new_tokens,
        num_beams=settings.num_beams,
    )
    if not isinstance(answer, str):
        answer = str(answer)
    tokens = len(loaded.processor(answer, add_special_tokens=False)["input_ids"])
    return Generated(answer.strip(), prompt_tokens=0, generated_tokens=tokens)


def peak_memory_mb(device: str) -> float:
    """CUDA max allocated on GPU, peak RSS of this process on CPU."""
    if device.startswith("cuda"):
        import torch

        return float(torch.cuda.max_memory_allocated(torch.device(device))) / 2**20
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(rss) / (2**20 if sys.platform == "darwin" else 2**10)
