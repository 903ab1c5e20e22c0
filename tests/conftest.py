"""Shared fixtures: a tiny random-weight MiniCPM-V 4.6 built once per test session (seconds, offline)."""

from __future__ import annotations

from pathlib import Path

# In-process pytester runs restore sys.modules afterwards; a C extension imported for the first time inside
# one (numpy through the bootstrap, matplotlib through the plots) cannot be imported again in the next one.
# Importing them here, once, keeps them loaded for the whole session.
import matplotlib.backends.backend_agg
import matplotlib.figure  # noqa: F401
import numpy  # noqa: F401
import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A save_pretrained directory: random weights, real processor, locally trained tokenizer."""
    from scripts.demo.build import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


COLOURS = ("red", "green", "blue", "yellow")


def write_jsonl_dataset(root: Path, n: int = 6, name: str = "tiny.jsonl") -> Path:
    """A real JSONL dataset with real PNG files: one coloured square per sample."""
    import json

    from PIL import Image

    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        colour = COLOURS[i % len(COLOURS)]
        Image.new("RGB", (56 + 8 * i, 56), colour).save(images / f"{i}.png")
        lines.append(
            json.dumps(
                {
                    "id": f"s{i}",
                    "question": "What colour is the shape?",
                    "image": f"images/{i}.png",
                    "answers": [colour],
                }
            )
        )
    path = root / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


EVAL_MODULE = """
import pytest

@pytest.mark.dataset("tiny", path="tiny.jsonl", metric="exact_match")
def test_tiny(sample, generate, score):
    score(generate(sample))
"""


@pytest.fixture
def eval_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with one eval module over a 6-sample JSONL dataset."""
    write_jsonl_dataset(pytester.path)
    pytester.makepyfile(test_tiny_eval=EVAL_MODULE)
    # Pins the rootdir (results go under it); in-process runs re-import nothing, so rewriting is moot.
    pytester.makeini("[pytest]\nfilterwarnings = ignore::pytest.PytestAssertRewriteWarning\n")
    return pytester
