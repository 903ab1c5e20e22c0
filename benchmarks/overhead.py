"""What the pytest harness costs over a bare generation loop, on the same samples and batches.

    python benchmarks/overhead.py [--model-path DIR | --large] [--samples 140] [--batch-size 8]
                                  [--max-new-tokens 16] [--repeats 3] [--threads 1]

``--large`` measures a random-weight ~40 M-parameter model (~150 ms/sample) instead of the demo model, whose
few milliseconds per sample make any fixed per-item cost look large.

Harness: ``pytest evals/test_vqa.py::test_demo_vqa --limit N --batch-size B --no-resume`` in a child
process, timed end to end; its generation time is the sum of its records' batch latencies (each batch once).

Bare loop: a child Python process that loads the model and processor with transformers directly and runs
``processor -> model.generate -> decode`` over the very batches the harness generated (same samples, same
order, same chat template, greedy, same ``max_new_tokens``). It is written with the processor directly, not
with the plugin's ``generate_batch``, so the plugin's own prompt building and decoding are part of what is
measured. Its answers are compared with the harness's to show both did the same work.

The two alternate ``--repeats`` times. Generation time is the sum over batches of each batch's fastest
round, end to end the fastest run: on a shared machine the minimum is the least disturbed measurement.
pytest itself costs about 0.9 ms per test item (DESIGN.md §3).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    DEMO_VQA,
    VQA_TEST,
    PytestRun,
    add_model_option,
    add_threads_option,
    apply_threads,
    batch_times,
    build_large_model,
    resolve_model,
    run_pytest,
    verdict,
)

GOAL = 1.03


def bare_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs in the child: load, then processor -> generate -> decode per batch, timing each batch."""
    started = time.perf_counter()
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from pytest_omnilmm.datasets import load_dataset
    from pytest_omnilmm.sample import Text

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32  # what the plugin's --dtype auto picks
    load_started = time.perf_counter()
    model = AutoModelForImageTextToText.from_pretrained(spec["model"], dtype=dtype).to(device).eval()
    processor = AutoProcessor.from_pretrained(spec["model"])
    processor.tokenizer.padding_side = "left"
    load_s = time.perf_counter() - load_started
    samples = {s.id: s for s in load_dataset(Path(spec["data"]), name="demo_vqa")}

    def texts_of(sample: Any) -> list[dict[str, str]]:
        # The ``chat`` method's order: every image first, then each text part as it stands.
        return [{"type": "text", "text": p.text} for p in sample.parts if isinstance(p, Text) and p.text]

    latencies: list[float] = []
    answers: dict[str, str] = {}
    for batch_ids in spec["batches"]:
        t0 = time.perf_counter()
        batch = [samples[i] for i in batch_ids]
        images = [[Image.open(ref.path).convert("RGB") for ref in s.images] for s in batch]
        texts = [
            processor.apply_chat_template(
                [{"role": "user", "content": [*({"type": "image"} for _ in s.images), *texts_of(s)]}],
                add_generation_prompt=True,
                tokenize=False,
            )
            for s in batch
        ]
        inputs = processor(text=texts, images=images, padding=True, return_tensors="pt").to(device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        with torch.inference_mode():
            out = model.generate(
                **inputs, max_new_tokens=spec["max_new_tokens"], do_sample=False, num_beams=1
            )
        decoded = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        if cuda:
            torch.cuda.synchronize()
        latencies.append(time.perf_counter() - t0)
        answers.update({s.id: text.strip() for s, text in zip(batch, decoded, strict=True)})
    return {
        "load_s": load_s,
        "latencies": latencies,
        "answers": answers,
        "inner_wall_s": time.perf_counter() - started,
    }


def run_bare(spec_path: Path) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--bare-child", str(spec_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bare loop failed:\n{done.stderr[-3000:]}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def _batch_number(batch_id: str) -> int:
    return int(batch_id.split(":")[2])  # worker:label:N:pid, N counting this process's generate calls


def harness_batches(run: PytestRun) -> list[list[str]]:
    """The harness's batches as sample ids, in the order it generated them and the dataset's order within."""
    order = {json.loads(line)["id"]: i for i, line in enumerate(DEMO_VQA.open(encoding="utf-8"))}
    by_batch: dict[str, list[str]] = {}
    for r in run.records:
        by_batch.setdefault(r.batch_id, []).append(r.sample_id)
    return [sorted(by_batch[b], key=order.__getitem__) for b in sorted(by_batch, key=_batch_number)]


def harness_latencies(run: PytestRun) -> list[float]:
    return [
        lat for _, (lat, _) in sorted(batch_times(run.records).items(), key=lambda kv: _batch_number(kv[0]))
    ]


def fastest_per_batch(rounds: list[list[float]]) -> float:
    """Sum over batches of each batch's fastest round: load spikes on a shared machine hit single batches."""
    return sum(min(times) for times in zip(*rounds, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_option(parser)
    parser.add_argument("--large", action="store_true", help="measure a random-weight ~40 M-parameter model")
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        help="demo VQA samples, the harness's --limit (default 140, --large 48)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default 16, --large 32")
    add_threads_option(parser)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each; the fastest counts")
    parser.add_argument("--bare-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_child is not None:
        print(json.dumps(bare_loop(json.loads(args.bare_child.read_text()))))
        return
    if args.large and args.model_path:
        parser.error("give --model-path or --large, not both")
    args.samples = args.samples or (48 if args.large else 140)
    args.max_new_tokens = args.max_new_tokens or (32 if args.large else 16)
    threads = apply_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="omnilmm-overhead-") as tmp:
        work = Path(tmp)
        model = build_large_model(work) if args.large else resolve_model(args.model_path, work)
        harness_args = [
            VQA_TEST,
            "--model_path",
            str(model),
            "--limit",
            str(args.samples),
            "--batch-size",
            str(args.batch_size),
            "--max-new-tokens",
            str(args.max_new_tokens),
            "--no-resume",
        ]
        print(
            f"model: {model}{' (random weights, ~40 M parameters)' if args.large else ''} | "
            f"torch threads {threads}"
        )
        print(f"harness: pytest {' '.join(harness_args)}")
        harness: list[PytestRun] = []
        bare: list[tuple[float, dict[str, Any]]] = []
        spec_path = work / "bare.json"
        for i in range(args.repeats):
            run = run_pytest(harness_args, work / f"results-{i}").check()
            harness.append(run)
            if i == 0:
                spec = {
                    "model": str(model),
                    "data": str(DEMO_VQA),
                    "batches": harness_batches(run),
                    "max_new_tokens": args.max_new_tokens,
                }
                spec_path.write_text(json.dumps(spec))
            bare.append(run_bare(spec_path))
            h_gen = sum(harness_latencies(run))
            print(
                f"  round {i + 1}: harness generation {h_gen:.3f} s, end to end {run.wall_s:.2f} s | "
                f"bare generation {sum(bare[-1][1]['latencies']):.3f} s, end to end {bare[-1][0]:.2f} s"
            )

    n = sum(len(b) for b in spec["batches"])
    h_gen = fastest_per_batch([harness_latencies(r) for r in harness])
    b_gen = fastest_per_batch([result["latencies"] for _, result in bare])
    h_wall = min(r.wall_s for r in harness)
    b_wall = min(wall for wall, _ in bare)
    h_answers = {r.sample_id: r.prediction for r in harness[0].records}
    mismatched = sum(1 for sid, text in bare[0][1]["answers"].items() if h_answers.get(sid) != text)
    ratio = h_gen / b_gen
    print(
        f"samples: {n} in {len(spec['batches'])} batches of up to {args.batch_size}, "
        f"max_new_tokens {args.max_new_tokens}"
    )
    print(
        f"generation time  harness {h_gen:.3f} s | bare {b_gen:.3f} s | ratio {ratio:.3f}x | "
        f"{(h_gen - b_gen) / n * 1000:+.2f} ms/sample ({b_gen / n * 1000:.1f} ms/sample bare)"
    )
    print(
        f"end to end       harness {h_wall:.2f} s | bare {b_wall:.2f} s | ratio {h_wall / b_wall:.3f}x | "
        f"{h_wall - b_wall:+.2f} s, {(h_wall - b_wall) / n * 1000:+.1f} ms/sample "
        "(interpreter, pytest, collection, per-item reports and records, summary files)"
    )
    print(f"answers that differ between harness and bare loop: {mismatched} of {n}")
    met = "meets" if ratio <= GOAL else "misses"
    verdict(
        f"harness/bare generation time {ratio:.3f}x ({met} the <= {GOAL}x goal), "
        f"{(h_gen - b_gen) / n * 1000:+.2f} ms/sample; end to end {h_wall / b_wall:.2f}x, "
        f"{(h_wall - b_wall) / n * 1000:+.0f} ms/sample over {n} samples; {mismatched} answers differ"
    )


if __name__ == "__main__":
    main()
