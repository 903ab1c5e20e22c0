"""Peak memory of a run over N samples against 10N: evaluation streams, so memory must not grow with N.

    python benchmarks/memory.py [--model-path DIR] [--samples 50] [--factor 10] [--max-new-tokens 4]
                                [--threads 1]

Two synthetic JSONL datasets are written to a temporary directory from the bundled demo VQA samples: N
samples, and ``--factor`` times N (the demo samples repeated under new ids, each with its own copy of the
image file, so nothing is shared that a real dataset would not share). Each is evaluated by the plugin in a
child process (``pytest evals/test_vqa.py::test_demo_vqa --data demo_vqa=FILE``). Peak RSS is the child's own
``ru_maxrss`` (from ``os.wait4``), and the plugin's figure from ``summary.json`` is shown next to it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from _common import (
    DEMO_VQA,
    VQA_TEST,
    PytestRun,
    add_model_option,
    add_threads_option,
    apply_threads,
    resolve_model,
    run_pytest,
    verdict,
)

GOAL = 1.2


def write_dataset(out_dir: Path, count: int) -> Path:
    """``count`` samples cycling through the demo VQA set, each with a fresh id and its own image files."""
    rows = [json.loads(line) for line in DEMO_VQA.read_text(encoding="utf-8").splitlines() if line.strip()]
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    copied = 0

    def copy(name: str) -> str:
        nonlocal copied
        source = DEMO_VQA.parent / name
        target = images / f"{copied:06d}{source.suffix}"
        shutil.copyfile(source, target)
        copied += 1
        return f"images/{target.name}"

    lines = []
    for i in range(count):
        row = json.loads(json.dumps(rows[i % len(rows)]))  # a deep copy
        if row.get("image"):
            row["image"] = copy(row["image"])
        if row.get("images"):
            row["images"] = [copy(name) for name in row["images"]]
        for part in row.get("content") or []:
            if part.get("type") == "image":
                part["image"] = copy(part["image"])
        row["id"] = f"mem-{i:06d}"
        lines.append(json.dumps(row))
    path = out_dir / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def plugin_peak_mb(run: PytestRun) -> float | None:
    if run.run_dir is None:
        return None
    summary = json.loads((run.run_dir / "summary.json").read_text(encoding="utf-8"))
    values = [p.get("peak_memory_mb") for p in summary["run_info"]["perf"].values()]
    values = [v for v in values if v is not None]
    return max(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_option(parser)
    parser.add_argument("--samples", type=int, default=50, help="N, the smaller run")
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    add_threads_option(parser)
    args = parser.parse_args()
    apply_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="omnilmm-memory-") as tmp:
        work = Path(tmp)
        model = resolve_model(args.model_path, work)
        print(f"model: {model}")
        runs: list[tuple[int, PytestRun, float | None]] = []
        for count in (args.samples, args.samples * args.factor):
            data = write_dataset(work / f"data-{count}", count)
            run = run_pytest(
                [
                    VQA_TEST,
                    "--model_path",
                    str(model),
                    "--data",
                    f"demo_vqa={data}",
                    "--no-resume",
                    "--batch-size",
                    str(args.batch_size),
                    "--max-new-tokens",
                    str(args.max_new_tokens),
                ],
                work / f"results-{count}",
            ).check()
            runs.append((count, run, plugin_peak_mb(run)))
            print(
                f"{count:>6} samples: peak RSS {run.peak_rss_mb:7.1f} MB (plugin's summary.json: "
                f"{plugin_peak_mb(run) or float('nan'):.1f} MB) | {len(run.records)} records | "
                f"wall {run.wall_s:.1f} s"
            )

    (small, small_run, _), (large, large_run, _) = runs
    ratio = large_run.peak_rss_mb / small_run.peak_rss_mb
    met = "meets" if ratio <= GOAL else "misses"
    verdict(
        f"peak RSS {large_run.peak_rss_mb:.0f} MB for {large} samples vs {small_run.peak_rss_mb:.0f} MB for "
        f"{small} = {ratio:.3f}x ({met} the streaming goal <= {GOAL}x); "
        f"+{(large_run.peak_rss_mb - small_run.peak_rss_mb) * 1024 / (large - small):.1f} KB per extra sample"
    )


if __name__ == "__main__":
    main()
