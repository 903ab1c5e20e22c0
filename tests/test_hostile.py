"""Hostile inputs, end to end: each one gives one clear line, the documented exit code, no traceback wall.

Exit codes (docs/hostile-inputs.md): 4 when a setting is unusable at startup (nothing ran); 1 when the run
went ahead and some items failed (the rest finished and were recorded); 2 when interrupted (test_resume.py);
0 with a skip when a dataset is simply absent.

Runs whose only product is a startup error or a collection error are cheap and run in-process or as a
subprocess; runs that need the model run in-process on the tiny random-weight MiniCPM-V 4.6. File
permissions cannot stop root, so the unreadable-path tests drop root's file capabilities with ``setpriv``.
"""

from __future__ import annotations

import base64
import csv
import functools
import io
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pytest_omnilmm.records import Record, read_records

from .conftest import write_jsonl_dataset

USAGE = pytest.ExitCode.USAGE_ERROR
FAILED = pytest.ExitCode.TESTS_FAILED

DATASET_EVAL = """
import pytest

@pytest.mark.dataset("d", metric="exact_match")
def test_d(sample, generate, score):
    score(generate(sample))
"""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A fresh hash cache per test; no offline switch or pixel limit left behind by an in-process run."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "")  # remembers the original value, restored after the test
        monkeypatch.delenv(name)
    monkeypatch.setenv("PYTEST_OMNILMM_CACHE", str(tmp_path / "hash-cache"))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)


@pytest.fixture
def dataset_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with one eval over dataset ``d``; each test points ``--data d=...`` at its file."""
    pytester.makepyfile(test_d=DATASET_EVAL)
    pytester.makeini("[pytest]\nfilterwarnings = ignore::pytest.PytestAssertRewriteWarning\n")
    return pytester


def output_of(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def assert_clean(result: pytest.RunResult, code: int) -> None:
    """The exit code, and none of the walls a crash prints."""
    output = output_of(result)
    assert result.ret == code, output
    assert "Traceback" not in output and "INTERNALERROR" not in output, output
    assert "During handling of the above exception" not in output, output


def assert_said_once_per_item(result: pytest.RunResult, pattern: str, items: int) -> None:
    """Each failed item's report is the one line.

    The short summary repeats it after ``FAILED``/``ERROR`` (whole when ``$CI`` is set, truncated otherwise),
    so those lines are not counted.
    """
    from fnmatch import fnmatch

    said = [
        line
        for line in result.stdout.lines
        if fnmatch(line, pattern) and not line.startswith(("FAILED ", "ERROR "))
    ]
    assert len(said) == items, (pattern, result.stdout.str())


def records_of(project: pytest.Pytester) -> dict[str, Record]:
    (run,) = (project.path / ".omnilmm-results").iterdir()
    return {r.sample_id: r for r in read_records(run / "records.jsonl")}


# ------------------------------------------------------------------------------------- unreadable paths
@functools.cache
def _unprivileged_prefix() -> tuple[str, ...] | None:
    """How to run a command that file permissions apply to: as is, or (as root) without the DAC bypass."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = (setpriv, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search")
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    return prefix if probe.returncode == 0 else None


