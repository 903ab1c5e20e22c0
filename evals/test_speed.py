"""Generation speed per checkpoint, through pytest-benchmark.

    pytest evals/test_speed.py --benchmark-json=speed.json
    pytest evals/test_speed.py --ckpt new.safetensors --benchmark-compare

A fixed probe (the first 8 samples of the bundled demo VQA set; ``--limit`` does not apply) is generated
with the run's own model, settings and batch size, and timed with ``benchmark.pedantic``.

pytest-benchmark's ``--benchmark-compare`` matches tests by id, so ids are chosen to line up across runs: a
run of one model (the base, or one ``--ckpt``) has the single id ``test_generation_speed[model]``, so a
candidate is compared with whatever model the saved run timed; in a sweep each checkpoint is named by its
file or folder name (``[base]``, ``[final]``, ``[step2000]``), so a later sweep over the same checkpoints
compares each with itself. The role, path, fingerprint, batch size and tokens/s are in ``extra_info``.

Under xdist pytest-benchmark switches itself off, so the test is skipped there (``conftest.py`` says so once)
and the plugin's own per-sample timing (the summary table's perf line, ``summary.json``) is the record.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

PROBE_FILE = Path(__file__).parent / "data" / "demo_vqa.jsonl"
PROBE_SIZE = 8
ROUNDS = 3


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "checkpoint_role" not in metafunc.fixturenames:
        return
    from pytest_omnilmm.keys import CONFIG_KEY

    choices = metafunc.config.stash[CONFIG_KEY].checkpoints
    labels = [choice.label for choice in choices]
    metafunc.parametrize("checkpoint_role", labels, ids=speed_ids(choices))


def speed_ids(choices: Any) -> list[str]:
    """``model`` for a one-model run; otherwise each checkpoint's file/folder name, made unique."""
    if len(choices) == 1:
        return ["model"]
    names = [choice.path.stem if choice.path is not None else "base" for choice in choices]
    return [
        name if names.count(name) == 1 else f"{name}-{choice.label}"
        for name, choice in zip(names, choices, strict=True)
    ]


@pytest.fixture(scope="module")
def probe() -> list[Any]:
    """The probe samples: fixed, so that every run times the same work."""
    from pytest_omnilmm.datasets import load_dataset

    if not PROBE_FILE.is_file():
        pytest.skip(f"the speed probe {PROBE_FILE} is missing")
    return load_dataset(PROBE_FILE, name="demo_vqa")[:PROBE_SIZE]


def test_generation_speed(
    checkpoint_role: str,
    benchmark_enabled: None,
    probe: list[Any],
    request: pytest.FixtureRequest,
) -> None:
    # Asked for only now: ``benchmark_enabled`` has skipped, under xdist or without pytest-benchmark, before
    # any engine or model exists.
    benchmark = request.getfixturevalue("benchmark")
    engine = request.getfixturevalue("omnilmm_engine")
    from pytest_omnilmm.generation import default_prompt
    from pytest_omnilmm.worker.engine import ModelUnavailable

    model_request = engine.requests[checkpoint_role]
    try:
        loaded = engine.pool.get(model_request)
    except ModelUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    on_cuda = loaded.device.startswith("cuda")
    # The eval items' default prompt, so the probe costs what an eval sample costs.
    parts = [default_prompt(sample) for sample in probe]
    # The engine's limit, which an out-of-memory in this run's evals may already have lowered.
    batch = min(engine.batch_limit, len(parts))
    answers: list[Any] = []

    def synchronize() -> None:
        if on_cuda:
            import torch

            torch.cuda.synchronize()

    def setup() -> None:
        # The previous round's garbage and queued kernels are not this round's time.
        gc.collect()
        synchronize()

    def target() -> None:
        out = []
        for start in range(0, len(parts), batch):
            out.extend(engine.backend.generate(loaded, parts[start : start + batch], engine.settings))
        synchronize()
        answers[:] = out

    try:
        benchmark.pedantic(target, setup=setup, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    except Exception as exc:
        if not engine.backend.is_out_of_memory(exc):
            raise
        pytest.fail(
            f"{checkpoint_role}: out of memory generating the speed probe at batch size {batch} on "
            f"{loaded.device_name}; lower --batch-size",
            pytrace=False,
        )
    failed = [
        (sample.id, answer.error) for sample, answer in zip(probe, answers, strict=True) if answer.error
    ]
    if failed:
        pytest.fail(f"speed probe sample {failed[0][0]}: {failed[0][1]}", pytrace=False)

    tokens = sum(answer.generated_tokens for answer in answers)
    stats = benchmark.stats.stats if benchmark.stats else None  # None when pytest-benchmark is disabled
    median = float(stats.median) if stats is not None else None
    benchmark.extra_info.update(
        {
            "checkpoint_role": checkpoint_role,
            "checkpoint_path": str(model_request.ckpt or ""),
            "model_path": model_request.model_path,
            "fingerprint": loaded.fingerprint,
            "batch_size": batch,
            "probe": f"{PROBE_FILE.name}[:{PROBE_SIZE}]",
            "probe_samples": len(parts),
            "generate_method": engine.settings.method,
            "max_new_tokens": engine.settings.max_new_tokens,
            "num_beams": engine.settings.num_beams,
            "generated_tokens": tokens,
            "tokens_per_s": round(tokens / median, 3) if median else None,
            "samples_per_s": round(len(parts) / median, 3) if median else None,
            "device": loaded.device_name,
            "dtype": loaded.dtype,
        }
    )
