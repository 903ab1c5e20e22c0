"""Samples/s of ``--backend openai`` at ``--concurrency 1, 4, 16`` against a real ``transformers serve``
on the demo model (or --api-base of a server you run), printed as ratios to concurrency 1.

Throughput is samples over generation time (the sum of the batches' wall times, from the records), so
pytest's own per-item cost is left out. ``transformers serve`` on CPU answers one request at a time, so
ratios near 1.0 are expected there; a vLLM/SGLang server batches concurrent requests and scales.

    python benchmarks/server_concurrency.py [--api-base URL --api-model NAME] [--samples 64]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from pytest_omnilmm.records import read_records

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "pytest_omnilmm" / "demo" / "model"
LEVELS = (1, 4, 16)


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = str(Path(sys.executable).with_name("transformers"))
    proc = subprocess.Popen(
        [cli, "serve", str(DEMO), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.5)
    stop(proc)
    raise SystemExit("transformers serve did not become ready within 120 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def samples_per_s(api_base: str, api_model: str, concurrency: int, samples: int) -> float:
    with tempfile.TemporaryDirectory() as results:
        command = [
            sys.executable, "-m", "pytest", "evals/test_vqa.py", "-q", "-p", "no:cacheprovider",
            "-p", "no:benchmark", "--backend", "openai", "--api-base", api_base, "--api-model", api_model,
            "--concurrency", str(concurrency), "--batch-size", "16", "--limit", str(samples),
            "--no-resume", "--results-dir", results,
        ]  # fmt: skip
        subprocess.run(command, cwd=REPO, check=False, stdout=subprocess.DEVNULL)
        (records_file,) = Path(results).glob("*/records.jsonl")
        records = [r for r in read_records(records_file) if r.error is None]
    batches = {r.batch_id: r.latency_s for r in records}
    return len(records) / sum(batches.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-base", default=None)
    parser.add_argument("--api-model", default=str(DEMO))
    parser.add_argument("--samples", type=int, default=64)
    args = parser.parse_args()
    proc = None
    api_base = args.api_base
    if api_base is None:
        proc, api_base = start_server()
    try:
        rates = {c: samples_per_s(api_base, args.api_model, c, args.samples) for c in LEVELS}
    finally:
        if proc is not None:
            stop(proc)
    for c in LEVELS:
        print(f"concurrency {c:>2}: {rates[c]:7.1f} samples/s  ratio {rates[c] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
