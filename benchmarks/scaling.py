"""``pytest evals/ -n 0`` against ``-n 2``: wall time, torch threads per worker, identical answers.

    python benchmarks/scaling.py [--model-path DIR | --large] [--limit 16] [--max-new-tokens 16] [--workers 2]

``--large`` runs a random-weight ~40 M-parameter model (~150 ms/sample) so that generation, not each
process's start-up (imports, model load), dominates the wall time; the demo model answers in milliseconds.

Both runs evaluate the same seeded ``--limit`` subset of every bundled eval dataset with ``--no-resume``,
each into its own results directory, with ``--benchmark-skip`` (the pytest-benchmark speed test runs only
without xdist, so keeping it would time different work). With xdist the plugin sets each worker's torch
threads to cores // workers, so two workers do not fight over the cores; the thread count each worker used
is read back from its records (``device_name``), not assumed.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from collections import defaultdict
from pathlib import Path

from _common import (
    add_model_option,
    batch_times,
    build_large_model,
    differing,
    predictions,
    resolve_model,
    run_pytest,
    verdict,
)

_THREADS = re.compile(r"(\d+) threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_option(parser)
    parser.add_argument("--large", action="store_true", help="measure a random-weight ~40 M-parameter model")
    parser.add_argument("--limit", type=int, default=None, help="samples per dataset (default 16, --large 8)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default 16, --large 32")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--no-control",
        action="store_true",
        help="skip the third run: -n 0 with one torch thread (OMP_NUM_THREADS=1)",
    )
    args = parser.parse_args()
    if args.large and args.model_path:
        parser.error("give --model-path or --large, not both")
    args.limit = args.limit or (8 if args.large else 16)
    args.max_new_tokens = args.max_new_tokens or (32 if args.large else 16)

    with tempfile.TemporaryDirectory(prefix="omnilmm-scaling-") as tmp:
        work = Path(tmp)
        model = build_large_model(work) if args.large else resolve_model(args.model_path, work)
        common = [
            "evals/",
            "--model_path",
            str(model),
            "--limit",
            str(args.limit),
            "--max-new-tokens",
            str(args.max_new_tokens),
            "--batch-size",
            str(args.batch_size),
            "--no-resume",
            "--benchmark-skip",
        ]
        print(
            f"model: {model} | {os.cpu_count()} cores | OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
        )
        print(f"command: pytest {' '.join(common)} -n 0 | -n {args.workers}")
        single = run_pytest([*common, "-n", "0"], work / "single").check()
        multi = run_pytest([*common, "-n", str(args.workers)], work / "multi").check()
        runs = [("-n 0", single), (f"-n {args.workers}", multi)]
        if not args.no_control:
            # Tells apart two gains: cores used in parallel, and fewer threads waiting on each other.
            control = run_pytest([*common, "-n", "0"], work / "control", env={"OMP_NUM_THREADS": "1"}).check()
            runs.append(("-n 0 one thread", control))

    rows = []
    for name, run in runs:
        threads: dict[str, set[int]] = defaultdict(set)
        for r in run.records:
            match = _THREADS.search(str(r.extra.get("device_name", "")))
            if match:
                threads[r.worker].add(int(match.group(1)))
        busy = sum(lat for lat, _ in batch_times(run.records).values())
        per_worker = ", ".join(f"{w}: {'/'.join(map(str, sorted(t)))}" for w, t in sorted(threads.items()))
        print(
            f"{name:>15}: wall {run.wall_s:6.1f} s | {len(run.records)} samples | generation {busy:6.1f} s "
            f"(summed over workers) | torch threads {per_worker or '-'} | exit {run.returncode}"
        )
        rows.append(threads)
    diff = differing(predictions(single.records), predictions(multi.records))
    speedup = single.wall_s / multi.wall_s
    worker_threads = sorted({t for ts in rows[1].values() for t in ts})
    expected = max(1, (os.cpu_count() or 1) // args.workers)
    split = "as set by the plugin" if worker_threads == [expected] else f"expected {expected}"
    verdict(
        f"-n {args.workers} wall {multi.wall_s:.1f} s vs -n 0 {single.wall_s:.1f} s = {speedup:.2f}x "
        f"speed-up on {os.cpu_count()} cores; torch threads per worker "
        f"{'/'.join(map(str, worker_threads)) or '?'} ({split}); "
        f"{diff} of {len(single.records)} answers differ"
        + (f"; -n 0 with one thread {runs[2][1].wall_s:.1f} s" if len(runs) > 2 else "")
    )


if __name__ == "__main__":
    main()
