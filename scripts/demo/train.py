"""Train the tiny demo MiniCPM-V 4.6 on the synthetic train stream, on CPU, with a fixed seed.

Each training sequence is a conversation (``conversations.py``) whose first turn is exactly the prompt the
plugin sends (the processor's own chat template; images first, then text; MCQ and yes/no wrapped as
``synth.prompt_parts`` says), followed by up to ``max_extra_turns`` text-only follow-up questions about the
same image. The model is trained only on the answer tokens and each closing ``<|im_end|>``. Nothing of
the eval split is trained on: any training question showing an eval image is dropped
(``EvalSplit.image_specs``).

Output layout (``--out``): ``model/`` (``save_pretrained`` of the final weights, tokenizer, processor),
``checkpoints/early.safetensors`` and ``checkpoints/final.safetensors`` (plain state dicts, fp16) and
``manifest.json`` (how it was made and what each checkpoint scores on the eval split).
"""

from __future__ import annotations

import json
import math
import platform
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scripts.demo.build import TinySpec, build_config, build_processor, train_tokenizer
from scripts.demo.conversations import Conversation, conversations
from scripts.demo.datafiles import EVAL_SEED, EvalSplit, eval_split, stored_image
from scripts.demo.synth import (
    COLOURS,
    POSITIONS,
    QA,
    SHAPES,
    WORDS,
    chat_messages,
    prompt_parts,
    train_stream,
    vqa_single,
)

TRAIN_SEED = 1234
FAMILY_WEIGHTS: dict[str, float] = {"vqa": 0.3, "mcq": 0.2, "yesno": 0.15, "textvqa": 0.15, "docvqa": 0.2}
ANSWER_END = "<|im_end|>"


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 9000
    batch_size: int = 16
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.01
    early_step: int = 1000
    warmup_data_steps: int = 1200  # steps of single-image vision questions, before the full mix
    max_extra_turns: int = 3  # follow-up questions about a training image (0: one question per sequence)
    bucket: int = 4  # batches per length-sorted pool
    eval_every: int = 500  # quick progress evals on a slice of the eval split; 0 = never
    seed: int = TRAIN_SEED
    eval_seed: int = EVAL_SEED
    threads: int = 1
    max_minutes: float | None = None  # stop early (and say so) when the wall clock runs out
    save_every: int = 250  # training state for --resume; a killed run continues where it was
    resume: bool = False
    spec: TinySpec = field(default_factory=lambda: DEMO_SPEC)


DEMO_SPEC = TinySpec(
    hidden=128,
    layers=2,
    # Eight 16-dim heads, no key/value sharing: with four 32-dim heads over two shared key/value heads
    # the model never learned to match a word in the question against the image or the options (yes/no
    # and MCQ stayed at chance after 3,000 steps); with eight it learned a text-only yes/no in 500.
    heads=8,
    kv_heads=8,
    head_dim=16,
    vision_hidden=64,
    vision_layers=2,
    # 224 px -> 64 visual tokens (4x downsample): at 112 px (16 tokens) the model learned colours but
    # located shapes far more slowly.
    image_size=224,
    vocab_size=512,
)


# ---------------------------------------------------------------- tokenizer corpus


def tokenizer_corpus(seed: int) -> list[str]:
    """Every prompt shape and answer word the demo uses, so each becomes a token or two."""
    stream = train_stream(seed, FAMILY_WEIGHTS)
    lines = []
    for _ in range(2000):
        qa = next(stream)
        text = " ".join(p for p in prompt_parts(qa) if isinstance(p, str))
        lines.append(f"user\n{text}\nassistant\n{qa.answer}")
    vocab = [*COLOURS, *SHAPES, *POSITIONS, *WORDS, "Yes", "No", "A", "B", "C", "D", "1", "2", "3", "4", "5"]
    lines += [f"\n{word}" for word in vocab] * 20
    return lines


# ---------------------------------------------------------------- batches


