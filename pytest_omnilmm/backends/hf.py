"""The in-process transformers backend: native image-text-to-text models and legacy remote-code
``model.chat`` repositories (both in ``models.py``), behind the ``Backend`` protocol.

torch is imported inside methods only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..config import EvalConfig
from ..models import (
    Generated,
    GenerationSettings,
    LoadedModel,
    ModelLoadError,
    ModelRequest,
    _weights_fingerprint,
    generate_batch,
    is_out_of_memory,
    load_model,
    peak_memory_mb,
    resolve_device,
    resolve_dtype,
)
from ..sample import Part


class HFBackend:
    name = "hf"

    def __init__(
        self, config: EvalConfig, loader: Callable[[ModelRequest], LoadedModel] | None = None
    ) -> None:
        self.config = config
        self.loader = loader or load_model  # the ``omnilmm_load_model`` fixture may replace it

    def load(self, request: ModelRequest) -> LoadedModel:
        return self.loader(request)

    def generate(
        self, handle: LoadedModel, prompts: Sequence[tuple[Part, ...]], settings: GenerationSettings
    ) -> list[Generated]:
        results = generate_batch(handle, prompts, settings)
        if handle.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()  # the batch's latency must include the kernels it queued
        return results

    def fingerprint(self, request: ModelRequest) -> str:
        return _weights_fingerprint(request)

    def settings_identity(self) -> Mapping[str, object]:
        try:
            device = resolve_device(self.config.device)
        except ModelLoadError:  # said once, when the model loads
            device = self.config.device
        return {"dtype": str(resolve_dtype(self.config.dtype, device)), "device": device}

    def is_out_of_memory(self, exc: BaseException) -> bool:
        return is_out_of_memory(exc)

    def free_memory(self, device: str) -> None:
        if device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def peak_memory_mb(self, device: str) -> float:
        return peak_memory_mb(device)

    def close(self, handle: LoadedModel) -> None:
        pass  # the engine drops its reference; memory goes with it (then ``free_memory``)
