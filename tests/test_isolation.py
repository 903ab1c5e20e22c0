"""With the plugin merely installed, an unrelated project sees pytest as it is; an eval run restores every
process-wide setting it changed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PLAIN = "def test_plain():\n    assert 1 + 1 == 2\n"
SLEEPER = "import time\n\ndef test_sleeps():\n    time.sleep(60)\n"


def _entries(folder: Path) -> list[str]:
    # runpytest_subprocess puts its --basetemp (runpytest-N) and its stdout/stderr files there: not ours.
    return sorted(
        p.name
        for p in folder.iterdir()
        if not p.name.startswith("runpytest-") and p.name not in ("stdout", "stderr")
    )


def test_plain_project_prints_nothing_of_ours_and_creates_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain=PLAIN)
    before = _entries(pytester.path)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not [line for line in result.outlines if "omnilmm:" in line], result.outlines
    assert _entries(pytester.path) == before  # no .benchmarks/, no results dir


def test_existing_benchmarks_folder_is_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain=PLAIN)
    (pytester.path / ".benchmarks").mkdir()
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert (pytester.path / ".benchmarks").is_dir()


def _sigterm_rc(cwd: Path, *args: str) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    marker = cwd / "started"
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the sleeping test never started"
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_in_a_plain_project_exits_as_pytest_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sleeper=SLEEPER.replace("time.sleep(60)", "open('started', 'w').close()\n    time.sleep(60)")
    )
    with_plugin = _sigterm_rc(pytester.path)
    (pytester.path / "started").unlink()
    without = _sigterm_rc(pytester.path, "-p", "no:omnilmm")
    assert without == -signal.SIGTERM
    assert with_plugin == without


def test_eval_run_restores_process_settings(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    import gc

    import torch
    from PIL import Image

    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM")
    env_before = {n: os.environ.get(n) for n in names}
    pixels, frozen, threads = Image.MAX_IMAGE_PIXELS, gc.get_freeze_count(), torch.get_num_threads()
    result = eval_project.runpytest(
        "--model_path", str(tiny_model), "--max-new-tokens", "2", "--max-image-pixels", "123456"
    )
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["omnilmm: model_path=*"])
    assert {n: os.environ.get(n) for n in names} == env_before
    assert Image.MAX_IMAGE_PIXELS == pixels and gc.get_freeze_count() == frozen
    assert torch.get_num_threads() == threads


def test_eval_header_follows_collection(eval_project: pytest.Pytester, tiny_model: Path) -> None:
    result = eval_project.runpytest_subprocess("--model_path", str(tiny_model), "--collect-only", "-q")
    result.stdout.fnmatch_lines(["omnilmm: model_path=*", "omnilmm: results_dir=*"])
