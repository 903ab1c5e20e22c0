"""Any ``AutoModelForImageTextToText`` family through the ``hf`` backend: both generate methods, --ckpt
in both weight layouts, and xdist, on tiny random-weight models built offline (see tiny_families.py).

Random weights answer junk: the runs assert outcomes, records, checkpoint coverage and that the same
weights give the same answers, never fixed strings.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from pytest_omnilmm.records import Record, read_records

from .tiny_families import FAMILIES, build_family

BY_NAME = {f.name: f for f in FAMILIES}
HAS_NUM2WORDS = importlib.util.find_spec("num2words") is not None

EVAL = """
import pytest

@pytest.mark.dataset("fam", path="fam.jsonl", metric="exact_match")
def test_fam(sample, generate, score):
    score(generate(sample))
"""
# One torch thread: tiny models gain nothing from two, and lose a lot when the cores are shared. The eval
# module needs no assert rewriting (pytester runs re-import, and so re-rewrite, the plugin every time).
COMMON = (
    "--max-new-tokens", "3", "--batch-size", "2", "--threads", "1", "--assert=plain",
    "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:hypothesispytest",
)  # fmt: skip


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every family built once: name -> its save_pretrained directory (``state_dict.safetensors`` beside).

    Built here, before any test's ``pytester`` snapshots ``sys.modules``: in-process runs drop the modules
    they imported first, and a C extension (torch, tokenizers, ...) imported twice crashes the interpreter.
    One load + generate through the plugin's own code imports what generation needs, for the same reason.
    """
    root = tmp_path_factory.mktemp("families")
    write_dataset(root)
    dirs = {
        f.name: build_family(f, root / f.name / "model", state_dict=root / f.name / "state_dict.safetensors")
        for f in FAMILIES
    }
    warm_up(dirs["minicpmv4_6"], root)
    return dirs


def warm_up(model_dir: Path, root: Path) -> None:
    from pytest_omnilmm.models import GenerationSettings, ModelRequest, generate_batch, load_model
    from pytest_omnilmm.sample import ImageRef, Text

    request = ModelRequest(
        label="warm", model_path=str(model_dir), ckpt=None, standalone=False, device="cpu", dtype="auto",
        trust_remote_code=False, allow_partial=False,
    )  # fmt: skip
    parts = (ImageRef(path=root / "img" / "a.png"), Text("What colour?"))
    (out,) = generate_batch(load_model(request), [parts], GenerationSettings("chat", 2, 1))
    assert out.error is None, out.error


