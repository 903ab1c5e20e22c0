"""The Backend protocol as a third party sees it: an "echo" backend written only against
``pytest_omnilmm.backends``, registered through a real entry point (a ``.dist-info`` folder on the
path, which ``importlib.metadata`` reads as it reads an installed package), runs the bundled
``evals/`` end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_omnilmm.records import read_records

REPO = Path(__file__).resolve().parents[1]

ECHO_BACKEND = '''
"""Answers each prompt with its last text part's first word; knows nothing of torch or transformers."""
from __future__ import annotations

from dataclasses import dataclass

from pytest_omnilmm.backends import Generated, ModelRequest
from pytest_omnilmm.sample import Text


@dataclass
class EchoHandle:
    request: ModelRequest
    load_time_s: float = 0.0
    device: str = "echo"
    dtype: str = "text"
    device_name: str = "echo backend"
    replaced_tensors: int | None = None
    total_tensors: int = 0


class EchoBackend:
    name = "echo"

    def __init__(self, config):
        self.config = config
        self.batches = []

    def load(self, request):
        return EchoHandle(request)

    def generate(self, handle, prompts, settings):
        self.batches.append(len(prompts))
        out = []
        for parts in prompts:
            words = " ".join(p.text for p in parts if isinstance(p, Text)).split()
            answer = " ".join(words[:1])
            out.append(Generated(answer, prompt_tokens=len(words), generated_tokens=len(answer.split())))
        return out

    def fingerprint(self, request):
        return "echo:" + request.label

    def settings_identity(self):
        return {}

    def is_out_of_memory(self, exc):
        return False

    def free_memory(self, device):
        pass

    def peak_memory_mb(self, device):
        return 0.0

    def close(self, handle):
        pass
'''


@pytest.fixture
def echo_project(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(
        REPO / "evals", pytester.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    (pytester.path / "echo_backend.py").write_text(ECHO_BACKEND)
    dist = pytester.path / "echo_backend-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-backend\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[pytest_omnilmm.backends]\necho = echo_backend:EchoBackend\n")
    pytester.syspathinsert()
    return pytester


def test_an_entry_point_backend_runs_the_bundled_evals_end_to_end(echo_project: pytest.Pytester) -> None:
    results = echo_project.path / "results"
    outcome = echo_project.runpytest(
        "--backend", "echo", "--results-dir", str(results), "--limit", "8", "-p", "no:benchmark"
    )
    outcome.stdout.fnmatch_lines(["*omnilmm*", "*dataset*metric*score*"])
    (run_dir,) = results.iterdir()
    records = list(read_records(run_dir / "records.jsonl"))
    assert records and all(r.error is None and r.prediction is not None for r in records)
    outcome.assert_outcomes(passed=len(records), skipped=outcome.parseoutcomes().get("skipped", 0))
    assert len({r.dataset for r in records}) >= 4 and len(records) == 8 * len({r.dataset for r in records})
    assert {r.fingerprint for r in records} == {"echo:base"}
    assert all(r.extra["device_name"] == "echo backend" and r.prompt_tokens > 0 for r in records)
    assert all(r.prediction and r.prediction.split()[0] == r.prediction for r in records)


def test_an_unknown_backend_is_one_line_naming_the_installed_ones(echo_project: pytest.Pytester) -> None:
    outcome = echo_project.runpytest("--backend", "nosuch")
    assert outcome.ret != 0
    text = outcome.stdout.str() + outcome.stderr.str()
    assert "--backend 'nosuch': no such backend; installed: echo, hf" in text


def test_vllm_backend_is_one_line_where_vllm_is_not_importable(echo_project: pytest.Pytester) -> None:
    from pytest_omnilmm.backends.vllm import vllm_available

    if vllm_available():
        pytest.skip("vLLM is importable here: the GPU test below runs instead")
    outcome = echo_project.runpytest("--backend", "vllm")
    assert outcome.ret != 0
    text = outcome.stdout.str() + outcome.stderr.str()
    assert "--backend vllm: vLLM is not importable here" in text and "Traceback" not in text


def test_vllm_backend_runs_the_bundled_evals(echo_project: pytest.Pytester) -> None:
    from pytest_omnilmm.backends.vllm import vllm_available

    if not vllm_available():
        pytest.skip("vLLM is not importable beside this project's torch (see DESIGN.md); needs a GPU env")
    results = echo_project.path / "results"
    outcome = echo_project.runpytest("--backend", "vllm", "--limit", "8", "--results-dir", str(results))
    (run_dir,) = results.iterdir()
    records = list(read_records(run_dir / "records.jsonl"))
    assert records and all(r.error is None for r in records)
    assert outcome.ret == 0
