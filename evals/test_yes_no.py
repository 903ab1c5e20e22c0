"""Yes/no questions, MME-style: two questions per image; acc+ counts an image only if both are right."""

import pytest


@pytest.mark.dataset("demo_yesno", path="data/demo_yesno.tsv", metric="mme", prompt="yes_no")
def test_demo_yesno(sample, generate, score):
    score(generate(sample))


@pytest.mark.dataset("mme", metric="mme", prompt="yes_no")  # --data mme=MME.tsv
def test_mme(sample, generate, score):
    score(generate(sample))