@dataclass
class Encoder:
    """Turns conversations into processor inputs; ``labels`` mask all but the answers and their end tokens.

    ``prompts`` and ``generate_inputs`` take single questions (evaluation); ``train_batch`` conversations.
    """

    processor: Any

    def prompts(self, rows: Sequence[QA]) -> list[str]:
        return [
            self.processor.apply_chat_template(chat_messages(qa), add_generation_prompt=True, tokenize=False)
            for qa in rows
        ]

    def images(self, rows: Sequence[QA]) -> list[list[Any]]:
        return [[stored_image(spec) for spec in qa.images] for qa in rows]

    def conversation_text(self, turns: Conversation) -> str:
        """The chat text of a conversation, answers included; its first turn is the eval prompt."""
        messages: list[dict[str, object]] = []
        for i, qa in enumerate(turns):
            content = [
                {"type": "text", "text": p} if isinstance(p, str) else {"type": "image"}
                for p in prompt_parts(qa)
                if isinstance(p, str) or i == 0  # later turns: the text only, the image is in the first turn
            ]
            messages += [{"role": "user", "content": content}, {"role": "assistant", "content": qa.answer}]
        prompt = self.processor.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
        return prompt + turns[-1].answer + ANSWER_END

    def train_batch(self, rows: Sequence[Conversation]) -> dict[str, Any]:
        """Processor inputs plus ``labels``: every answer and its ``<|im_end|>``, nothing else."""
        tok = self.processor.tokenizer
        texts = [self.conversation_text(turns) for turns in rows]
        images = self.images([turns[0] for turns in rows])
        inputs = self.processor(images=images, text=texts, padding=True, return_tensors="pt")
        header = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
        end = tok.convert_tokens_to_ids(ANSWER_END)
        labels = inputs["input_ids"].clone()
        labels[:] = -100
        for i, turns in enumerate(rows):
            ids = inputs["input_ids"][i].tolist()
            starts = [j + len(header) for j in range(len(ids)) if ids[j : j + len(header)] == header]
            targets = [tok(qa.answer + ANSWER_END, add_special_tokens=False)["input_ids"] for qa in turns]
            if len(starts) != len(turns):
                raise RuntimeError(f"found {len(starts)} answers in a {len(turns)}-turn conversation")
            for start, target in zip(starts, targets, strict=True):
                stop = ids.index(end, start) + 1
                # The answer must tokenize apart from the text around it, or the labels would be wrong.
                if ids[start:stop] != target:
                    raise RuntimeError(
                        f"answer {tok.decode(target)!r} does not tokenize apart from the prompt"
                    )
                labels[i, start:stop] = inputs["input_ids"][i, start:stop]
        inputs["labels"] = labels
        return dict(inputs)

    def generate_inputs(self, rows: Sequence[QA]) -> dict[str, Any]:
        return dict(
            self.processor(
                images=self.images(rows), text=self.prompts(rows), padding=True, return_tensors="pt"
            )
        )


# ---------------------------------------------------------------- scoring


def normalise(text: str) -> str:
    return " ".join(text.strip().lower().rstrip(".").split())


def vqa_score(prediction: str, references: Sequence[str]) -> float:
    """VQA accuracy, leave-one-annotator-out, with a light normalisation (a training-time yardstick)."""
    pred = normalise(prediction)
    refs = [normalise(r) for r in references]
    if len(refs) < 2:
        return float(pred in refs)
    scores = []
    for skip in range(len(refs)):
        matches = sum(1 for j, r in enumerate(refs) if j != skip and r == pred)
        scores.append(min(1.0, matches / 3))
    return sum(scores) / len(scores)


def score(qa: QA, prediction: str) -> float:
    if qa.family == "textvqa":
        return vqa_score(prediction, qa.references)
    if qa.family == "ocr":  # OCRBench: the reference appears in the prediction
        return float(any(normalise(r) in normalise(prediction) for r in qa.references))
    return float(normalise(prediction) in {normalise(r) for r in qa.references})


def evaluate(
    model: Any,
    encoder: Encoder,
    datasets: dict[str, Sequence[QA]],
    batch_size: int = 16,
) -> dict[str, Any]:
    """Greedy-decode every question; per-dataset accuracy, their mean (``overall``) and the micro mean."""
    import torch

    model.eval()
    tok = encoder.processor.tokenizer
    per_dataset: dict[str, float] = {}
    total, count = 0.0, 0
    with torch.inference_mode():
        for name, rows in datasets.items():
            scores = []
            for start in range(0, len(rows), batch_size):
                chunk = rows[start : start + batch_size]
                inputs = encoder.generate_inputs(chunk)
                out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
                new = out[:, inputs["input_ids"].shape[1] :]
                answers = tok.batch_decode(new, skip_special_tokens=True)
                scores += [score(qa, a) for qa, a in zip(chunk, answers, strict=True)]
            per_dataset[name] = sum(scores) / len(scores)
            total += sum(scores)
            count += len(scores)
    model.train()
    overall = sum(per_dataset.values()) / len(per_dataset)
    return {"per_dataset": per_dataset, "overall": overall, "micro": total / count, "samples": count}


# ---------------------------------------------------------------- training


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def build_untrained(spec: TinySpec, seed: int) -> tuple[Any, Any]:
    """A random-weight demo model and its processor (tokenizer trained on the demo's vocabulary)."""
    import torch
    from transformers import GenerationConfig, MiniCPMV4_6ForConditionalGeneration

    tokenizer = train_tokenizer(tokenizer_corpus(seed), spec.vocab_size)
    processor = build_processor(tokenizer, spec)
    config = build_config(tokenizer, spec)
    torch.manual_seed(seed)
    model = MiniCPMV4_6ForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=8,
    )
    return model, processor


