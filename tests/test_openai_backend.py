"""The openai backend against a REAL server: ``transformers serve`` on the bundled demo model, started once
for this module on a free port (readiness: GET /health answers 200 once the model is loaded).

Checks: predictions equal the in-process hf backend's under greedy decoding, the gate runs on them, and a
server killed mid-run keeps the finished samples, fails the rest with the reason, and a rerun resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_omnilmm.records import Record, read_records

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "pytest_omnilmm" / "demo" / "model"

pytestmark = pytest.mark.skipif(shutil.which("transformers") is None, reason="transformers CLI not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, model: Path = DEMO) -> None:
        self.model = model
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        cli = str(Path(sys.executable).with_name("transformers"))
        command = [
            cli,
            "serve",
            str(self.model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--device",
            "cpu",
        ]
        self.proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited {self.proc.returncode} before it was ready")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"transformers serve not ready after {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def evals_project(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(
        REPO / "evals", pytester.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    return pytester


def records(results: Path) -> list[Record]:
    (run_dir,) = sorted(results.iterdir())[-1:]
    return list(read_records(run_dir / "records.jsonl"))


def api(server: Server, *more: str) -> list[str]:
    return ["--backend", "openai", "--api-base", server.base, "--api-model", str(DEMO), *more]


def test_server_predictions_match_the_in_process_backend_and_the_gate_runs(
    evals_project: pytest.Pytester, server: Server
) -> None:
    # The six original evals (48 samples at --limit 8); the catalogue's samples add time, not coverage here.
    common = ["--limit", "8", "-p", "no:benchmark", "--no-resume", "--ignore=test_catalogue.py"]
    base = evals_project.path / "baseline.json"
    hf = evals_project.runpytest(*common, "--results-dir", "r_hf", "--save-baseline", str(base))
    hf.assert_outcomes(passed=48, skipped=hf.parseoutcomes().get("skipped", 0))
    oa = evals_project.runpytest(
        *common, *api(server, "--stream", "1", "--model-revision", "demo"), "--results-dir", "r_oa",
        "--baseline", str(base),
    )  # fmt: skip
    want = {(r.dataset, r.sample_id): r.prediction for r in records(evals_project.path / "r_hf")}
    got = {(r.dataset, r.sample_id): r for r in records(evals_project.path / "r_oa")}
    agree = sum(got[k].prediction == p for k, p in want.items())
    assert agree == len(want) == 48, f"agreement {agree}/{len(want)}"
    assert all(r.generated_tokens > 0 and r.prompt_tokens > 0 for r in got.values())  # from usage
    assert all(r.latency_s > 0 and r.extra.get("ttft_s") for r in got.values())  # streamed: TTFT
    assert oa.ret == 0  # the gate compared the server's answers with the hf baseline: no drop
    oa.stdout.fnmatch_lines(["*gate*"])


def test_server_down_mid_run_keeps_finished_samples_and_a_rerun_resumes(
    evals_project: pytest.Pytester, server: Server
) -> None:
    # A conftest kills the server after the 10th answered item, as an operator or a crash would.
    evals_project.makeconftest(
        (evals_project.path / "conftest.py").read_text()
        + f"""

_SEEN = []


def pytest_runtest_logreport(report):
    import os, signal
    if report.when == "call" and report.passed:
        _SEEN.append(report.nodeid)
        if len(_SEEN) == 10:
            os.killpg({server.proc.pid if server.proc else 0}, signal.SIGTERM)
"""
    )
    args = [
        *api(server, "--model-revision", "demo"), "--limit", "8", "-p", "no:benchmark",
        "--ignore=test_catalogue.py",
    ]  # fmt: skip
    first = evals_project.runpytest(*args, "--results-dir", "res", "--batch-size", "2")
    assert first.ret != 0
    done = records(evals_project.path / "res")
    ok = [r for r in done if r.error is None]
    failed = [r for r in done if r.error is not None]
    assert len(ok) >= 10 and failed
    assert all("server unreachable at" in (r.error or "") for r in failed)
    assert server.proc is not None
    server.proc.wait(timeout=30)
    server.start()  # same port
    (evals_project.path / "conftest.py").write_text((REPO / "evals" / "conftest.py").read_text())
    second = evals_project.runpytest(*args, "--results-dir", "res")
    second.assert_outcomes(passed=48, skipped=second.parseoutcomes().get("skipped", 0))
    again = records(evals_project.path / "res")
    assert sum(r.resumed for r in again) == len(ok)
    assert json.dumps([r.error for r in again if r.error]) == "[]"
