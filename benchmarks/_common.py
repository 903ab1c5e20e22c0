"""What the benchmark scripts share: the model to measure, running pytest in a child process, reading the
run back from its records, and the verdict line."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from pytest_omnilmm.config import DEMO_MODEL_DIR
from pytest_omnilmm.records import Record, read_records

REPO_ROOT = Path(__file__).resolve().parents[1]
EVALS_DIR = REPO_ROOT / "evals"
DEMO_VQA = EVALS_DIR / "data" / "demo_vqa.jsonl"
VQA_TEST = "evals/test_vqa.py::test_demo_vqa"


def _demo_build() -> ModuleType:
    """``scripts/demo/build.py``: the tiny-model builder lives in the checkout, outside the package, and a
    benchmark script started as ``python benchmarks/x.py`` has only ``benchmarks/`` on its path."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from scripts.demo import build

    return build


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-path",
        default=None,
        help=f"model directory to measure (default: the bundled demo model, {DEMO_MODEL_DIR}; a freshly "
        "built random-weight tiny model when that is missing)",
    )


def resolve_model(given: str | None, workdir: Path) -> Path:
    """The model to measure; builds a tiny random-weight one (and says so) when the demo model is missing."""
    if given is not None:
        path = Path(given).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise SystemExit(f"--model-path {given}: no config.json there; give a save_pretrained directory")
        return path
    if (DEMO_MODEL_DIR / "config.json").is_file():
        return DEMO_MODEL_DIR
    build_tiny_model = _demo_build().build_tiny_model
    print(
        f"note: the bundled demo model is missing ({DEMO_MODEL_DIR}); measuring a freshly built "
        "random-weight tiny model instead, so these figures are for that model"
    )
    return build_tiny_model(workdir / "tiny-model")


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of every process measured (OMP_NUM_THREADS); 0 leaves torch's default. "
        "Default 1: on a machine shared with other work, extra threads wait on busy cores, and that noise "
        "swamps the figures",
    )


def apply_threads(threads: int) -> str:
    """Set the thread count for this process and its children (before torch is imported); say what it is."""
    if threads > 0:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        return f"{threads} (--threads)"
    return f"torch default, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"


def build_large_model(workdir: Path) -> Path:
    """A random-weight MiniCPM-V 4.6 of ~40 M parameters: ~150 ms/sample at batch 8 on one CPU thread, the
    "bigger model" on which harness overhead should be judged too (DESIGN.md §3). Random weights never stop
    early, so every sample generates exactly ``max_new_tokens``."""
    build = _demo_build()
    spec = build.TinySpec(
        hidden=1024,
        layers=4,
        heads=16,
        kv_heads=4,
        head_dim=64,
        vision_hidden=64,
        vision_layers=2,
        layer_types=("full_attention",) * 4,
    )
    return build.build_tiny_model(workdir / "large-model", spec)


@dataclass(frozen=True)
class PytestRun:
    """One pytest child process: how long it took, what it printed, where its results are."""

    args: tuple[str, ...]
    wall_s: float
    returncode: int
    output: str
    peak_rss_mb: float  # of the child process itself (xdist workers are its children and not included)
    run_dir: Path | None
    records: tuple[Record, ...]  # read at once: the run directory is usually temporary

    def check(self) -> PytestRun:
        if self.returncode not in (0, 1) or self.run_dir is None:
            tail = "\n".join(self.output.splitlines()[-25:])
            raise SystemExit(f"pytest {' '.join(self.args)} exited {self.returncode}:\n{tail}")
        return self


def run_pytest(args: Sequence[str], results_dir: Path, env: Mapping[str, str] | None = None) -> PytestRun:
    """``python -m pytest ARGS`` from the repository root, results in ``results_dir`` (fresh per run)."""
    full = (*args, "--results-dir", str(results_dir), "-p", "no:cacheprovider", "-q")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *full],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    # wait4 gives this child's own resource usage (RUSAGE_CHILDREN would be the max over every child so far).
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    runs = sorted(p for p in results_dir.iterdir() if p.is_dir()) if results_dir.is_dir() else []
    run_dir = runs[-1] if runs else None
    return PytestRun(
        args=tuple(full),
        wall_s=wall,
        returncode=proc.returncode,
        output=output,
        peak_rss_mb=maxrss_mb(usage.ru_maxrss),
        run_dir=run_dir,
        records=tuple(read_records(run_dir / "records.jsonl")) if run_dir is not None else (),
    )


def maxrss_mb(ru_maxrss: int) -> float:
    return ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)


def batch_times(records: Iterable[Record]) -> dict[str, tuple[float, int]]:
    """Each generate call once: batch id -> (latency, batch size). Resumed records were not timed now."""
    return {r.batch_id: (r.latency_s, r.batch_size) for r in records if r.batch_id and not r.resumed}


def predictions(records: Iterable[Record]) -> dict[tuple[str, str, str], str | None]:
    return {(r.checkpoint, r.dataset, r.sample_id): r.prediction for r in records}


def differing(a: Mapping[object, object], b: Mapping[object, object]) -> int:
    """Keys whose values differ, counting keys present in only one side."""
    return sum(1 for key in set(a) | set(b) if a.get(key, object()) != b.get(key, object()))


def verdict(text: str) -> None:
    print(f"VERDICT: {text}", flush=True)
