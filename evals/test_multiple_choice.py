"""Multiple choice (MMBench-style): the prompt lists lettered options; the answer letter is extracted.

Rows whose index differs by multiples of 1,000,000 are circular copies of one question; the summary
shows circular accuracy (all copies right) beside plain accuracy.
"""

import pytest


@pytest.mark.dataset("demo_mcq", path="data/demo_mcq.tsv", metric="mcq", prompt="mcq")
def test_demo_mcq(sample, generate, score):
    score(generate(sample))


@pytest.mark.dataset("mmbench", metric="mcq", prompt="mcq")  # --data mmbench=MMBench_DEV_EN.tsv
def test_mmbench(sample, generate, score):
    score(generate(sample))
