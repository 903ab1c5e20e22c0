"""pytest-omnilmm: evaluate MiniCPM-V / OmniLMM (and any Hugging Face image-text-to-text) checkpoints
with pytest — accuracy with confidence intervals, latency and throughput, and a regression gate.

The public API is small: ``Sample`` (one question with its images), ``Record`` (one sample's outcome),
``load_dataset`` (read a dataset file in the formats people have) and ``metrics``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .records import Record
from .sample import ImageRef, Sample, SampleError, Text

__all__ = ["ImageRef", "Record", "Sample", "SampleError", "Text", "load_dataset", "metrics"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from . import metrics
    from .datasets import load_dataset


def __getattr__(name: str) -> Any:
    # Readers and metrics load on first use, so `pytest --help` stays fast.
    if name == "load_dataset":
        from .datasets import load_dataset

        return load_dataset
    if name == "metrics":
        import importlib

        return importlib.import_module(".metrics", __name__)
    raise AttributeError(f"module 'pytest_omnilmm' has no attribute {name!r}")
