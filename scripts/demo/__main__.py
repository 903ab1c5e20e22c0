"""``python -m scripts.demo``, from the repository root: write the demo eval datasets, or train the demo
model.

    python -m scripts.demo data [--out evals/data] [--seed N]
    python -m scripts.demo train [--out DIR] [--steps N] [--minutes M] [--early-step N] [--seed N]
    python -m scripts.demo score DIR

``train --out pytest_omnilmm/demo`` regenerates the bundled model, checkpoints and manifest in place.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    from scripts.demo.datafiles import EVAL_SEED
    from scripts.demo.train import TRAIN_SEED, TrainConfig

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m scripts.demo",
        description="Write the demo eval datasets, or train the tiny demo MiniCPM-V 4.6 on CPU.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="write the five demo eval datasets (deterministic)")
    data.add_argument(
        "--out", type=Path, default=Path("evals/data"), help="folder to write (default: evals/data)"
    )
    data.add_argument("--seed", type=int, default=EVAL_SEED, help=f"eval split seed (default: {EVAL_SEED})")

    train = sub.add_parser("train", help="train the demo model; writes model/, checkpoints/, manifest.json")
    train.add_argument(
        "--out", type=Path, default=Path("demo-train"), help="output folder (default: demo-train)"
    )
    train.add_argument("--steps", type=int, default=defaults.steps, help=f"default: {defaults.steps}")
    train.add_argument(
        "--early-step",
        type=int,
        default=defaults.early_step,
        help=f"step of the early checkpoint ({defaults.early_step})",
    )
    train.add_argument("--minutes", type=float, default=None, help="stop training after this many minutes")
    train.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help=f"default: {defaults.batch_size}"
    )
    train.add_argument("--seed", type=int, default=TRAIN_SEED, help=f"training seed (default: {TRAIN_SEED})")
    train.add_argument(
        "--threads",
        type=int,
        default=defaults.threads,
        # One thread: on a shared 2-core machine two threads spent most of their time waiting on each other.
        help=f"torch CPU threads (default: {defaults.threads})",
    )
    train.add_argument(
        "--eval-every", type=int, default=defaults.eval_every, help="progress eval interval in steps; 0 = off"
    )
    train.add_argument("--resume", action="store_true", help="continue a killed run from DIR/resume.pt")

    score = sub.add_parser("score", help="re-measure a trained folder's checkpoints; rewrites its manifest")
    score.add_argument(
        "out", type=Path, help="a folder written by `train` (model/, checkpoints/, manifest.json)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "data":
        from scripts.demo.datafiles import write_demo_data

        counts = write_demo_data(args.out, args.seed)
        for name, n in counts.items():
            print(f"{name}: {n} rows")
        print(f"written under {args.out}")
        return 0

    if args.command == "score":
        from scripts.demo.train import rescore

        rescore(args.out)
        return 0

    from scripts.demo.train import TrainConfig, train

    if args.steps < 1 or not 0 < args.early_step <= args.steps:
        print(f"error: need steps >= 1 and 0 < --early-step <= --steps (got {args.early_step}, {args.steps})")
        return 2
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        early_step=args.early_step,
        eval_every=args.eval_every,
        seed=args.seed,
        threads=args.threads,
        max_minutes=args.minutes,
        resume=args.resume,
    )
    manifest = train(args.out, cfg, log=lambda line: print(line, flush=True))
    print(f"wrote {args.out}/model, {args.out}/checkpoints/, {args.out}/manifest.json")
    final = manifest["accuracy"].get("final", {})
    if final:
        print(f"final overall accuracy {final['overall']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
