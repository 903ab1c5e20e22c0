"""Per-sample metrics in the flavours of the published evaluators, and dataset-level aggregates.

Pure Python (numpy only inside the aggregate functions, imported when they run); nothing here knows
about pytest. See docs/metrics.md for every definition and where the flavours differ.
"""

from __future__ import annotations

from .aggregate import Aggregate, ScoredRow, bootstrap_ci, dataset_aggregates, primary_aggregate_key
from .anls import anls
from .chartqa import relaxed_accuracy
from .flavors import DEFAULT_FLAVOR, FLAVOR_SOURCES, FLAVORS, MetricError
from .judge import Judge, JudgeError
from .mcq import ChoiceScore, extract_choice, multiple_choice
from .ocrbench import ocrbench
from .registry import METRIC_NAMES, Metric, Score, get_metric, warn_few_references
from .vqa import exact_match, normalize_answer, vqa_accuracy
from .yesno import extract_yes_no, yes_no

__all__ = [
    "DEFAULT_FLAVOR",
    "FLAVORS",
    "FLAVOR_SOURCES",
    "METRIC_NAMES",
    "Aggregate",
    "ChoiceScore",
    "Judge",
    "JudgeError",
    "Metric",
    "MetricError",
    "Score",
    "ScoredRow",
    "anls",
    "bootstrap_ci",
    "dataset_aggregates",
    "exact_match",
    "extract_choice",
    "extract_yes_no",
    "get_metric",
    "multiple_choice",
    "normalize_answer",
    "ocrbench",
    "primary_aggregate_key",
    "relaxed_accuracy",
    "vqa_accuracy",
    "warn_few_references",
    "yes_no",
]
