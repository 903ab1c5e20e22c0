"""VQA-style evals: a short free-form answer scored against the references.

The bundled files are the demo datasets; point at your own copies with e.g.
``--data textvqa=/data/TextVQA/TextVQA_0.5.1_val.json``.
"""

import pytest


@pytest.mark.dataset("demo_vqa", path="data/demo_vqa.jsonl", metric="exact_match")
def test_demo_vqa(sample, generate, score):
    score(generate(sample))


@pytest.mark.dataset("textvqa", path="data/textvqa/TextVQA_0.5.1_val.json", metric="vqa_accuracy")
def test_textvqa(sample, generate, score):
    score(generate(sample))
