"""One sample that cannot be generated fails alone (issue 13, points 8 and 9): a prompt over the model's
context or ``--max-prompt-tokens`` is refused before tokenizing it whole, and the CPU allocator's failure is
backed off like CUDA's out-of-memory. The model is real; the allocator failure is raised by a wrapper (a real
one cannot be provoked safely on a shared machine) with the exact message torch's CPU allocator gives."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from pytest_omnilmm.records import Record

from .test_bench import run


def make_long(project: pytest.Pytester, index: int, question: str) -> None:
    path = project.path / "tiny.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[index]["question"] = question
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def by_id(records: list[Record]) -> dict[str, Record]:
    return {r.sample_id: r for r in records}


def test_a_multi_megabyte_question_fails_alone_with_its_token_count_and_the_limit(
    eval_project: pytest.Pytester, tiny_model: Path
) -> None:
    make_long(eval_project, 2, "What colour is the shape? " * 120_000)  # 3.1 MB
    started = time.perf_counter()
    outcome, records = run(eval_project, tiny_model, "huge", "--batch-size", "4")
    elapsed = time.perf_counter() - started
    outcome.assert_outcomes(passed=5, failed=1)
    got = by_id(records)
    error = got["s2"].error or ""
    assert got["s2"].prediction is None
    assert "prompt too long: more than " in error and "limit " in error and "context" in error
    assert re.search(r"3,12\d,\d{3} characters in all", error)  # the question plus the chat template
    assert all(got[f"s{i}"].error is None and got[f"s{i}"].prediction for i in (0, 1, 3, 4, 5))
    outcome.stdout.fnmatch_lines(["FAILED *test_tiny[[]base-s2[]]*prompt too long*"])
    assert elapsed < 120


def test_max_prompt_tokens_refuses_a_long_question_with_its_exact_count(
    eval_project: pytest.Pytester, tiny_model: Path
) -> None:
    make_long(eval_project, 4, "What colour is the shape? " * 30)
    outcome, records = run(eval_project, tiny_model, "cap", "--batch-size", "4", "--max-prompt-tokens", "150")
    outcome.assert_outcomes(passed=5, failed=1)
    error = by_id(records)["s4"].error or ""
    count = int(error.split("prompt too long: ")[1].split(" tokens")[0].replace(",", ""))
    assert count > 150 and "limit 150 (--max-prompt-tokens)" in error


CPU_ALLOC_CONFTEST = '''
import pytest

from pytest_omnilmm.models import load_model

MAX_LENGTH = 200


@pytest.fixture(scope="session")
def omnilmm_load_model():
    """The real model, whose generate fails as torch's CPU allocator does on prompts over MAX_LENGTH."""

    def load(request):
        loaded = load_model(request)
        real_generate = loaded.model.generate

        def generate(**inputs):
            rows, length = inputs["input_ids"].shape
            if length > MAX_LENGTH:
                raise RuntimeError(
                    "[enforce fail at alloc_cpu.cpp:119] data. DefaultCPUAllocator: can't allocate memory: "
                    f"you tried to allocate {rows * length * 2**20} bytes. "
                    "Error code 12 (Cannot allocate memory)"
                )
            return real_generate(**inputs)

        loaded.model.generate = generate
        return loaded

    return load
'''


def test_cpu_allocation_failure_halves_the_batch_and_fails_only_the_sample_that_alone_does_not_fit(
    eval_project: pytest.Pytester, tiny_model: Path
) -> None:
    make_long(eval_project, 3, "What colour is the shape? " * 40)  # ~440 prompt tokens against ~90
    eval_project.makeconftest(CPU_ALLOC_CONFTEST)
    outcome, records = run(eval_project, tiny_model, "cpu", "--batch-size", "auto")
    outcome.assert_outcomes(passed=5, failed=1)
    outcome.stdout.fnmatch_lines(["_*test_tiny[[]base-s3[]]*_", "out of memory at batch size 1 on cpu*"])
    got = by_id(records)
    assert sorted(got) == [f"s{i}" for i in range(6)]
    assert all(got[f"s{i}"].error is None and got[f"s{i}"].prediction for i in (0, 1, 2, 4, 5))
    assert got["s3"].batch_size == 1 and got["s3"].prediction is None
