"""OCR: is the text in the image read back? OCRBench containment rules, per category."""

import pytest


@pytest.mark.dataset("demo_ocr", path="data/demo_ocr.tsv", metric="ocrbench")
def test_demo_ocr(sample, generate, score):
    score(generate(sample))


@pytest.mark.dataset("ocrbench", metric="ocrbench")  # --data ocrbench=OCRBench.tsv
def test_ocrbench(sample, generate, score):
    score(generate(sample))
