"""The pytest-benchmark bridge (``evals/test_speed.py``): JSON with stable ids and extra_info, comparison of a
new checkpoint against the saved one, and the one-line note that replaces it under xdist."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_omnilmm.records import read_records

EVALS = Path(__file__).resolve().parents[1] / "evals"
PROBE = 8


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One torch thread, here and in child processes: on a 2-core machine shared with other work, two
    threads wait on each other for a busy core and generation gets several times slower. Nothing here
    depends on the thread count."""
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def speed_project(eval_project: pytest.Pytester) -> pytest.Pytester:
    """``eval_project`` (6 samples) plus the bundled speed test, its conftest and its probe data."""
    shutil.copy(EVALS / "test_speed.py", eval_project.path / "test_speed.py")
    shutil.copy(EVALS / "conftest.py", eval_project.path / "conftest.py")
    lines = (EVALS / "data" / "demo_vqa.jsonl").read_text(encoding="utf-8").splitlines()[:PROBE]
    data = eval_project.path / "data"
    (data / "images").mkdir(parents=True)
    (data / "demo_vqa.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for line in lines:
        row = json.loads(line)
        for name in [row.get("image"), *(row.get("images") or [])]:
            if name:
                shutil.copy(EVALS / "data" / name, data / name)
    return eval_project


@pytest.fixture
def two_checkpoints(tiny_model: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Two full checkpoints of the tiny model with different weights (so different fingerprints)."""
    from safetensors.torch import load_file, save_file

    weights = load_file(str(tiny_model / "model.safetensors"))
    paths = []
    for i in range(2):
        changed = {k: (v * (1 + 0.01 * i) if k.endswith("norm.weight") else v) for k, v in weights.items()}
        path = tmp_path / f"step{i}.safetensors"
        save_file(changed, str(path))
        paths.append(path)
    return paths[0], paths[1]


def sweep_args(model: Path, *ckpts: Path) -> list[str]:
    """The options of a speed run over ``ckpts`` (3 new tokens, no resume)."""
    return [
        "--model_path",
        str(model),
        *(arg for ckpt in ckpts for arg in ("--ckpt", str(ckpt))),
        "--max-new-tokens",
        "3",
        "--no-resume",
    ]


def test_benchmark_json_has_named_ids_extra_info_and_machine_info(
    speed_project: pytest.Pytester, tiny_model: Path, two_checkpoints: tuple[Path, Path]
) -> None:
    import torch
    import transformers

    a, b = two_checkpoints
    out = speed_project.path / "speed.json"
    result = speed_project.runpytest(
        *sweep_args(tiny_model, a, b),
        "--benchmark-json",
        str(out),
        "--benchmark-save",
        "first",
        "-v",
    )
    result.assert_outcomes(passed=2 * 6 + 2)
    data = json.loads(out.read_text())
    by_name = {bench["name"]: bench for bench in data["benchmarks"]}
    # In a sweep each checkpoint is named by its file name (a, b: see two_checkpoints), not its role.
    assert set(by_name) == {f"test_generation_speed[{a.stem}]", f"test_generation_speed[{b.stem}]"}
    for label, path in (("ckpt0", a), ("ckpt1", b)):
        bench = by_name[f"test_generation_speed[{path.stem}]"]
        info = bench["extra_info"]
        assert info["checkpoint_role"] == label
        assert info["checkpoint_path"] == str(path)
        assert len(info["fingerprint"]) == 64
        assert info["batch_size"] == 8 and info["probe_samples"] == PROBE and info["max_new_tokens"] == 3
        assert info["generated_tokens"] > 0 and info["tokens_per_s"] > 0 and info["samples_per_s"] > 0
        assert bench["stats"]["rounds"] == 3 and bench["stats"]["min"] > 0
    assert (
        by_name[f"test_generation_speed[{a.stem}]"]["extra_info"]["fingerprint"]
        != (by_name[f"test_generation_speed[{b.stem}]"]["extra_info"]["fingerprint"])
    )
    machine = data["machine_info"]
    assert machine["torch_version"] == torch.__version__
    assert machine["transformers_version"] == transformers.__version__
    assert "gpu" in machine and "cuda_version" in machine

    # Each speed test runs right after its checkpoint's evals, so no checkpoint is loaded twice.
    order = [line.split(" ")[0].split("::")[-1] for line in result.outlines if " PASSED" in line]
    assert order.index(f"test_generation_speed[{a.stem}]") == 6
    assert order.index(f"test_generation_speed[{b.stem}]") == 13
    run = sorted((speed_project.path / ".omnilmm-results").iterdir())[-1]
    assert {r.extra["model_loads"] for r in read_records(run / "records.jsonl")} == {1}

    # A later sweep over the same checkpoints compares each with its own saved timing.
    compared = speed_project.runpytest(*sweep_args(tiny_model, a, b), "--benchmark-compare", "-k", "speed")
    compared.assert_outcomes(passed=2)
    # The table is sorted by time, so the saved and the new rows come in either order.
    for name in (a.stem, b.stem):
        compared.stdout.fnmatch_lines([f"*test_generation_speed[[]{name}[]] (0001_first)*"])
        compared.stdout.fnmatch_lines([f"*test_generation_speed[[]{name}[]] (NOW)*"])


def test_benchmark_compare_lines_up_a_candidate_with_the_saved_base(
    speed_project: pytest.Pytester, tiny_model: Path, two_checkpoints: tuple[Path, Path]
) -> None:
    """The README's recipe: time the base once, then compare a candidate checkpoint with it."""
    saved = speed_project.runpytest(*sweep_args(tiny_model), "--benchmark-save", "shipped", "-k", "speed")
    saved.assert_outcomes(passed=1)
    compared = speed_project.runpytest(
        *sweep_args(tiny_model, two_checkpoints[0]), "--benchmark-compare", "-k", "speed"
    )
    compared.assert_outcomes(passed=1)
    compared.stdout.fnmatch_lines(["*test_generation_speed[[]model[]] (0001_shipped)*"])
    compared.stdout.fnmatch_lines(["*test_generation_speed[[]model[]] (NOW)*"])


def test_under_xdist_the_speed_test_is_skipped_with_one_note(
    speed_project: pytest.Pytester, tiny_model: Path, two_checkpoints: tuple[Path, Path]
) -> None:
    a, b = two_checkpoints
    out = speed_project.path / "speed.json"
    result = speed_project.runpytest_subprocess(
        *sweep_args(tiny_model, a, b),
        "--benchmark-json",
        str(out),
        "-n",
        "2",
    )
    result.assert_outcomes(passed=2 * 6, skipped=2)
    notes = [line for line in result.outlines if "pytest-benchmark is off under xdist" in line]
    assert len(notes) == 1, result.stdout.str()
    assert notes[0].startswith("omnilmm: ") and "summary.json" in notes[0]
    assert not out.exists()  # pytest-benchmark saved nothing: the plugin's timing is the record
    run = sorted((speed_project.path / ".omnilmm-results").iterdir())[-1]
    perf = json.loads((run / "summary.json").read_text())["run_info"]["perf"]
    assert set(perf) == {"ckpt0", "ckpt1"}
    assert all(p["samples"] == 6 and p["samples_per_s"] > 0 and p["tokens_per_s"] > 0 for p in perf.values())


def test_without_xdist_no_note_is_printed(speed_project: pytest.Pytester, tiny_model: Path) -> None:
    result = speed_project.runpytest(
        "--model_path", str(tiny_model), "--max-new-tokens", "2", "--benchmark-disable", "-k", "speed"
    )
    result.assert_outcomes(passed=1)
    assert "pytest-benchmark is off under xdist" not in result.stdout.str()
