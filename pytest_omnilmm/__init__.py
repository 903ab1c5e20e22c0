"""pytest-omnilmm: evaluate MiniCPM-V / OmniLMM (and any Hugging Face image-text-to-text) checkpoints
with pytest — accuracy with confidence intervals, latency and throughput, and a regression gate.

The public API is small: ``Sample`` (one question with its images), ``Record`` (one sample's outcome),
``load_dataset`` (read a dataset file in the formats people have), ``metrics``, and the registries
``register_metric`` (a metric by name) and ``register_reader`` (a dataset format), and
``gate_results`` (a candidate's per-sample results against a baseline: the regression gate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .records import Record
from .sample import ImageRef, Sample, SampleError, Text

__all__ = [
    "ImageRef",
    "Record",
    "Sample",
    "SampleError",
    "Text",
    "gate_results",
    "load_dataset",
    "metrics",
    "register_metric",
    "register_reader",
]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from . import metrics
    from .datasets import load_dataset, register_reader
    from .gate import gate_results
    from .metrics.registry import register_metric


def __getattr__(name: str) -> Any:
    # Readers and metrics load on first use, so `pytest --help` stays fast.
    if name == "load_dataset":
        from .datasets import load_dataset

        return load_dataset
    if name == "register_reader":
        from .datasets import register_reader

        return register_reader
    if name == "gate_results":
        from .gate import gate_results

        return gate_results
    if name == "register_metric":
        from .metrics.registry import register_metric

        return register_metric
    if name == "metrics":
        import importlib

        return importlib.import_module(".metrics", __name__)
    raise AttributeError(f"module 'pytest_omnilmm' has no attribute {name!r}")
