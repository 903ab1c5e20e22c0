"""How often the regression gate raises a false alarm, and how often it catches a real drop.

A seeded simulation of what CI sees: a baseline run and a candidate run of "the same model" (every item
has its own difficulty, shared by both runs; each run draws its own sampling noise), optionally with
an injected drop of 1, 3 or 5 points in the candidate. The gate's own code (``paired_stats`` and
``decide_all``, Holm included) judges each simulated run, exactly as ``--baseline`` would.

Scenarios: 0/1 scores (exact match) and continuous scores (ANLS-like partial credit); every item its
own image, or four questions per image sharing a per-run image effect (what makes questions on one
image correlated), clustered by image as the gate does; one dataset per run, or six in one run (the
drop in one of them). "false alarm" = the run fails with a *fail* verdict under A/A; "inconclusive" =
a dataset the run could not judge at the margin (it fails CI too unless ``--gate-inconclusive pass``);
"caught" = the dropped dataset gets a fail verdict. Rates come with Wilson 95 % intervals.

    python benchmarks/gate_power.py                            # the README table
    python benchmarks/gate_power.py --runs 100 --aa-runs 400   # quicker, wider intervals
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pytest_omnilmm.gate import FAIL, INCONCLUSIVE, decide_all, paired_stats

SIZES = (200, 500, 2000, 5000)
SIX_DATASET_SIZES = (2000,)  # six datasets of 2000 in one run (the README row); each is 6x the work
DROPS = (0.01, 0.03, 0.05)
QUESTIONS_PER_IMAGE = 4
IMAGE_EFFECT_SD = 0.5  # per run and image, on the logit scale
PARTIAL_MEAN = 0.25  # continuous scores: a wrong answer earns U(0, 0.5) partial credit
DISAGREE = 0.0  # share of items whose scores differ between the runs, in the last simulated cell


@dataclass(frozen=True)
class Scenario:
    continuous: bool
    shared_images: bool
    datasets: int

    @property
    def label(self) -> str:
        kind = "continuous" if self.continuous else "0/1"
        images = f"{QUESTIONS_PER_IMAGE} q/image" if self.shared_images else "1 q/image"
        return f"{kind:<10} {images:<10} {self.datasets} dataset{'s' if self.datasets > 1 else ''}"


def _difficulty(rng: np.random.Generator, n: int) -> np.ndarray:
    """Per-item logit of answering right: most items reliably right or wrong, some in between.

    Beta(0.14, 0.09): mean accuracy 0.6; two A/A runs of 0/1 scores disagree on about 9 % of the items
    (the "differ" column prints the measured share). That is the noise level at which the previous
    rule ("fail when the whole 95 % CI of Δ lies below -margin") caught a 3-point drop at N = 2000 in
    about 76 % of runs, as measured in the issue that asked for this gate.
    """
    p = rng.beta(0.14, 0.09, size=n).clip(1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _one_run(
    rng: np.random.Generator, logits: np.ndarray, images: np.ndarray | None, continuous: bool, drop: float
) -> np.ndarray:
    z = logits
    if images is not None:
        z = z + rng.normal(0.0, IMAGE_EFFECT_SD, size=images.max() + 1)[images]
    right = rng.random(len(z)) < 1 / (1 + np.exp(-z))
    loss_per_flip = 1.0 - PARTIAL_MEAN if continuous else 1.0
    if drop > 0:
        flip = rng.random(len(z)) < drop / (loss_per_flip * max(right.mean(), 1e-9))
        right = right & ~flip
    if not continuous:
        return right.astype(float)
    return np.where(right, 1.0, rng.uniform(0.0, 2 * PARTIAL_MEAN, size=len(z)))


def simulate(
    scenario: Scenario,
    n: int,
    drop: float,
    runs: int,
    seed: int,
    margin: float,
    alpha: float,
    mode: str = "significant",
) -> tuple[int, int]:
    """(runs failed, runs with an inconclusive dataset); with a drop, "failed": the dropped one failed."""
    rng = np.random.default_rng(seed)
    failed = inconclusive = 0
    global DISAGREE
    disagree = []
    for _ in range(runs):
        stats = []
        for d in range(scenario.datasets):
            logits = _difficulty(rng, n)
            images = np.arange(n) // QUESTIONS_PER_IMAGE if scenario.shared_images else None
            base = _one_run(rng, logits, images, scenario.continuous, 0.0)
            cand = _one_run(rng, logits, images, scenario.continuous, drop if d == 0 else 0.0)
            stats.append(paired_stats(base, cand, images, level=1 - alpha))
            disagree.append(float((base != cand).mean()))
        decisions = decide_all(stats, [margin] * len(stats), mode=mode, alpha=alpha)
        verdicts = [x.verdict for x in decisions]
        if drop > 0:
            failed += verdicts[0] == FAIL
        else:
            failed += FAIL in verdicts
        inconclusive += INCONCLUSIVE in verdicts
    DISAGREE = float(np.mean(disagree))
    return failed, inconclusive


def noninferiority_table(runs: int, seed: int, alpha: float) -> None:
    """--gate noninferiority, one dataset of 0/1 scores: how often it passes with no drop (its power) and
    with a true drop of exactly the margin (its error rate, <= alpha by construction)."""
    print()
    print(f"gate: noninferiority, one dataset, 0/1 scores, 1 q/image; {runs} simulated runs per cell")
    print(f"{'margin':>6} {'N':>5}  {'passes, no drop':<22} {'passes, true drop = margin':<26}")
    scenario = Scenario(False, False, 1)
    for margin in (0.02, 0.05):
        for j, n in enumerate(SIZES):
            base_seed = seed + 50_000 + 100 * j + int(margin * 1000)
            passed = [
                runs - simulate(scenario, n, drop, runs, base_seed + k, margin, alpha, "noninferiority")[0]
                if drop > 0
                else _ni_passes(scenario, n, runs, base_seed, margin, alpha)
                for k, drop in enumerate((0.0, margin))
            ]
            print(f"{margin:>6} {n:>5}  {_rate(passed[0], runs):<22} {_rate(passed[1], runs):<26}")


def _ni_passes(scenario: Scenario, n: int, runs: int, seed: int, margin: float, alpha: float) -> int:
    failed, _ = simulate(scenario, n, 0.0, runs, seed, margin, alpha, "noninferiority")
    return runs - failed


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k / n:6.1%} [{lo:.1%}, {hi:.1%}]"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=400, help="simulated CI runs per drop cell (default 400)")
    parser.add_argument(
        "--aa-runs",
        type=int,
        default=10_000,
        help="simulated A/A runs per cell (default 10,000: the false-alarm rate is the guarantee, so it is "
        "measured to about ±0.4 points)",
    )
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--margin", type=float, default=0.01, help="--max-drop (default 0.01)")
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    scenarios = [Scenario(c, s, k) for k in (1, 6) for c in (False, True) for s in (False, True)]
    print(
        f"gate: significant, margin {args.margin}, one-sided alpha {args.alpha}, Holm over a run's datasets; "
        f"{args.aa_runs} simulated A/A runs and {args.runs} runs per drop cell, seed {args.seed}"
    )
    header = f"{'scenario':<33} {'N':>5} {'differ':>6}  {'A/A false alarms':<22} {'A/A inconclusive':<22}"
    header += "".join(f" {'-' + format(d * 100, 'g') + ' pt caught':<22}" for d in DROPS)
    print(header)
    above = 0
    worst_far = 0.0
    caught_3_at_2000: list[float] = []
    cells_done = 0
    for i, scenario in enumerate(scenarios):
        for j, n in enumerate(SIZES if scenario.datasets == 1 else SIX_DATASET_SIZES):
            seed = args.seed + 1000 * i + 10 * j
            fa, inc = simulate(scenario, n, 0.0, args.aa_runs, seed, args.margin, args.alpha)
            cells_done += 1
            differ = DISAGREE
            worst_far = max(worst_far, fa / args.aa_runs)
            above += wilson(fa, args.aa_runs)[0] > args.alpha
            cells = [_rate(fa, args.aa_runs), _rate(inc, args.aa_runs)]
            for k, drop in enumerate(DROPS):
                caught, _ = simulate(scenario, n, drop, args.runs, seed + k + 1, args.margin, args.alpha)
                cells.append(_rate(caught, args.runs))
                if drop == 0.03 and n == 2000:
                    caught_3_at_2000.append(caught / args.runs)
            print(f"{scenario.label:<33} {n:>5} {differ:>6.1%}  " + " ".join(f"{c:<22}" for c in cells))
    print(
        f"A/A false alarms: highest cell {worst_far:.1%}; cells whose Wilson interval lies above "
        f"{args.alpha:.0%}: {above} of {cells_done}"
    )
    print(
        f"3-point drop at N=2000 caught: {min(caught_3_at_2000[:4]):.1%} to {max(caught_3_at_2000[:4]):.1%} "
        f"(one dataset), {min(caught_3_at_2000[4:]):.1%} to {max(caught_3_at_2000[4:]):.1%} (six datasets, "
        f"Holm); {time.perf_counter() - started:.0f} s"
    )
    noninferiority_table(args.runs, args.seed, args.alpha)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
