"""The demo: a deterministic generator, a disjoint train split, a trainable tiny model (the maker lives in
scripts/demo/, outside the package), and the shipped weights loading through the public transformers API
without remote code."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.demo import datafiles, synth
from scripts.demo.build import TinySpec

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "pytest_omnilmm" / "demo"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    first = datafiles.write_demo_data(tmp_path / "a", seed=7)
    second = datafiles.write_demo_data(tmp_path / "b", seed=7)
    assert first == second
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    other = _tree(datafiles.write_demo_data(tmp_path / "c", seed=8) and tmp_path / "c")
    assert other["demo_vqa.jsonl"] != a["demo_vqa.jsonl"]


def test_written_files_have_the_published_shapes(tmp_path: Path) -> None:
    datafiles.write_demo_data(tmp_path, seed=3)
    rows = [json.loads(line) for line in (tmp_path / "demo_vqa.jsonl").read_text().splitlines()]
    assert {"id", "question", "answers", "category"} <= rows[0].keys()
    assert any("images" in r for r in rows) and any("content" in r for r in rows)
    for r in rows:
        for name in r.get("images", [r.get("image")] if "image" in r else []):
            assert (tmp_path / name).is_file()
    textvqa = json.loads((tmp_path / "textvqa" / "TextVQA_0.5.1_val.json").read_text())
    assert textvqa["dataset_name"] == "textvqa" and all(len(d["answers"]) == 10 for d in textvqa["data"])
    assert all(
        (tmp_path / "textvqa" / "train_images" / f"{d['image_id']}.jpg").is_file() for d in textvqa["data"]
    )
    docvqa = json.loads((tmp_path / "docvqa" / "val_v1.0_withQT.json").read_text())
    assert all((tmp_path / "docvqa" / d["image"]).is_file() for d in docvqa["data"])
    yesno = (tmp_path / "demo_yesno.tsv").read_text().splitlines()[1:]
    first, second = yesno[0].split("\t"), yesno[1].split("\t")
    assert (first[3], second[3]) == ("Yes", "No") and second[1] == first[0]
    mcq = [line.split("\t") for line in (tmp_path / "demo_mcq.tsv").read_text().splitlines()[1:]]
    indices = {int(r[0]) for r in mcq}
    assert any(i > 1_000_000 for i in indices) and all(i % 1_000_000 in indices for i in indices)


def test_rotated_choices_keep_the_right_option() -> None:
    qa = synth.make_mcq(random.Random(5))
    correct = dict(qa.choices)[qa.answer]
    for copy in datafiles.circular_copies(qa):
        assert dict(copy.choices)[copy.answer] == correct
    assert len({copy.answer for copy in datafiles.circular_copies(qa)}) == len(qa.choices)


def test_training_stream_never_shows_an_eval_image() -> None:
    from scripts.demo.train import TrainConfig, batches

    split = datafiles.eval_split()
    eval_images = split.image_specs()
    eval_keys = {(qa.images, qa.question) for rows in split.datasets().values() for qa in rows}
    # The vision warm-up, then (no warm-up) the full mix: MCQ, yes/no, word cards and forms with follow-ups.
    configs = [TrainConfig(batch_size=50), TrainConfig(batch_size=50, warmup_data_steps=0)]
    talks = [
        turns
        for cfg in configs
        for batch, _ in zip(batches(cfg, split), range(40), strict=False)
        for turns in batch
    ]
    assert {qa.family for turns in talks for qa in turns[1:]} == {"vqa", "mcq", "yesno", "docvqa"}
    assert any(isinstance(turns[0].images[0], synth.WordCard) for turns in talks)
    assert any(len(turns) > 1 for turns in talks)
    seen = [qa for turns in talks for qa in turns]
    assert all(spec not in eval_images for qa in seen for spec in qa.images)
    assert all((qa.images, qa.question) not in eval_keys for qa in seen)
    # The filter itself bites: excluding what an unfiltered stream shows first removes exactly those.
    unfiltered = synth.train_stream(11, {"vqa": 1.0})
    banned = frozenset(spec for _ in range(30) for spec in next(unfiltered).images)
    filtered = synth.train_stream(11, {"vqa": 1.0}, exclude_images=banned)
    assert all(spec not in banned for _ in range(200) for spec in next(filtered).images)


def test_a_short_training_run_lowers_the_loss() -> None:
    import torch

    from scripts.demo.train import FAMILY_WEIGHTS, Encoder, answer_loss, build_untrained

    torch.set_num_threads(2)
    spec = TinySpec(hidden=64, vision_hidden=64, vision_layers=2)
    model, processor = build_untrained(spec, seed=0)
    encoder = Encoder(processor)
    stream = synth.train_stream(99, FAMILY_WEIGHTS)
    held_out = encoder.train_batch([(next(stream),) for _ in range(8)])

    def held_out_loss() -> float:
        with torch.no_grad():
            return float(model(**held_out).loss)

    before = held_out_loss()
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(10):
        loss = answer_loss(model, encoder.train_batch([(next(stream),) for _ in range(8)]))
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    after = held_out_loss()
    assert after < before * 0.7, (before, after)


def test_each_batch_is_one_slice_of_a_length_sorted_pool() -> None:
    from scripts.demo.train import TrainConfig, _length_key, batches

    pool_batches = 4
    stream = batches(
        TrainConfig(batch_size=8, bucket=pool_batches, warmup_data_steps=0), datafiles.eval_split()
    )
    for _ in range(3):
        # The batches of one pool, ordered by their shortest row, do not overlap in length.
        pool = sorted(([_length_key(t) for t in next(stream)] for _ in range(pool_batches)), key=min)
        assert all(max(a) <= min(b) for a, b in itertools.pairwise(pool)), pool


def test_answers_tokenize_apart_from_the_prompt() -> None:
    from scripts.demo.train import Encoder, build_untrained

    _, processor = build_untrained(TinySpec(hidden=32, vision_hidden=32, vision_layers=2), seed=0)
    split = datafiles.eval_split()
    rows = [rows[0] for rows in split.datasets().values()]
    batch = Encoder(processor).train_batch([(qa,) for qa in rows])
    tok = processor.tokenizer
    for i, qa in enumerate(rows):
        kept = batch["labels"][i][batch["labels"][i] != -100].tolist()
        assert tok.decode(kept) == qa.answer + "<|im_end|>"


def test_a_conversation_opens_with_the_eval_prompt_and_trains_every_answer() -> None:
    import torch

    from scripts.demo.conversations import converse, follow_ups
    from scripts.demo.train import Encoder, answer_loss, build_untrained

    model, processor = build_untrained(TinySpec(hidden=32, vision_hidden=32, vision_layers=2), seed=0)
    encoder = Encoder(processor)
    rng = random.Random(4)
    scene_q = synth.vqa_single(rng, "colour")
    form_q = synth.make_docvqa(rng)
    talks = [
        (scene_q, *follow_ups(rng, scene_q)[:5]),
        (form_q, *follow_ups(rng, form_q)),
        converse(rng, synth.vqa_two_images(rng, True), 5),
    ]
    assert [len(t) for t in talks] == [6, 3, 1]
    assert {len(converse(rng, scene_q, 2)) for _ in range(50)} == {1, 2, 3}
    # A form's follow-ups ask the other fields, never the asked one in other words.
    assert sorted(q.answer for q in talks[1]) == sorted(form_q.images[0].values)  # type: ignore[union-attr]
    assert all(q.question != scene_q.question for q in follow_ups(rng, scene_q))
    assert follow_ups(rng, synth.make_textvqa(rng)) == []  # a second wording would teach copying
    batch = encoder.train_batch(talks)
    tok = processor.tokenizer
    for i, turns in enumerate(talks):
        assert encoder.conversation_text(turns).startswith(encoder.prompts([turns[0]])[0] + turns[0].answer)
        kept = batch["labels"][i][batch["labels"][i] != -100].tolist()
        assert tok.decode(kept) == "".join(qa.answer + "<|im_end|>" for qa in turns)
    with torch.no_grad():
        assert float(answer_loss(model, batch)) == pytest.approx(float(model(**batch).loss), rel=1e-5)


SHIPPED = DEMO_DIR / "model"
needs_shipped = pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="demo model not built yet")

LOAD_AND_ASK = """
import sys, torch
from transformers import AutoModelForImageTextToText, AutoProcessor
from scripts.demo.synth import render, single_scene, chat_messages, vqa_single
import random
model_dir = sys.argv[1]
processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=False)
model = AutoModelForImageTextToText.from_pretrained(model_dir, trust_remote_code=False).eval()
assert type(model).__name__ == "MiniCPMV4_6ForConditionalGeneration", type(model)
assert processor.tokenizer.padding_side == "left"
qa = vqa_single(random.Random(424242), "colour")
inputs = processor.apply_chat_template(
    [[{"role": "user", "content": [{"type": "image", "image": render(qa.images[0])},
                                   {"type": "text", "text": qa.question}]}]],
    add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt")
out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
print(processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip())
"""


@needs_shipped
def test_shipped_model_loads_without_remote_code_and_answers() -> None:
    done = subprocess.run(
        # From the repository root, so that ``scripts.demo`` imports in the child (``-c`` puts the cwd first).
        [sys.executable, "-c", LOAD_AND_ASK, str(SHIPPED)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answer = done.stdout.strip().splitlines()[-1]
    assert answer in synth.COLOURS, answer


@needs_shipped
def test_shipped_checkpoints_load_strictly_and_fit_the_budget() -> None:
    from safetensors import safe_open
    from transformers import AutoModelForImageTextToText

    from scripts.demo.train import load_state

    model = AutoModelForImageTextToText.from_pretrained(SHIPPED, trust_remote_code=False)
    for name in ("early", "final"):
        path = DEMO_DIR / "checkpoints" / f"{name}.safetensors"
        with safe_open(str(path), "pt") as fh:
            keys = list(fh.keys())
        assert all(
            k.startswith(("model.language_model.", "model.vision_tower.", "model.merger.", "lm_head."))
            for k in keys
        )
        load_state(model, path)
    files = [*SHIPPED.rglob("*"), *(DEMO_DIR / "checkpoints").glob("*.safetensors")]
    assert sum(p.stat().st_size for p in files if p.is_file()) <= 20 * 1024 * 1024
    manifest = json.loads((DEMO_DIR / "manifest.json").read_text())
    assert manifest["accuracy"]["final"]["overall"] > manifest["accuracy"]["early"]["overall"]


def test_cli_help_lists_both_commands(capsys: pytest.CaptureFixture[str]) -> None:
    from scripts.demo.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "data" in text and "train" in text


def test_the_readme_spelling_runs_from_the_repository_root() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "scripts.demo", "train", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: python -m scripts.demo train"), done.stdout[:200]
    assert "--steps" in done.stdout and "--early-step" in done.stdout


def test_the_package_ships_the_demo_outputs_not_its_maker() -> None:
    """The plugin needs the weights at run time, never the trainer or the data generator (scripts/demo/)."""
    code = sorted(p.name for p in DEMO_DIR.rglob("*.py"))
    assert code == ["__init__.py"], code
    assert {p.name for p in DEMO_DIR.iterdir()} >= {"model", "checkpoints", "manifest.json"}
