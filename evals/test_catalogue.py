"""Every catalogue benchmark (``python -m pytest_omnilmm list``): its bundled synthetic sample, and the
real file when ``--data NAME=PATH`` or ``--lmudata DIR`` (VLMEvalKit's ``LMUData``) provides it.

``pytest evals/ -k mmstar`` runs the MMStar sample (``demo_mmstar``) and, given the file, MMStar itself.
Benchmarks whose eval lives in another file (MME, MMBench, OCRBench, ChartQA) are declared there.
With a judge model (``--judge-api-base URL --judge-model NAME``), MathVista_MINI and MMVet are graded as
VLMEvalKit grades them (metrics ``mathvista`` and ``mmvet_gpt``); without one, by their rule-based metric.
"""

from pathlib import Path

import pytest

from pytest_omnilmm.catalogue import CATALOGUE, judged_metrics

_HERE = Path(__file__).parent
_JUDGED = judged_metrics()  # dataset name -> its judge-graded metric


def _markers():
    marks = []
    for b in CATALOGUE:
        kw = {"metric": b.metric, "prompt": b.prompt, "prepare": b.prepare, "format": "vlmeval_tsv"}
        if b.sample is not None and b.sample.startswith("data/vlmeval/"):
            marks.append(pytest.mark.dataset(b.sample_name, path=b.sample, **kw))
        if b.evaluated_by == "evals/test_catalogue.py":
            marks.append(pytest.mark.dataset(b.name, **kw))
    return marks


def _apply(fn):
    for mark in reversed(_markers()):
        fn = mark(fn)
    return fn


@_apply
def test_benchmark(sample, generate, score, omnilmm_judge):
    score(generate(sample), metric=_JUDGED.get(sample.dataset) if omnilmm_judge is not None else None)
