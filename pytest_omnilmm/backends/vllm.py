"""Offline vLLM (``vllm.LLM``) with multimodal inputs: batching is left to vLLM, ``--tensor-parallel-size``
GPUs per model. Only usable where vLLM is importable (it pins its own torch, so not beside this project's
default environment: see DESIGN.md); elsewhere ``--backend vllm`` is one line saying so.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import EvalConfig
from ..generation import build_messages, images_in_order
from ..models import Generated, GenerationSettings, ModelLoadError, ModelRequest, _weights_fingerprint
from ..sample import Part, SampleError

NOT_INSTALLED = (
    "--backend vllm: vLLM is not importable here; install it in its own environment "
    "(pip install 'pytest-omnilmm[vllm]', it pins its own torch) or serve the model with "
    "`vllm serve` and use --backend openai"
)


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except Exception:
        return False
    return True


@dataclass
class VLLMHandle:
    request: ModelRequest
    llm: Any
    load_time_s: float
    device: str = "cuda"
    dtype: str = ""
    device_name: str = "vllm"
    replaced_tensors: int | None = None
    total_tensors: int = 0


class VLLMBackend:
    name = "vllm"

    def __init__(self, config: EvalConfig) -> None:
        if not vllm_available():
            raise ModelLoadError(NOT_INSTALLED)
        self.config = config

    def load(self, request: ModelRequest) -> VLLMHandle:
        from vllm import LLM

        if request.ckpt is not None and not request.standalone:
            raise ModelLoadError(
                f"--ckpt {request.ckpt}: vLLM loads whole model folders; save one and pass it"
            )
        started = time.perf_counter()
        source = str(request.ckpt) if request.standalone else request.model_path
        llm = LLM(
            model=source,
            tensor_parallel_size=self.config.tensor_parallel_size,
            trust_remote_code=request.trust_remote_code,
            dtype=request.dtype,
            limit_mm_per_prompt={"image": 8},
        )
        return VLLMHandle(request, llm, time.perf_counter() - started, dtype=request.dtype)

    def generate(
        self, handle: VLLMHandle, prompts: Sequence[tuple[Part, ...]], settings: GenerationSettings
    ) -> list[Generated]:
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=settings.max_new_tokens)
        results: list[Generated] = [Generated(None)] * len(prompts)
        conversations, live = [], []
        for i, parts in enumerate(prompts):
            try:
                images = [ref.load() for ref in images_in_order(parts, settings.method)]
            except SampleError as exc:
                results[i] = Generated(None, error=str(exc))
                continue
            messages = build_messages(parts, settings.method)
            queue = iter(images)
            for item in messages[0]["content"]:
                if item["type"] == "image":
                    item.clear()
                    item.update({"type": "image_pil", "image_pil": next(queue)})
            conversations.append(messages)
            live.append(i)
        if conversations:
            outputs = handle.llm.chat(conversations, params, use_tqdm=False)
            for i, out in zip(live, outputs, strict=True):
                completion = out.outputs[0]
                results[i] = Generated(
                    completion.text.strip(),
                    prompt_tokens=len(out.prompt_token_ids or []),
                    generated_tokens=len(completion.token_ids),
                )
        return results

    def fingerprint(self, request: ModelRequest) -> str:
        return "vllm:" + _weights_fingerprint(request)

    def settings_identity(self) -> Mapping[str, object]:
        return {"dtype": self.config.dtype, "tensor_parallel_size": self.config.tensor_parallel_size}

    def is_out_of_memory(self, exc: BaseException) -> bool:
        return False  # vLLM plans its own memory and batches itself

    def free_memory(self, device: str) -> None:
        pass

    def peak_memory_mb(self, device: str) -> float:
        return 0.0

    def close(self, handle: VLLMHandle) -> None:
        pass
