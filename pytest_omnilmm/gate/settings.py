"""How strict the gate is: one frozen object built from options, ini or env (or by a caller of the API)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from pytest_omnilmm.config import GATE_INCONCLUSIVE, GATE_MODES

MODE_ALIASES = {"strict": "noninferiority"}  # the old name of the mode that must show the drop is small
MODES = tuple(m for m in GATE_MODES if m not in MODE_ALIASES)
INCONCLUSIVE_CHOICES = GATE_INCONCLUSIVE


def normalise_mode(mode: str) -> str:
    mode = mode.strip().lower()
    mode = MODE_ALIASES.get(mode, mode)
    if mode not in MODES:
        choices = ", ".join([*MODES, *MODE_ALIASES])
        raise ValueError(f"--gate: unknown mode {mode!r}; choose one of: {choices}")
    return mode


@dataclass(frozen=True)
class GateSettings:
    """The gate's options; every field has the plugin's default."""

    max_drop: float = 0.01
    per_metric_max_drop: Mapping[str, float] = field(default_factory=dict)  # dataset or metric -> margin
    mode: str = "significant"
    min_scores: Mapping[str, float] = field(default_factory=dict)  # dataset or metric -> absolute floor
    max_slowdown: float | None = None  # fraction: 0.10 fails a run more than 10 % slower
    alpha: float = 0.05  # one-sided level of every test; Holm keeps the run's false-alarm rate <= alpha
    inconclusive: str = "fail"  # what an inconclusive dataset does to the run: "fail" or "pass"
    allow_partial: bool = False  # gate on the samples both runs have instead of failing on missing ones

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", normalise_mode(self.mode))
        if self.inconclusive not in INCONCLUSIVE_CHOICES:
            raise ValueError(f"--gate-inconclusive: choose fail or pass, got {self.inconclusive!r}")
        if not (math.isfinite(self.max_drop) and self.max_drop >= 0):
            raise ValueError(
                f"--max-drop: must be a number >= 0 (an absolute score drop), got {self.max_drop}"
            )
        for name, margin in self.per_metric_max_drop.items():
            if not (math.isfinite(margin) and margin >= 0):
                raise ValueError(f"max-drop for {name!r}: must be a number >= 0, got {margin}")
        if self.max_slowdown is not None and not (
            math.isfinite(self.max_slowdown) and self.max_slowdown >= 0
        ):
            raise ValueError(f"--max-slowdown: must be >= 0 (e.g. 10%), got {self.max_slowdown}")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"gate alpha must be between 0 and 0.5 (e.g. 0.05), got {self.alpha}")
        # Read-only views: the settings object is shared and must not change under anyone.
        object.__setattr__(self, "per_metric_max_drop", MappingProxyType(dict(self.per_metric_max_drop)))
        object.__setattr__(self, "min_scores", MappingProxyType(dict(self.min_scores)))

    @property
    def level(self) -> float:
        """The two-sided confidence level of the CIs shown (0.95 for alpha 0.05)."""
        return 1 - self.alpha

    @property
    def inconclusive_fails(self) -> bool:
        return self.inconclusive == "fail"

    def margin_for(self, dataset: str, metric: str) -> float:
        """A dataset's own margin wins over its metric's, which wins over the global one."""
        for key in (dataset, metric):
            if key in self.per_metric_max_drop:
                return float(self.per_metric_max_drop[key])
        return self.max_drop