VISION_CATEGORIES = ("colour", "shape", "position", "count")


def vision_stream(seed: int, exclude_images: frozenset[Any]) -> Iterator[QA]:
    """Single-image colour / shape / position / count questions: what teaches a tiny model to look."""
    rng = random.Random(seed)
    while True:
        qa = vqa_single(rng, rng.choice(VISION_CATEGORIES))
        if not any(spec in exclude_images for spec in qa.images):
            yield qa


VISION_FAMILIES = frozenset({"vqa"})


def batches(cfg: TrainConfig, split: EvalSplit) -> Iterator[list[Conversation]]:
    """A vision warm-up in two halves (two seeds), then the full mix; conversations, bucketed by length.

    From scratch, a tiny model on the full mix sits on the answer priors for thousands of steps and never
    learns to look (measured: chance level after 4000 steps); single-image questions first teach it to read
    the image, and the mix then builds on that. Each batch is cut from a sorted pool of ``cfg.bucket``
    batches' worth of conversations, so a batch pads to a length its rows share (an MCQ or a two-image
    question no longer pads fifteen short rows to its length).
    """
    exclude = split.image_specs()
    extra = cfg.max_extra_turns
    warm = tuple(
        conversations(cfg.seed + 10 + i, vision_stream(cfg.seed + 1 + i, exclude), extra, VISION_FAMILIES)
        for i in range(2)
    )
    mixed = conversations(cfg.seed + 20, train_stream(cfg.seed + 1, FAMILY_WEIGHTS, exclude), extra)
    order = random.Random(cfg.seed + 30)
    half = cfg.warmup_data_steps // 2
    step = 0
    while True:
        stream = warm[0] if step < half else warm[1] if step < 2 * half else mixed
        pool = sorted((next(stream) for _ in range(cfg.bucket * cfg.batch_size)), key=_length_key)
        chunks = [pool[k * cfg.batch_size : (k + 1) * cfg.batch_size] for k in range(cfg.bucket)]
        order.shuffle(chunks)
        for chunk in chunks:
            yield chunk
            step += 1


def _length_key(turns: Conversation) -> tuple[int, int]:
    """What a conversation's token count mostly depends on: its images, then its text."""
    text = sum(len(p) for qa in turns for p in prompt_parts(qa) if isinstance(p, str))
    return len(turns[0].images), text + sum(len(qa.answer) for qa in turns)


def answer_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Mean cross-entropy over the labelled tokens, with the LM head applied to those positions only.

    The same value as ``model(**batch).loss``, without computing logits for every visual and prompt token.
    """
    import torch.nn.functional as F

    inputs = {k: v for k, v in batch.items() if k != "labels"}
    hidden = model.model(**inputs)[0]
    target = batch["labels"][:, 1:]
    keep = target != -100
    logits = model.lm_head(hidden[:, :-1][keep])
    return F.cross_entropy(logits.float(), target[keep])


def save_state(model: Any, path: Path) -> None:
    """A plain fp16 state dict with the model's own key names (``model.language_model.*``, ``lm_head.*``)."""
    import torch
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt"})


def load_state(model: Any, path: Path) -> None:
    """Load a checkpoint written by ``save_state`` into a float32 model (strict: every key must match)."""
    import torch
    from safetensors.torch import load_file

    state = {k: v.to(torch.float32) for k, v in load_file(str(path)).items()}
    model.load_state_dict(state, strict=True)


Log = Callable[[str], None]