def run_unprivileged(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    prefix = _unprivileged_prefix()
    if prefix is None:
        pytest.skip("running as root, and setpriv cannot drop root's permission bypass here")
    command = [*prefix, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    return project.run(*command, timeout=180)


@pytest.fixture
def lock() -> Iterator[Any]:
    """``lock(path)`` takes every permission away from ``path``; they come back after the test."""
    locked: list[tuple[Path, int]] = []

    def _lock(path: Path) -> Path:
        locked.append((path, stat.S_IMODE(path.stat().st_mode)))
        path.chmod(0)
        return path

    yield _lock
    for path, mode in reversed(locked):
        path.chmod(mode)


def test_model_path_missing(eval_project: pytest.Pytester) -> None:
    result = eval_project.runpytest("--model_path", str(eval_project.path / "no" / "such" / "model"))
    assert_clean(result, USAGE)
    result.stderr.fnmatch_lines(
        ["ERROR: --model_path */no/such/model: no such directory; give a local model directory or a hub id"]
    )


def test_model_path_is_a_file(eval_project: pytest.Pytester) -> None:
    result = eval_project.runpytest("--model_path", "tiny.jsonl")
    assert_clean(result, USAGE)
    result.stderr.fnmatch_lines(
        ["ERROR: --model_path tiny.jsonl: is a file; give the base model's directory*"]
    )


def test_model_path_empty_directory(eval_project: pytest.Pytester) -> None:
    (eval_project.path / "empty").mkdir()
    result = eval_project.runpytest("--model_path", "empty")
    assert_clean(result, USAGE)
    result.stderr.fnmatch_lines(
        ["ERROR: --model_path empty: is an empty directory; give a directory written by save_pretrained*"]
    )


def test_model_path_unreadable(eval_project: pytest.Pytester, tiny_model: Path, lock: Any) -> None:
    model = eval_project.path / "locked-model"
    shutil.copytree(tiny_model, model)
    lock(model)
    # `--model_path=DIR`: with the value as a separate argument pytest itself (rootdir search, before any
    # plugin loads) stats files inside every argument that is a directory and dies on the permission error.
    result = run_unprivileged(eval_project, f"--model_path={model}")
    assert_clean(result, USAGE)
    result.stderr.fnmatch_lines(
        ["ERROR: --model_path */locked-model: cannot be read (permission denied); fix its permissions"]
    )


def test_model_weights_unreadable(eval_project: pytest.Pytester, tiny_model: Path, lock: Any) -> None:
    model = eval_project.path / "model"
    shutil.copytree(tiny_model, model)
    lock(model / "model.safetensors")
    result = run_unprivileged(eval_project, "--model_path", "model", "--max-new-tokens", "2")
    assert_clean(result, FAILED)
    pattern = "base: *model directory */model could not be read for hashing (*Permission denied*); check it"
    assert_said_once_per_item(result, pattern, 6)
    result.stdout.fnmatch_lines(["*6 failed*"])


def test_ckpt_missing(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    result = eval_project.runpytest("--model_path", str(tiny_model), "--ckpt", "gone.safetensors")
    assert_clean(result, USAGE)
    result.stderr.fnmatch_lines(
        [
            "ERROR: --ckpt gone.safetensors: checkpoint */gone.safetensors does not exist; "
            "check the --ckpt path"
        ]
    )


def test_ckpt_unreadable(eval_project: pytest.Pytester, tiny_model: Path, lock: Any) -> None:
    ckpt = eval_project.path / "locked.safetensors"
    shutil.copy(tiny_model / "model.safetensors", ckpt)
    lock(ckpt)
    result = run_unprivileged(eval_project, "--model_path", str(tiny_model), "--ckpt", str(ckpt))
    assert_clean(result, USAGE)
    result.stderr.fnmatch_lines(
        [
            "ERROR: --ckpt */locked.safetensors: checkpoint * cannot be read (permission denied); "
            "check its permissions"
        ]
    )


@pytest.mark.parametrize("where", ["option", "env"])
def test_data_missing_is_a_usage_error(
    eval_project: pytest.Pytester, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # Explicitly configured and absent is a typo: a CI job must not pass by skipping the dataset.
    if where == "option":
        args = ["--data", "tiny=missing.jsonl"]
    else:
        monkeypatch.setenv("OMNILMM_DATA", "tiny=missing.jsonl")
        args = []
    result = eval_project.runpytest_subprocess("--model_path", str(tiny_model), *args)
    assert_clean(result, pytest.ExitCode.USAGE_ERROR)
    # The line names where the value came from: the flag, or the variable (nobody typed --data then).
    source = "--data" if where == "option" else "OMNILMM_DATA (environment variable for --data)"
    result.stderr.fnmatch_lines(
        [f"ERROR: {source} tiny=*missing.jsonl: no such file or directory; fix the path*"]
    )


def test_dataset_without_location_is_a_skip_that_names_the_option(
    eval_project: pytest.Pytester, tiny_model: Path
) -> None:
    (eval_project.path / "tiny.jsonl").unlink()  # the marker's default location is empty
    result = eval_project.runpytest("--model_path", str(tiny_model), "-rs")
    assert_clean(result, pytest.ExitCode.OK)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED * dataset 'tiny' not found at */tiny.jsonl; set --data tiny=PATH (or omnilmm_data in ini)"]
    )


def test_data_unreadable(eval_project: pytest.Pytester, tiny_model: Path, lock: Any) -> None:
    lock(eval_project.path / "tiny.jsonl")
    result = run_unprivileged(eval_project, "--model_path", str(tiny_model))
    assert_clean(result, FAILED)
    assert_said_once_per_item(
        result, "*/tiny.jsonl: is not readable (permission denied); fix its permissions", 1
    )
    result.stdout.fnmatch_lines(["*1 error*"])


def test_results_dir_is_a_file(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    result = eval_project.runpytest("--model_path", str(tiny_model), "--results-dir", "tiny.jsonl")
    assert_clean(result, USAGE)
    result.stderr.fnmatch_lines(
        ["ERROR: --results-dir */tiny.jsonl: exists and is not a directory; choose another path"]
    )


def test_results_dir_not_writable(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    read_only = eval_project.path / "read-only"
    read_only.mkdir(mode=0o555)
    result = run_unprivileged(
        eval_project, "--model_path", str(tiny_model), "--results-dir", "read-only/results"
    )
    assert_clean(result, USAGE)
    result.stderr.fnmatch_lines(
        [
            "ERROR: --results-dir */read-only/results: */read-only is not writable; "
            "give a directory you can write to"
        ]
    )


def test_baseline_missing(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    result = eval_project.runpytest("--model_path", str(tiny_model), "--baseline", "base.json")
    assert_clean(result, USAGE)
    result.stderr.fnmatch_lines(
        ["ERROR: --baseline base.json: no such file; create one with --save-baseline base.json"]
    )


def test_baseline_unreadable(eval_project: pytest.Pytester, tiny_model: Path, lock: Any) -> None:
    lock(eval_project.makefile(".json", base="{}"))
    result = run_unprivileged(eval_project, "--model_path", str(tiny_model), "--baseline", "base.json")
    assert_clean(result, USAGE)
    result.stderr.fnmatch_lines(
        ["ERROR: --baseline base.json: cannot be read (permission denied); fix its permissions"]
    )


def test_save_baseline_into_a_missing_directory(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    result = eval_project.runpytest("--model_path", str(tiny_model), "--save-baseline", "nowhere/base.json")
    assert_clean(result, USAGE)
    result.stderr.fnmatch_lines(
        ["ERROR: --save-baseline */nowhere/base.json: the directory */nowhere does not exist"]
    )


# ------------------------------------------------------------------------------------------ checkpoints
def test_ckpt_truncated_safetensors(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    whole = (tiny_model / "model.safetensors").read_bytes()
    (eval_project.path / "cut.safetensors").write_bytes(whole[: len(whole) // 2])
    result = eval_project.runpytest("--model_path", str(tiny_model), "--ckpt", "cut.safetensors")
    assert_clean(result, USAGE)
    result.stderr.fnmatch_lines(
        [
            "ERROR: --ckpt cut.safetensors: checkpoint */cut.safetensors is not a valid safetensors file "
            "(tensor '*' ends at byte * but only * data bytes are present: truncated); "
            "re-download or re-save it"
        ]
    )


def test_ckpt_corrupt_safetensors(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    (eval_project.path / "noise.safetensors").write_bytes(os.urandom(4096))
    result = eval_project.runpytest("--model_path", str(tiny_model), "--ckpt", "noise.safetensors")
    assert_clean(result, USAGE)
    result.stderr.fnmatch_lines(
        [
            "ERROR: --ckpt noise.safetensors: checkpoint * is not a valid safetensors file (*); "
            "re-download or re-save it"
        ]
    )


def test_ckpt_empty_directory(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    (eval_project.path / "empty").mkdir()
    result = eval_project.runpytest("--model_path", str(tiny_model), "--ckpt", "empty")
    assert_clean(result, USAGE)
    result.stderr.fnmatch_lines(
        [
            "ERROR: --ckpt empty: checkpoint */empty is an empty directory; "
            "point --ckpt at a .safetensors file*"
        ]
    )


def test_ckpt_directory_with_two_weight_sets(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    import torch
    from safetensors.torch import load_file

    both = eval_project.path / "both"
    both.mkdir()
    shutil.copy(tiny_model / "model.safetensors", both / "model.safetensors")
    torch.save(load_file(str(tiny_model / "model.safetensors")), both / "pytorch_model.bin")
    result = eval_project.runpytest("--model_path", str(tiny_model), "--ckpt", "both")
    assert_clean(result, USAGE)
    result.stderr.fnmatch_lines(
        [
            "ERROR: --ckpt both: checkpoint directory */both holds 2 candidate weight sets "
            "(model.safetensors, pytorch_model.bin); point --ckpt at the one file (or index) you mean"
        ]
    )


@pytest.mark.parametrize("other", ["size", "architecture"])
def test_ckpt_for_another_model(
    eval_project: pytest.Pytester, tiny_model: Path, tmp_path: Path, other: str
) -> None:
    import torch
    from safetensors.torch import save_file

    from scripts.demo.build import TinySpec, build_tiny_model

    ckpt = eval_project.path / "other.safetensors"
    if other == "size":
        shutil.copy(build_tiny_model(tmp_path / "wide", TinySpec(hidden=96)) / "model.safetensors", ckpt)
        pattern = (
            "ckpt0: *23 tensors in */other.safetensors have another shape than in the model "
            "(lm_head.weight: model (*, 64), checkpoint (*, 96); *): the checkpoint is for another "
            "model size or architecture; point --model_path at the base model it was trained from"
        )
    else:
        save_file(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)).state_dict(), str(ckpt))
        pattern = "ckpt0: *none of the 4 tensors in */other.safetensors*it is for another architecture*"
    result = eval_project.runpytest(
        "--model_path", str(tiny_model), "--ckpt", str(ckpt), "--max-new-tokens", "2"
    )
    assert_clean(result, FAILED)
    result.assert_outcomes(failed=6)
    assert_said_once_per_item(result, pattern, 6)
    assert all(r.error is not None and r.prediction is None for r in records_of(eval_project).values())


def test_pickle_that_would_run_code_is_refused(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    import torch

    marker = eval_project.path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    torch.save({"state_dict": Payload()}, eval_project.path / "evil.pt")  # saving runs nothing; loading would
    result = eval_project.runpytest(
        "--model_path", str(tiny_model), "--ckpt", "evil.pt", "--max-new-tokens", "2"
    )
    assert not marker.exists()
    assert_clean(result, FAILED)
    result.assert_outcomes(failed=6)
    assert_said_once_per_item(
        result,
        "ckpt0: *checkpoint */evil.pt was refused: it contains the Python object posix.system, and "
        "unpickling it could execute code, so it was loaded with weights_only=True and nothing in it was "
        "run; safetensors is preferred: *safetensors.torch.save_file",
        6,
    )


def test_remote_code_is_refused_without_the_flag(eval_project: pytest.Pytester) -> None:
    repo = eval_project.path / "legacy-repo"
    repo.mkdir()
    (repo / "config.json").write_text(
        json.dumps(
            {
                "model_type": "minicpmv",
                "architectures": ["MiniCPMV"],
                "auto_map": {
                    "AutoConfig": "configuration_minicpm.MiniCPMVConfig",
                    "AutoModel": "modeling_minicpmv.MiniCPMV",
                },
            }
        )
    )
    ran = repo / "RAN"
    for name in ("configuration_minicpm.py", "modeling_minicpmv.py"):
        (repo / name).write_text(
            f"import pathlib\npathlib.Path({str(ran)!r}).write_text('remote code ran')\n"
        )
    result = eval_project.runpytest("--model_path", str(repo), "--max-new-tokens", "2")
    assert not ran.exists()
    assert_clean(result, FAILED)
    result.assert_outcomes(failed=6)
    assert_said_once_per_item(
        result,
        "base: */legacy-repo: model_type 'minicpmv' needs the repository's own Python code (*); "
        "rerun with --trust-remote-code if you trust it",
        6,
    )


# ---------------------------------------------------------------------------------------- dataset files
def b64_png(size: tuple[int, int] = (32, 32), colour: str = "red") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_tsv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def unreadable_dataset(project: pytest.Pytester, model: Path, file: str, message: str) -> None:
    """The dataset is one failed item carrying the reader's line; the model is never loaded."""
    result = project.runpytest("--data", f"d={file}", "--model_path", str(model))
    assert_clean(result, FAILED)
    result.assert_outcomes(errors=1)
    assert_said_once_per_item(result, message, 1)


def test_tsv_missing_required_columns(dataset_project: pytest.Pytester, tiny_model: Path) -> None:
    write_tsv(dataset_project.path / "d.tsv", ["id", "picture", "question"], [[1, "x", "?"]])
    unreadable_dataset(
        dataset_project,
        tiny_model,
        "d.tsv",
        "*/d.tsv: line 1, column 'index, image (or image_path)': missing required column(s) index, image (or "
        "image_path); found columns 'id', 'picture', 'question'. *",
    )


def test_tsv_duplicate_index(dataset_project: pytest.Pytester, tiny_model: Path) -> None:
    header = ["index", "image", "question", "answer"]
    write_tsv(dataset_project.path / "d.tsv", header, [[7, b64_png(), "a", "x"], [7, b64_png(), "b", "y"]])
    unreadable_dataset(
        dataset_project,
        tiny_model,
        "d.tsv",
        "*/d.tsv: row 2 (line 3, index '7'), column 'index': duplicate index '7' (also row 1); "
        "each index must be unique",
    )


def test_tsv_reference_to_a_missing_index(dataset_project: pytest.Pytester, tiny_model: Path) -> None:
    """A dangling back-reference fails that row's item alone; the other row runs and is scored."""
    header = ["index", "image", "question", "answer"]
    write_tsv(dataset_project.path / "d.tsv", header, [[1, b64_png(), "a", "x"], [2, "99", "b", "y"]])
    result = dataset_project.runpytest("--data", "d=d.tsv", "--model_path", str(tiny_model))
    assert_clean(result, FAILED)
    result.assert_outcomes(passed=1, failed=1)
    assert_said_once_per_item(
        result,
        "*/d.tsv row 2 (line 3, index '2'): column 'image': '99' is too short to be a base64 image, so it "
        "must be the index of the row whose image this row shares, but no row has that index; *",
        1,
    )


def test_jsonl_not_utf8(dataset_project: pytest.Pytester, tiny_model: Path) -> None:
    (dataset_project.path / "d.jsonl").write_bytes(b'{"id": "a", "question": "caf\xe9?", "answers": ["x"]}\n')
    unreadable_dataset(
        dataset_project,
        tiny_model,
        "d.jsonl",
        "*/d.jsonl: line 1: not valid UTF-8 at byte offset 28 (*); re-encode the file as UTF-8 (*",
    )


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        (
            "d.jsonl",
            '["not", "an", "object"]\n',
            "*/d.jsonl: line 1: expected a JSON object ({...}), got list; each line is one sample",
        ),
        (
            "TextVQA_0.5.1_val.json",
            '{"data": {"questions": []}}',
            "*/TextVQA_0.5.1_val.json: expected an object with a 'data' list (a TextVQA annotation file), "
            "got 'data' as dict; check the file, or the format= of its @pytest.mark.dataset",
        ),
    ],
    ids=["jsonl-line-not-an-object", "textvqa-data-not-a-list"],
)
def test_json_of_the_wrong_shape(
    dataset_project: pytest.Pytester, tiny_model: Path, file: str, content: str, message: str
) -> None:
    (dataset_project.path / file).write_text(content, encoding="utf-8")
    unreadable_dataset(dataset_project, tiny_model, file, message)


def test_tsv_bad_base64_fails_only_that_sample(dataset_project: pytest.Pytester, tiny_model: Path) -> None:
    not_base64 = "this is not base64 at all, not even close, and long enough to be one!!"
    rows = [[1, b64_png(), "q?", "a"], [2, not_base64, "q?", "b"], [3, b64_png(colour="blue"), "q?", "c"]]
    write_tsv(dataset_project.path / "d.tsv", ["index", "image", "question", "answer"], rows)
    result = dataset_project.runpytest(
        "--data", "d=d.tsv", "--model_path", str(tiny_model), "--max-new-tokens", "2"
    )
    assert_clean(result, FAILED)
    result.assert_outcomes(passed=2, failed=1)
    assert_said_once_per_item(
        result, "image is not valid base64 (*/d.tsv row 2 (line 3, index '2'), column 'image'): *", 1
    )
    records = records_of(dataset_project)
    assert records["2"].error is not None and records["1"].ok and records["3"].ok


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels: what a decompression bomb shows before inflating."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


def test_missing_corrupt_and_bomb_images_fail_only_their_samples(
    dataset_project: pytest.Pytester, tiny_model: Path
) -> None:
    images = dataset_project.path / "images"
    images.mkdir()
    Image.new("RGB", (40, 40), "red").save(images / "ok.png")
    whole = io.BytesIO()
    Image.new("RGB", (64, 64), "green").save(whole, format="PNG")
    (images / "cut.png").write_bytes(whole.getvalue()[:60])
    (images / "bomb.png").write_bytes(png_header(30_000, 30_000))  # 900 M pixels, over the default limit
    rows = [
        ("ok", "ok.png"),
        ("gone", "gone.png"),
        ("cut", "cut.png"),
        ("bomb", "bomb.png"),
        ("ok2", "ok.png"),
    ]
    lines = [
        json.dumps({"id": i, "question": "Colour?", "image": f"images/{f}", "answers": ["red"]})
        for i, f in rows
    ]
    (dataset_project.path / "d.jsonl").write_text("\n".join(lines) + "\n")

    result = dataset_project.runpytest(
        "--data", "d=d.jsonl", "--model_path", str(tiny_model), "--max-new-tokens", "2"
    )
    assert_clean(result, FAILED)
    result.assert_outcomes(passed=2, failed=3)
    for pattern in (
        "cannot read image */images/gone.png (*/d.jsonl line 2, image): No such file or directory",
        "image */images/cut.png cannot be decoded: *",
        "image */images/bomb.png has 900000000 pixels, over the limit of 89478485 "
        "(a decompression-bomb guard); raise it with --max-image-pixels if you trust the file",
    ):
        assert_said_once_per_item(result, pattern, 1)
    records = records_of(dataset_project)
    assert {sid for sid, r in records.items() if r.ok} == {"ok", "ok2"}


def test_max_image_pixels_is_the_limit_and_raising_it_lets_the_image_through(
    dataset_project: pytest.Pytester, tiny_model: Path
) -> None:
    images = dataset_project.path / "images"
    images.mkdir()
    Image.new("RGB", (40, 40), "red").save(images / "small.png")
    Image.new("RGB", (300, 300), "blue").save(images / "large.png")  # 90,000 pixels
    lines = [
        json.dumps({"id": n, "question": "Colour?", "image": f"images/{n}.png"}) for n in ("small", "large")
    ]
    (dataset_project.path / "d.jsonl").write_text("\n".join(lines) + "\n")
    base = ["--data", "d=d.jsonl", "--model_path", str(tiny_model), "--max-new-tokens", "2"]

    # Below twice the limit PIL itself would only warn: the option is the limit, not half of it.
    result = dataset_project.runpytest(*base, "--max-image-pixels", "50000")
    assert_clean(result, FAILED)
    result.assert_outcomes(passed=1, failed=1)
    assert_said_once_per_item(
        result,
        "image */images/large.png has 90000 pixels, over the limit of 50000 (a decompression-bomb guard); "
        "raise it with --max-image-pixels if you trust the file",
        1,
    )
    result = dataset_project.runpytest(*base, "--max-image-pixels", "100000")
    assert_clean(result, pytest.ExitCode.OK)
    result.assert_outcomes(passed=2)


# ------------------------------------------------------------------------------------------------ model
OOM_CONFTEST = """
import pytest
import torch

from pytest_omnilmm.models import load_model


@pytest.fixture(scope="session")
def omnilmm_load_model():
    def load(request):
        loaded = load_model(request)
        real_generate = loaded.model.generate
        tokenizer = loaded.processor.tokenizer

        def generate(**kwargs):
            texts = tokenizer.batch_decode(kwargs["input_ids"])
            with open("generate-calls.txt", "a") as fh:
                fh.write(f"{len(texts)}\\n")
            if any("poison" in text for text in texts):
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            return real_generate(**kwargs)

        loaded.model.generate = generate
        return loaded

    return load
"""


def test_out_of_memory_backs_off_then_fails_only_the_guilty_sample(
    eval_project: pytest.Pytester, tiny_model: Path
) -> None:
    path = write_jsonl_dataset(eval_project.path, n=6)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[2]["question"] = "What colour is the poison shape?"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    eval_project.makeconftest(OOM_CONFTEST)
    result = eval_project.runpytest(
        "--model_path", str(tiny_model), "--batch-size", "2", "--max-new-tokens", "2"
    )
    assert_clean(result, FAILED)
    result.assert_outcomes(passed=5, failed=1)
    assert_said_once_per_item(
        result, "out of memory at batch size 1 on cpu (*): this sample alone does not fit; try a smaller *", 1
    )
    # (s0 s1) | (s2 s3) runs out of memory, halves: (s2) runs out again and fails, (s3) passes | (s4 s5)
    calls = [int(n) for n in (eval_project.path / "generate-calls.txt").read_text().split()]
    assert calls == [2, 2, 1, 1, 2]
    records = records_of(eval_project)
    assert {sid for sid, r in records.items() if not r.ok} == {"s2"}
    assert records["s3"].batch_size == 1 and records["s4"].batch_size == 2


# ------------------------------------------------------------------------------------------------ network
NO_NETWORK_CONFTEST = """
import socket
from pathlib import Path

_real_connect = socket.socket.connect


def _refuse(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        with Path(__file__).with_name("connect-attempts.txt").open("a") as fh:
            fh.write(f"{address}\\n")
        raise OSError("network use during a local evaluation")
    return _real_connect(self, address)


socket.socket.connect = _refuse
"""

ENV_EVAL = """
import os

import pytest


@pytest.mark.dataset("tiny", path="tiny.jsonl")
def test_tiny(sample, generate, score):
    score(generate(sample))
    import huggingface_hub.constants

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert huggingface_hub.constants.HF_HUB_OFFLINE  # read when the hub library was imported: after configure
"""


def test_local_model_never_reaches_the_hub(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    eval_project.makepyfile(test_tiny_eval=ENV_EVAL)
    eval_project.makeconftest(NO_NETWORK_CONFTEST)
    result = eval_project.runpytest_subprocess(
        "--model_path", str(tiny_model), "--max-new-tokens", "2", "-k", "s0"
    )
    assert_clean(result, pytest.ExitCode.OK)
    result.assert_outcomes(passed=1, deselected=5)
    assert not (eval_project.path / "connect-attempts.txt").exists()


@pytest.mark.parametrize("why", ["offline-mode", "no-network"])
def test_hub_id_fails_fast_without_the_hub(
    eval_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, why: str
) -> None:
    monkeypatch.setenv("HF_HOME", str(eval_project.path / "empty-hf-home"))  # nothing cached
    if why == "offline-mode":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        expected = (
            "*not in the Hugging Face cache, and offline mode is set*`hf download openbmb/MiniCPM-V-4_6`*"
        )
    else:
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
        expected = (
            "*the Hugging Face hub cannot be reached (no network)*`hf download openbmb/MiniCPM-V-4_6 "
            "--local-dir DIR`*HF_HUB_OFFLINE=1*"
        )
    started = time.monotonic()
    result = eval_project.runpytest_subprocess("--model_path", "openbmb/MiniCPM-V-4_6")
    assert time.monotonic() - started < 10
    assert_clean(result, USAGE)
    result.stderr.fnmatch_lines([f"ERROR: --model_path openbmb/MiniCPM-V-4_6: {expected}"])
