"""Document understanding: ANLS on DocVQA; ChartQA relaxed accuracy when you point at ChartQA data."""

import pytest


@pytest.mark.dataset("docvqa", path="data/docvqa/val_v1.0_withQT.json", metric="anls")
def test_docvqa(sample, generate, score):
    score(generate(sample))


@pytest.mark.dataset("chartqa", metric="relaxed_accuracy")  # no bundled file: --data chartqa=ChartQA_TEST.tsv
def test_chartqa(sample, generate, score):
    score(generate(sample))