def train(out: Path, cfg: TrainConfig, log: Log = print) -> dict[str, Any]:
    """Train, write ``out/model``, ``out/checkpoints/{early,final}.safetensors`` and ``out/manifest.json``."""
    import torch
    import transformers

    torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    out = Path(out)
    started = time.perf_counter()
    split = eval_split(cfg.eval_seed)
    datasets = {k: list(v) for k, v in split.datasets().items()}
    probe = {k: v[::3] for k, v in datasets.items()}  # a third (odd stride: both halves of yes/no pairs)

    model, processor = build_untrained(cfg.spec, cfg.seed)
    encoder = Encoder(processor)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.2f} M parameters; training {cfg.steps} steps of {cfg.batch_size}")
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )
    model.train()
    ckpt_dir = out / "checkpoints"
    history: list[dict[str, Any]] = []
    running: float | None = None
    stopped_early = False
    resume_path = out / "resume.pt"
    first_step, spent_before = 0, 0.0
    if cfg.resume and resume_path.exists():
        saved = torch.load(resume_path, weights_only=True)
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        first_step, running, spent_before = saved["step"], saved["running"], saved["seconds"]
        history = json.loads(saved["history"])
        started -= spent_before
        log(f"resuming at step {first_step} from {resume_path}")
    step = 0
    for step, rows in enumerate(batches(cfg, split)):
        if step < first_step:
            continue  # the stream is replayed, not stored: skipping questions is cheap (nothing is drawn)
        if step >= cfg.steps:
            break
        if cfg.max_minutes is not None and time.perf_counter() - started > cfg.max_minutes * 60:
            stopped_early = True
            log(f"time limit of {cfg.max_minutes} min reached at step {step}; stopping")
            break
        for group in optimiser.param_groups:
            group["lr"] = _lr_at(step, cfg)
        loss = answer_loss(model, encoder.train_batch(rows))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if (step + 1) % 50 == 0:
            log(f"step {step + 1}: loss {running:.4f}  ({time.perf_counter() - started:.0f} s)")
        if step + 1 == cfg.early_step:
            save_state(model, ckpt_dir / "early.safetensors")
        if cfg.save_every and (step + 1) % cfg.save_every == 0:
            out.mkdir(parents=True, exist_ok=True)
            state = {
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "step": step + 1,
                "running": running,
                "seconds": time.perf_counter() - started,
                "history": json.dumps(history),
            }
            torch.save(state, resume_path.with_suffix(".tmp"))
            resume_path.with_suffix(".tmp").replace(resume_path)
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
            result = evaluate(model, encoder, probe)
            history.append({"step": step + 1, "loss": running, **result})
            log(f"step {step + 1}: probe accuracy {_fmt(result)}")
    final_step = min(step, cfg.steps)
    save_state(model, ckpt_dir / "final.safetensors")
    train_seconds = time.perf_counter() - started
    resume_path.unlink(missing_ok=True)

    model.save_pretrained(out / "model")
    processor.save_pretrained(out / "model")

    scores = score_checkpoints(out, cfg.eval_seed, model, encoder, log)
    manifest = {
        "command": "python -m scripts.demo train " + _cli_args(cfg, out),
        "seed": cfg.seed,
        "eval_seed": cfg.eval_seed,
        "steps": final_step,
        "resumed_from_step": first_step or None,
        "early_step": cfg.early_step,
        "stopped_early_by_time_limit": stopped_early,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "spec": asdict(cfg.spec),
        "parameters": n_params,
        "family_weights": FAMILY_WEIGHTS,
        "warmup_data_steps": cfg.warmup_data_steps,
        "max_extra_turns": cfg.max_extra_turns,
        "bucket": cfg.bucket,
        "train_wall_seconds": round(train_seconds, 1),
        "total_wall_seconds": round(time.perf_counter() - started, 1),
        "threads": cfg.threads,
        "checkpoint_dtype": "float16 (loaded into float32; the accuracies below are of the loaded files)",
        "accuracy": scores,
        "progress": history,
        "eval_metric": "greedy decoding, max 6 new tokens; normalised exact match (MCQ: the letter); "
        "TextVQA: VQA accuracy; overall = mean of per-dataset accuracies, micro = mean over samples",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def score_checkpoints(
    out: Path,
    eval_seed: int = EVAL_SEED,
    model: Any = None,
    encoder: Encoder | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Accuracy of ``out/checkpoints/{early,final}.safetensors`` on the eval split, as shipped: the fp16
    files loaded back into a float32 model."""
    if model is None or encoder is None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model = AutoModelForImageTextToText.from_pretrained(out / "model", trust_remote_code=False)
        encoder = Encoder(AutoProcessor.from_pretrained(out / "model", trust_remote_code=False))
    datasets = {k: list(v) for k, v in eval_split(eval_seed).datasets().items()}
    scores: dict[str, Any] = {}
    for name in ("early", "final"):
        path = out / "checkpoints" / f"{name}.safetensors"
        if path.exists():
            load_state(model, path)
            scores[name] = evaluate(model, encoder, datasets)
            log(f"{name}: {_fmt(scores[name])}")
    return scores


def rescore(out: Path, threads: int = 1, log: Log = print) -> dict[str, Any]:
    """Re-measure the checkpoints in ``out`` and rewrite the accuracy in its manifest."""
    import torch

    torch.set_num_threads(threads)
    path = Path(out) / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["accuracy"] = score_checkpoints(Path(out), manifest.get("eval_seed", EVAL_SEED), log=log)
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _fmt(result: dict[str, Any]) -> str:
    parts = " ".join(f"{k}={v:.3f}" for k, v in result["per_dataset"].items())
    return f"overall={result['overall']:.3f} micro={result['micro']:.3f} | {parts}"


def _cli_args(cfg: TrainConfig, out: Path) -> str:
    return f"--out {out} --steps {cfg.steps} --early-step {cfg.early_step} --seed {cfg.seed}"
