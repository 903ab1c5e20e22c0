"""The seam between the engine and whatever generates: a small ``Backend`` protocol and its registry.

The engine (batching, out-of-memory back-off, resume keys, timings, records) talks to a backend only
through this protocol, so a new engine or server is one module. Built in: ``hf`` (in-process
transformers, ``backends/hf.py``). Third-party packages add one through the entry point group
``pytest_omnilmm.backends`` whose value is a factory ``(EvalConfig) -> Backend``::

    [project.entry-points."pytest_omnilmm.backends"]
    echo = "my_package.echo:EchoBackend"

Nothing here imports torch or transformers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import import_module, metadata
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..config import EvalConfig
from ..models import Generated, GenerationSettings, ModelRequest
from ..sample import Part

ENTRY_POINT_GROUP = "pytest_omnilmm.backends"
BUILTIN: Mapping[str, str] = {
    "hf": "pytest_omnilmm.backends.hf:HFBackend",
    "openai": "pytest_omnilmm.backends.openai:OpenAIBackend",
    "vllm": "pytest_omnilmm.backends.vllm:VLLMBackend",
}

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "Backend",
    "BackendError",
    "Generated",
    "GenerationSettings",
    "Handle",
    "ModelRequest",
    "available_backends",
    "make_backend",
]


class BackendError(Exception):
    """The backend cannot be found or started as asked; one line saying why and what to do."""


@runtime_checkable
class Handle(Protocol):
    """What ``Backend.load`` returns: a loaded model (or a connection), described for the records."""

    request: ModelRequest
    load_time_s: float
    device: str
    dtype: str
    device_name: str
    replaced_tensors: int | None  # tensors a --ckpt replaced (None: no checkpoint applied)
    total_tensors: int


@runtime_checkable
class Backend(Protocol):
    """One way to generate. Every method but ``generate`` is cheap; ``generate`` sees one batch."""

    name: str

    def load(self, request: ModelRequest) -> Handle:
        """Load (or connect to) the model of one checkpoint; raise ``ModelLoadError`` with one line."""
        ...

    def generate(
        self, handle: Handle, prompts: Sequence[tuple[Part, ...]], settings: GenerationSettings
    ) -> list[Generated]:
        """Answers for a batch of prompts (text and images in order), one ``Generated`` per prompt: text,
        token counts and time to first token; a sample that fails alone carries ``error``."""
        ...

    def fingerprint(self, request: ModelRequest) -> str:
        """What identifies the weights, without loading them: part of every resume key."""
        ...

    def settings_identity(self) -> Mapping[str, object]:
        """Settings resolved on this machine that change answers (e.g. dtype/device for "auto")."""
        ...

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """True when ``exc`` means the batch did not fit: the engine halves it and retries."""
        ...

    def free_memory(self, device: str) -> None:
        """Return cached memory after a failed batch or a released model (the engine gc's first)."""
        ...

    def peak_memory_mb(self, device: str) -> float: ...

    def close(self, handle: Handle) -> None:
        """Release one loaded model or connection (the engine keeps at most one at a time)."""
        ...


Factory = Callable[[EvalConfig], Backend]


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available_backends() -> list[str]:
    return sorted({*BUILTIN, *_entry_points()})


def _load_factory(name: str) -> Factory:
    if name in BUILTIN:
        module, _, attr = BUILTIN[name].partition(":")
        return getattr(import_module(module), attr)  # type: ignore[no-any-return]
    entry = _entry_points().get(name)
    if entry is None:
        raise BackendError(
            f"--backend {name}: no such backend; installed: {', '.join(available_backends())} "
            f"(third-party backends register under the entry point group {ENTRY_POINT_GROUP!r})"
        )
    try:
        return entry.load()  # type: ignore[no-any-return]
    except Exception as exc:  # a broken third-party package: say which, in one line
        raise BackendError(f"--backend {name}: {entry.value} failed to import: {exc}") from None


def make_backend(config: EvalConfig, **hf_options: object) -> Backend:
    """The backend ``config.backend`` names. ``hf_options`` (e.g. ``loader``) go to the built-in hf."""
    factory = _load_factory(config.backend)
    backend = factory(config, **hf_options) if config.backend == "hf" else factory(config)  # type: ignore[call-arg]
    missing = [
        m for m in ("load", "generate", "fingerprint", "close") if not callable(getattr(backend, m, None))
    ]
    if missing:
        raise BackendError(f"--backend {config.backend}: {type(backend).__name__} lacks {', '.join(missing)}")
    return backend


def weights_path(request: ModelRequest) -> Path | None:
    """The local weights a request names (for messages), if any."""
    return request.ckpt or (Path(request.model_path) if request.model_path else None)
