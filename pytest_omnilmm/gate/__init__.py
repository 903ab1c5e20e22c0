"""The regression gate: a candidate run compared with a baseline, sample by sample, with verdicts.

``stats`` (the tests), ``decide`` (verdicts and Holm), ``compare`` (coverage, the run-wide decision),
``paired`` (one dataset against its baseline), ``checks`` (settings, latency, floors), ``rows`` (the
report's rows), ``baseline`` (baseline files), ``render`` (terminal and markdown), ``api``
(``gate_results``: the one entry point). See docs/gate.md.
"""

from __future__ import annotations

from pytest_omnilmm.config import parse_margin_map, parse_percent

from .api import GateInputError, gate_results
from .checks import GATED_SETTINGS
from .compare import compare
from .decide import FAIL, INCONCLUSIVE, NOT_GATED, PASS, Decision, decide_all
from .render import append_step_summary, render_gate_table, render_markdown
from .rows import CategoryDelta, Flip, GateReport, Row, natural_key
from .settings import INCONCLUSIVE_CHOICES, MODES, GateSettings, normalise_mode
from .stats import (
    PairedStats,
    binom_cdf,
    clopper_pearson,
    holm,
    mcnemar_one_sided_p,
    minimal_detectable_drop,
    paired_stats,
)

__all__ = [
    "FAIL",
    "GATED_SETTINGS",
    "INCONCLUSIVE",
    "INCONCLUSIVE_CHOICES",
    "MODES",
    "NOT_GATED",
    "PASS",
    "CategoryDelta",
    "Decision",
    "Flip",
    "GateInputError",
    "GateReport",
    "GateSettings",
    "PairedStats",
    "Row",
    "append_step_summary",
    "binom_cdf",
    "clopper_pearson",
    "compare",
    "decide_all",
    "gate_results",
    "holm",
    "mcnemar_one_sided_p",
    "minimal_detectable_drop",
    "natural_key",
    "normalise_mode",
    "paired_stats",
    "parse_margin_map",
    "parse_percent",
    "render_gate_table",
    "render_markdown",
]