def write_dataset(root: Path) -> None:
    """Three samples: one image + question, one interleaved (text, image, text, image, text), one more."""
    from PIL import Image

    (root / "img").mkdir(exist_ok=True)
    for name, colour, size in (("a", "red", (56, 56)), ("b", "blue", (70, 50)), ("c", "green", (40, 64))):
        Image.new("RGB", size, colour).save(root / "img" / f"{name}.png")
    rows = [
        {"id": "s0", "question": "What colour is the shape?", "image": "img/a.png", "answers": ["red"]},
        {
            "id": "s1",
            "content": [
                {"type": "text", "text": "Compare"},
                {"type": "image", "image": "img/b.png"},
                {"type": "text", "text": "with"},
                {"type": "image", "image": "img/c.png"},
                {"type": "text", "text": "which is green?"},
            ],
            "answer": "second",
        },
        {"id": "s2", "question": "Is it blue?", "image": "img/b.png", "answers": ["yes"]},
    ]
    (root / "fam.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    write_dataset(pytester.path)
    pytester.makepyfile(test_fam_eval=EVAL)
    pytester.makeini("[pytest]\nfilterwarnings = ignore::pytest.PytestAssertRewriteWarning\n")
    return pytester


def records(project: pytest.Pytester) -> list[Record]:
    run = sorted((project.path / ".omnilmm-results").iterdir())[-1]
    return list(read_records(run / "records.jsonl"))


def skip_without_num2words(name: str) -> None:
    if name == "smolvlm" and not HAS_NUM2WORDS:
        pytest.skip("SmolVLM's processor needs num2words (not installed): test_missing_processor_package")


@pytest.mark.parametrize("name", list(BY_NAME))
def test_family_chat_interleave_and_own_checkpoints(
    name: str, project: pytest.Pytester, family_dir: dict[str, Path]
) -> None:
    skip_without_num2words(name)
    model_dir = family_dir[name]
    state_dict = model_dir.parent / "state_dict.safetensors"
    # chat, as a sweep: the base model, its own state_dict(), and the file save_pretrained wrote (the
    # checkpoint layout transformers maps from when loading): the same weights three times.
    result = project.runpytest_inprocess(
        "--model_path", str(model_dir), *COMMON, "--generate_method", "chat",
        "--ckpt", "base", "--ckpt", str(state_dict), "--ckpt", str(model_dir / "model.safetensors"),
    )  # fmt: skip
    result.assert_outcomes(passed=9)
    by_label: dict[str, dict[str, str | None]] = {}
    for r in records(project):
        assert r.error is None and r.prediction is not None and r.prompt_tokens > 0, r
        by_label.setdefault(r.checkpoint, {})[r.sample_id] = r.prediction
        if r.checkpoint != "base":
            assert r.extra["replaced_tensors"] == r.extra["total_tensors"] > 0
    assert by_label["ckpt0"] == by_label["base"] == by_label["ckpt1"]

    result = project.runpytest_inprocess(
        "--model_path", str(model_dir), *COMMON, "--generate_method", "interleave"
    )
    result.assert_outcomes(passed=3)
    interleaved = {r.sample_id: r for r in records(project)}
    assert all(r.error is None and r.generate_method == "interleave" for r in interleaved.values())
    # samples with the image first read the same either way
    assert interleaved["s0"].prediction == by_label["base"]["s0"]


def test_families_under_xdist(project: pytest.Pytester, family_dir: dict[str, Path]) -> None:
    """Two families (one with a chat template, one with a prefix prompt) in one ``-n 2`` run: each
    directory is a standalone checkpoint (its own config.json, no --model_path); the answers are those of
    a run without xdist."""
    args = ("--ckpt", str(family_dir["qwen2_vl"]), "--ckpt", str(family_dir["paligemma"]), *COMMON)
    project.runpytest_inprocess(*args, "--no-resume").assert_outcomes(passed=6)
    alone = {(r.checkpoint, r.sample_id): r.prediction for r in records(project)}
    result = project.runpytest_subprocess(*args, "--no-resume", "-n", "2", timeout=300)
    result.assert_outcomes(passed=6)
    parallel = records(project)
    assert {r.worker for r in parallel} == {"gw0", "gw1"}
    assert {(r.checkpoint, r.sample_id): r.prediction for r in parallel} == alone


INTERLEAVED = ("Compare", "img/b.png", "with", "img/c.png", "which is green?")


def interleaved_parts(root: Path) -> tuple:
    from pytest_omnilmm.sample import ImageRef, Text

    return tuple(ImageRef(path=root / p) if p.endswith(".png") else Text(p) for p in INTERLEAVED)


@pytest.mark.parametrize("name", list(BY_NAME))
def test_images_stand_where_the_method_puts_them(name: str, family_dir: dict[str, Path]) -> None:
    """The prompt text and the processor's expanded tokens: ``chat`` puts both images before the text,
    ``interleave`` where they stand; by what the processor declares (template or prefix + image token)."""
    skip_without_num2words(name)
    from transformers import AutoProcessor

    from pytest_omnilmm.generation import image_placeholder, images_in_order, render_prompt

    processor = AutoProcessor.from_pretrained(family_dir[name])
    token = image_placeholder(processor)
    assert token is not None
    token_id = processor.tokenizer.convert_tokens_to_ids(token)
    parts = interleaved_parts(family_dir[name].parent.parent)
    first_image: dict[str, int] = {}
    for method in ("chat", "interleave"):
        text = render_prompt(processor, parts, method)
        at = {w: text.index(w) for w in ("Compare", "with", "which")}
        images = [i for i in range(len(text)) if text.startswith(token, i)]
        assert len(images) == 2, text
        if method == "interleave":
            assert at["Compare"] < images[0] < at["with"] < images[1] < at["which"], text
        else:
            assert images[1] < at["Compare"], text
        pixels = [ref.load() for ref in images_in_order(parts, method)]
        ids = processor(text=[text], images=[pixels], return_tensors="pt")["input_ids"][0].tolist()
        assert ids.count(token_id) >= 2
        first_image[method] = ids.index(token_id)
    assert first_image["chat"] < first_image["interleave"]


@pytest.mark.parametrize("name", list(BY_NAME))
def test_checkpoint_layouts_land_on_the_right_tensors(
    name: str, family_dir: dict[str, Path], tmp_path: Path
) -> None:
    """Other weights saved both ways (``save_pretrained``'s layout, ``model.state_dict()``) load onto the
    base model exactly: names mapped as transformers maps them when loading."""
    import copy

    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForImageTextToText

    from pytest_omnilmm.checkpoint import apply_checkpoint, inspect_checkpoint

    base = AutoModelForImageTextToText.from_pretrained(family_dir[name])
    tuned = copy.deepcopy(base)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(torch.randn(p.shape, generator=gen))
    want = {k: v.clone() for k, v in tuned.state_dict().items()}
    tuned.save_pretrained(tmp_path / "saved")
    save_file({k: v.clone().contiguous() for k, v in want.items()}, tmp_path / "state.safetensors")
    for path in (tmp_path / "saved" / "model.safetensors", tmp_path / "state.safetensors"):
        model = copy.deepcopy(base)
        report = apply_checkpoint(model, inspect_checkpoint(path))
        assert report.replaced == report.total and not report.missing
        got = model.state_dict()
        assert all(torch.equal(got[k], v) for k, v in want.items()), path.name


@pytest.mark.skipif(HAS_NUM2WORDS, reason="num2words is installed: SmolVLM runs in the family tests")
def test_missing_processor_package_is_one_line_said_once(
    project: pytest.Pytester, family_dir: dict[str, Path]
) -> None:
    result = project.runpytest_inprocess("--model_path", str(family_dir["smolvlm"]), *COMMON)
    result.assert_outcomes(failed=1, skipped=2)
    line = (
        "its processor needs the Python package 'num2words', which is not installed here; "
        "pip install num2words"
    )
    out = result.stdout.str()
    assert "Traceback" not in out and "ImportError" not in out
    # the first sample says it, once; the others are skipped pointing at it, the model is not loaded again
    result.stdout.fnmatch_lines([f"*base: {family_dir['smolvlm']}: {line}*"])
    # once, not counting pytest's own short summary (which repeats a failure's line whole under CI=true)
    said = [text for text in out.splitlines() if line in text and not text.startswith("FAILED ")]
    assert len(said) == 1, out
    assert result.ret == 1  # the failed sample fails the run; the skips only spare the repetition


def test_missing_package_lines() -> None:
    from pytest_omnilmm.packages import missing_package_line

    smol = ImportError(
        "Package `num2words` is required to run SmolVLM processor. Install it with `pip install num2words`."
    )
    hub = ImportError(
        "InternVLVideoProcessor requires the Torchvision library but it was not found in your environment. "
        "You can install it with pip: `pip install torchvision`"
    )
    assert missing_package_line(smol, "m", "processor") == (
        "m: its processor needs the Python package 'num2words', which is not installed here; "
        "pip install num2words"
    )
    assert missing_package_line(hub, "m", "processor").endswith(
        "'torchvision', which is not installed here; pip install torchvision"
    )
    nested = ModuleNotFoundError("No module named 'timm.layers'", name="timm.layers")
    assert missing_package_line(nested, "m", "model").endswith(
        "'timm', which is not installed here; pip install timm"
    )
    vague = ImportError("cannot import name X from partially initialized module")
    assert "failed on an import (cannot import name X" in missing_package_line(vague, "m", "model")


def test_prefix_prompt_without_a_template_or_image_token_is_refused(family_dir: dict[str, Path]) -> None:
    from transformers import AutoProcessor

    from pytest_omnilmm.generation import render_prompt
    from pytest_omnilmm.models import ModelLoadError, _check_prompt_format

    processor = AutoProcessor.from_pretrained(family_dir["qwen2_vl"])
    processor.chat_template = None  # a prefix prompt, with the image token Qwen2-VL's processor declares
    parts = interleaved_parts(family_dir["qwen2_vl"].parent.parent)
    assert (
        render_prompt(processor, parts, "interleave")
        == "Compare<|image_pad|>with<|image_pad|>which is green?"
    )
    _check_prompt_format(processor, "qwen")
    processor.image_token = ""
    processor.tokenizer.image_token = None
    with pytest.raises(ModelLoadError, match="has no chat template and declares no image token"):
        _check_prompt_format(processor, "qwen")


def test_one_tensor_in_both_layouts_is_refused(family_dir: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForImageTextToText

    from pytest_omnilmm.checkpoint import CheckpointError, apply_checkpoint, inspect_checkpoint

    model_dir = family_dir["llava"]
    saved = load_file(str(model_dir / "model.safetensors"))
    own = load_file(str(model_dir.parent / "state_dict.safetensors"))
    both = {
        **saved,
        "model.multi_modal_projector.linear_1.bias": own["model.multi_modal_projector.linear_1.bias"],
    }
    save_file(both, tmp_path / "both.safetensors")
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    projector = r"model\.multi_modal_projector\.linear_1\.bias"
    with pytest.raises(CheckpointError, match=rf"two tensors for the model's {projector} \(") as info:
        apply_checkpoint(model, inspect_checkpoint(tmp_path / "both.safetensors"))
    assert "(model.multi_modal_projector.linear_1.bias and multi_modal_projector.linear_1.bias" in str(
        info.value
    )
