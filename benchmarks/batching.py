"""Samples/s at batch 1, 4 and 8 on the same samples, and whether batching changes any answer.

    python benchmarks/batching.py [--model-path DIR] [--samples 140] [--max-new-tokens 16] [--repeats 3]
                                  [--threads 1]

Generation goes through the plugin's own ``models.load_model`` and ``models.generate_batch`` (left padding,
greedy), on the first ``--samples`` samples of the bundled demo VQA set. Batch sizes alternate within each
repeat so a load spike on the shared machine does not favour one of them; each size's fastest repeat counts.

When batch 8 falls short of 3x batch 1, the script measures why: what one decode step costs at batch 8
against batch 1 (on a CPU the matrix products are already compute-bound at batch 1, so a step at batch 8
costs several times more), how much of a batch is spent outside the model (image decoding, the processor),
and how many decode steps are padding (a batch runs until its longest answer ends).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import DEMO_VQA, add_model_option, add_threads_option, apply_threads, resolve_model, verdict

GOAL = 3.0


def run_all(loaded: Any, parts: Sequence[Any], batch: int, settings: Any) -> tuple[float, list[Any]]:
    from pytest_omnilmm.models import generate_batch

    started = time.perf_counter()
    answers: list[Any] = []
    for start in range(0, len(parts), batch):
        answers.extend(generate_batch(loaded, parts[start : start + batch], settings))
    return time.perf_counter() - started, answers


def prepare(loaded: Any, chosen: Sequence[Any]) -> Any:
    """What ``generate_batch`` does before ``model.generate``: decode images, chat template, processor."""
    from pytest_omnilmm.generation import build_messages, images_in_order

    processor = loaded.processor
    images = [[ref.load() for ref in images_in_order(p, "chat")] for p in chosen]
    texts = [
        processor.apply_chat_template(build_messages(p, "chat"), add_generation_prompt=True, tokenize=False)
        for p in chosen
    ]
    return processor(text=texts, images=images, padding=True, return_tensors="pt").to(loaded.device)


def generate_exactly(loaded: Any, inputs: Any, tokens: int) -> None:
    """Greedy generation forced to ``tokens`` new tokens (no early stop), so every batch does equal work."""
    import torch

    with torch.inference_mode():
        loaded.model.generate(
            **inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, num_beams=1
        )


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def step_costs(loaded: Any, parts: Sequence[Any], batch: int, tokens: int) -> dict[str, float]:
    """Seconds of preprocessing, of prefill, and of one decode step, for one batch of ``batch`` samples."""
    chosen = list(parts[:batch])
    inputs = prepare(loaded, chosen)
    prep = best_of(lambda: prepare(loaded, chosen))
    prefill = best_of(lambda: generate_exactly(loaded, inputs, 1))
    full = best_of(lambda: generate_exactly(loaded, inputs, tokens))
    return {"prep": prep, "prefill": prefill, "step": (full - prefill) / (tokens - 1)}


def forced_rate(loaded: Any, parts: Sequence[Any], batch: int, tokens: int) -> float:
    """Samples/s when every answer is forced to ``tokens`` tokens (what a model with long answers sees)."""

    def run() -> None:
        for start in range(0, len(parts), batch):
            generate_exactly(loaded, prepare(loaded, parts[start : start + batch]), tokens)

    return len(parts) / best_of(run, repeats=2)


def padded_steps(answers: Sequence[Any], batch: int) -> float:
    """Fraction of row-steps in batched decoding that produce nothing (rows already finished)."""
    useful = total = 0
    for start in range(0, len(answers), batch):
        lengths = [max(1, a.generated_tokens) for a in answers[start : start + batch]]
        useful += sum(lengths)
        total += max(lengths) * len(lengths)
    return 1 - useful / total if total else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_option(parser)
    parser.add_argument("--samples", type=int, default=140, help="the first N demo VQA samples (140: all)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument(
        "--sizes", default="1,4,8", help="batch sizes, comma separated; the first is the reference"
    )
    parser.add_argument("--repeats", type=int, default=3)
    add_threads_option(parser)
    args = parser.parse_args()
    threads = apply_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]

    from pytest_omnilmm.datasets import load_dataset
    from pytest_omnilmm.generation import default_prompt
    from pytest_omnilmm.models import GenerationSettings, ModelRequest, load_model

    with tempfile.TemporaryDirectory(prefix="omnilmm-batching-") as tmp:
        model = resolve_model(args.model_path, Path(tmp))
        request = ModelRequest("base", str(model), None, False, "auto", "auto", False, False)
        loaded = load_model(request)
    samples = load_dataset(DEMO_VQA, name="demo_vqa")[: args.samples]
    parts = [default_prompt(s) for s in samples]
    settings = GenerationSettings("chat", args.max_new_tokens, 1)
    print(f"model: {model} | {loaded.device_name} {loaded.dtype} | torch threads {threads}")
    print(
        f"samples: {len(parts)} of {DEMO_VQA.name}, max_new_tokens {args.max_new_tokens}, "
        f"{args.repeats} repeats, fastest counts"
    )

    run_all(loaded, parts[: max(sizes)], max(sizes), settings)  # warm-up: first-call costs favour no size
    times: dict[int, list[float]] = {b: [] for b in sizes}
    answers: dict[int, list[Any]] = {}
    for _ in range(args.repeats):
        for b in sizes:
            elapsed, answers[b] = run_all(loaded, parts, b, settings)
            times[b].append(elapsed)

    ref = sizes[0]
    rate = {b: len(parts) / min(times[b]) for b in sizes}
    texts = {b: [a.prediction for a in answers[b]] for b in sizes}
    for b in sizes:
        diff = sum(1 for x, y in zip(texts[b], texts[ref], strict=True) if x != y)
        print(
            f"batch {b:>2}: {rate[b]:7.2f} samples/s ({rate[b] / rate[ref]:.2f}x batch {ref}) | "
            f"runs {', '.join(f'{t:.2f}' for t in times[b])} s | {diff} of {len(parts)} answers differ "
            f"from batch {ref} | padding {padded_steps(answers[b], b):.0%} of decode row-steps"
        )

    top = max(sizes)
    speedup = rate[top] / rate[ref]
    diffs = sum(1 for x, y in zip(texts[top], texts[ref], strict=True) if x != y)
    if speedup >= GOAL:
        verdict(
            f"batch {top} is {speedup:.2f}x batch {ref} samples/s ({rate[top]:.1f} vs {rate[ref]:.1f}; goal "
            f">= {GOAL}x); {diffs} of {len(parts)} answers differ from batch {ref}"
        )
        return
    one = step_costs(loaded, parts, ref, args.max_new_tokens)
    many = step_costs(loaded, parts, top, args.max_new_tokens)
    p1 = {k: v / ref * 1000 for k, v in one.items()}  # ms per sample
    pn = {k: v / top * 1000 for k, v in many.items()}
    mean_tokens = sum(a.generated_tokens for a in answers[ref]) / len(parts)
    print(
        f"why, per sample: batch {ref}: preprocessing {p1['prep']:.2f} ms, prefill {p1['prefill']:.2f} ms, "
        f"decode {p1['step']:.3f} ms/token | batch {top}: preprocessing {pn['prep']:.2f} ms, prefill "
        f"{pn['prefill']:.2f} ms, decode {pn['step']:.3f} ms/token | answers average {mean_tokens:.1f} tokens"
    )
    forced = {b: forced_rate(loaded, parts, b, args.max_new_tokens) for b in (ref, top)}
    print(
        f"with every answer forced to {args.max_new_tokens} tokens: batch {ref} {forced[ref]:.1f} samples/s, "
        f"batch {top} {forced[top]:.1f} samples/s = {forced[top] / forced[ref]:.2f}x"
    )
    verdict(
        f"batch {top} is {speedup:.2f}x batch {ref} samples/s ({rate[top]:.1f} vs {rate[ref]:.1f}), short of "
        f"{GOAL}x on {loaded.device_name}: per sample, preprocessing (image decoding and the processor, "
        f"which batching does not share) takes {pn['prep']:.2f} ms at batch {top} vs {p1['prep']:.2f} at "
        f"batch {ref}, "
        f"prefill {pn['prefill']:.2f} vs {p1['prefill']:.2f} ms, a decode step {pn['step']:.3f} vs "
        f"{p1['step']:.3f} ms, and answers average {mean_tokens:.1f} tokens (forced to {args.max_new_tokens} "
        f"tokens: {forced[top] / forced[ref]:.2f}x); "
        f"{diffs} of {len(parts)} answers differ from batch {ref}"
    )


if __name__ == "__main__":
    main()
