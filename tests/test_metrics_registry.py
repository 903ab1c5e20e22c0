"""The metric registry: names, flavours, per-sample scores on Samples, and errors for humans."""

from __future__ import annotations

import pytest

from pytest_omnilmm.metrics import (
    DEFAULT_FLAVOR,
    FLAVORS,
    METRIC_NAMES,
    MetricError,
    Score,
    anls,
    get_metric,
    vqa_accuracy,
)
from pytest_omnilmm.sample import Sample, Text


def _sample(**kwargs: object) -> Sample:
    return Sample(id="s1", dataset="d", parts=(Text("q"),), **kwargs)  # type: ignore[arg-type]


def test_names_and_aggregations() -> None:
    assert set(METRIC_NAMES) == {
        "vqa_accuracy",
        "anls",
        "exact_match",
        "relaxed_accuracy",
        "mcq",
        "yes_no",
        "mme",
        "ocrbench",
        "pope",
        "hallusion",
        "mathvista_prefetch",
        "mathvista",
        "mmvet_gpt",
    }
    assert DEFAULT_FLAVOR == "vlmevalkit"
    assert FLAVORS[0] == DEFAULT_FLAVOR
    kinds = {name: get_metric(name).aggregate for name in METRIC_NAMES}
    assert kinds["mme"] == "mme" and kinds["mcq"] == "circular" and kinds["anls"] == "mean"
    assert get_metric("vqa_accuracy").flavors == ("vlmevalkit", "vlmevalkit-2025.01", "omnilmm")
    assert get_metric("mcq").flavors == ("vlmevalkit", "vlmevalkit-2025.01")


def test_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(MetricError) as info:
        get_metric("bleu")
    message = str(info.value)
    assert "unknown metric 'bleu'" in message and "vqa_accuracy" in message and "\n" not in message


def test_flavour_errors_are_one_line_naming_the_supported_flavours() -> None:
    sample = _sample(references=("a",))
    with pytest.raises(MetricError) as info:
        get_metric("ocrbench").score("a", sample, "omnilmm")
    assert str(info.value) == (
        "ocrbench has no 'omnilmm' flavour (that reference does not define it); "
        "ocrbench supports: vlmevalkit, vlmevalkit-2025.01"
    )
    with pytest.raises(MetricError, match=r"unknown metric flavour 'vlmeval'.*supports: vlmevalkit, "):
        vqa_accuracy("a", ["a"], "vlmeval")
    with pytest.raises(ValueError):  # MetricError is a ValueError
        anls("a", ["a"], "nope")


def test_scores_come_from_the_sample_fields() -> None:
    vqa = get_metric("vqa_accuracy").score("two", _sample(references=("2",) * 4), "omnilmm")
    assert vqa == Score(1.0, None)
    choice = _sample(references=("B",), choices=(("A", "cat"), ("B", "dog")))
    assert get_metric("mcq").score("(B)", choice) == Score(1.0, "extracted B")
    unreadable = get_metric("mcq").score("no idea", choice)
    assert unreadable.value == 0.0 and unreadable.note is not None
    assert unreadable.note.startswith("unparseable answer")
    yn = _sample(references=("No",))
    assert get_metric("yes_no").score("No.", yn) == Score(1.0, "extracted No")
    assert get_metric("yes_no").score("hmm", yn).note == "unparseable answer: neither or both of yes/no"
    hme = _sample(references=("x^{2}",), category="Handwritten Mathematical Expression Recognition")
    assert get_metric("ocrbench").score("$x ^ {2}$", hme).value == 1.0
    chart = _sample(references=("100",))
    assert get_metric("relaxed_accuracy").score("95", chart, "vlmevalkit-2025.01").value == 0.0
    assert get_metric("exact_match").score("Paris", _sample(references=("paris",))).value == 1.0
    assert get_metric("anls").score("paris", _sample(references=("Paris",))).value == 1.0


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_a_sample_without_references_is_not_scorable(name: str) -> None:
    # A test split (e.g. DocVQA test) has predictions only: no score, and a note that says why.
    score = get_metric(name).score("anything", _sample(choices=(("A", "x"), ("B", "y"))))
    assert score.value is None and score.note is not None and "no references" in score.note


def test_bad_sample_data_raises() -> None:
    with pytest.raises(MetricError, match="no choices"):
        get_metric("mcq").score("A", _sample(references=("A",)))
    with pytest.raises(MetricError, match="must be 'Yes' or 'No'"):
        get_metric("mme").score("yes", _sample(references=("Perhaps",)))
