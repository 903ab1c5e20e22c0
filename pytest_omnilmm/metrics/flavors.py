"""Metric flavours: which published evaluator's definition a score follows.

The references disagree on real inputs (see docs/metrics.md), so every per-sample metric takes a
``flavor`` and refuses one it does not implement instead of silently falling back to another.
"""

from __future__ import annotations

VLMEVALKIT = "vlmevalkit"
VLMEVALKIT_2025_01 = "vlmevalkit-2025.01"
OMNILMM = "omnilmm"

FLAVORS: tuple[str, ...] = (VLMEVALKIT, VLMEVALKIT_2025_01, OMNILMM)
DEFAULT_FLAVOR = VLMEVALKIT

# What each flavour is, in one line, for error messages and the docs.
FLAVOR_SOURCES: dict[str, str] = {
    VLMEVALKIT: "current upstream VLMEvalKit (open-compass/VLMEvalKit)",
    VLMEVALKIT_2025_01: "the VLMEvalKit copy vendored in OpenBMB/MiniCPM-V eval_mm/vlmevalkit",
    OMNILMM: "OpenBMB/MiniCPM-V eval_mm/vqaeval (OmniLMM's own TextVQA / DocVQA scorer)",
}


class MetricError(ValueError):
    """A metric was asked for something it cannot do: unknown name or flavour, unusable sample data."""


def check_flavor(metric: str, flavor: str, supported: tuple[str, ...]) -> str:
    """Return ``flavor`` if ``metric`` implements it; otherwise raise one line naming the choices."""
    if flavor in supported:
        return flavor
    if flavor not in FLAVORS:
        raise MetricError(
            f"unknown metric flavour {flavor!r} for {metric}; {metric} supports: {', '.join(supported)}"
        )
    raise MetricError(
        f"{metric} has no {flavor!r} flavour (that reference does not define it); "
        f"{metric} supports: {', '.join(supported)}"
    )
