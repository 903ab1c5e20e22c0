"""Apply a checkpoint to an already built model: every name and shape is checked before anything is
written. Names are first mapped the way transformers maps them when loading (``keymap.py``), so a file in
the layout ``save_pretrained`` writes and one saved from ``model.state_dict()`` both load."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .formats import CheckpointError, CheckpointSpec
from .keymap import to_model_names
from .reading import read_state_dict


@dataclass(frozen=True)
class LoadReport:
    """What ``apply_checkpoint`` did. Use ``model`` afterwards: a PEFT merge returns a new module."""

    spec: CheckpointSpec
    replaced: int  # distinct model tensors overwritten (tied names count once)
    total: int  # distinct tensors in the model's state dict
    missing: tuple[str, ...]  # model names kept at the base model's values (only with allow_partial)
    ignored: tuple[str, ...]  # checkpoint entries deliberately skipped (e.g. non-persistent buffers)
    tied_embeddings: bool  # a tensor shared by several names (lm_head tied to embed_tokens) was loaded once
    model: Any = field(compare=False, repr=False)
    renamed: int = 0  # checkpoint names mapped onto the model's (the layout save_pretrained writes)

    @property
    def missing_count(self) -> int:
        return len(self.missing)

    def describe(self) -> str:
        """One line for the report header."""
        text = f"{self.spec.kind} {self.spec.path}: replaced {self.replaced}/{self.total} tensors"
        if self.missing:
            text += f", {len(self.missing)} names kept from the base model (partial checkpoint)"
        if self.tied_embeddings:
            text += ", tied embeddings loaded once"
        if self.renamed:
            text += f", {self.renamed} names mapped from the saved layout"
        return text


def apply_checkpoint(model: Any, spec: CheckpointSpec, *, allow_partial: bool = False) -> LoadReport:
    """Load ``spec`` onto the already built ``model`` and return what was done.

    Every name and shape is checked before anything is written, so on CheckpointError the model is left as
    it was (except for a PEFT adapter that peft itself rejects half-way: rebuild the model then). Values are
    copied into the existing tensors, keeping the model's dtype and device. Strict: missing names are an
    error unless ``allow_partial``; unexpected names and other shapes always are. For ``peft`` the adapter
    is merged and the merged model is ``report.model``; otherwise ``report.model is model``.
    """
    if spec.kind == "peft":
        return _apply_peft(model, spec)
    import torch

    mapped = to_model_names(model, read_state_dict(spec), spec.path)
    plan = _plan_load(model, mapped.tensors, spec.path, allow_partial)
    with torch.no_grad():
        for target, source in plan.copies:
            target.copy_(source)
    return LoadReport(
        spec=spec,
        replaced=len(plan.copies),
        total=plan.total,
        missing=plan.missing,
        ignored=plan.ignored,
        tied_embeddings=plan.tied,
        model=model,
        renamed=mapped.renamed,
    )


@dataclass(frozen=True)
class _Plan:
    copies: tuple[tuple[Any, Any], ...]  # (model tensor, checkpoint tensor)
    total: int
    missing: tuple[str, ...]
    ignored: tuple[str, ...]
    tied: bool


def _alias_groups(state: dict[str, Any]) -> list[list[str]]:
    """Names of the model's state dict grouped by the storage they share (tied weights form one group)."""
    groups: dict[Any, list[str]] = {}
    for name, t in state.items():
        if t.device.type == "meta" or t.numel() == 0:
            key: Any = name
        else:
            key = (
                t.device,
                t.untyped_storage().data_ptr(),
                t.storage_offset(),
                tuple(t.shape),
                tuple(t.stride()),
            )
        groups.setdefault(key, []).append(name)
    return list(groups.values())


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _names(names: list[str], n: int = 3) -> str:
    shown = ", ".join(names[:n])
    return shown + (", …" if len(names) > n else "")


def _plan_load(model: Any, incoming: dict[str, Any], source: Path, allow_partial: bool) -> _Plan:
    import torch

    state = model.state_dict()
    transient = {name for name, _ in model.named_buffers()} - state.keys()
    patterns = [re.compile(p) for p in (getattr(model, "_keys_to_ignore_on_load_unexpected", None) or [])]
    ignored = sorted(
        k for k in incoming if k not in state and (k in transient or any(p.search(k) for p in patterns))
    )
    unexpected = sorted(k for k in incoming if k not in state and k not in ignored)
    matched = [k for k in incoming if k in state]
    groups = _alias_groups(state)

    if not matched:
        hint = _prefix_hint(unexpected, set(state))
        if hint:
            raise CheckpointError(
                f"none of the {len(incoming)} tensors in {source} match the model's names "
                f"({_names(unexpected)}); {hint}"
            )
        raise CheckpointError(
            f"none of the {len(incoming)} tensors in {source} match the model's {len(state)} names "
            f"(checkpoint: {_names(unexpected, 2)}; model: {_names(sorted(state), 2)}): it is for another "
            "architecture; point --model_path at the model it was trained from"
        )

    bad_shapes = [k for k in sorted(matched) if tuple(incoming[k].shape) != tuple(state[k].shape)]
    if bad_shapes:
        shown = "; ".join(
            f"{k}: model {tuple(state[k].shape)}, checkpoint {tuple(incoming[k].shape)}"
            for k in bad_shapes[:3]
        )
        raise CheckpointError(
            f"{_count(len(bad_shapes), 'tensor')} in {source} have another shape than in the model ({shown}"
            f"{'; …' if len(bad_shapes) > 3 else ''}): the checkpoint is for another model size or "
            "architecture; point --model_path at the base model it was trained from"
        )

    copies: list[tuple[Any, Any]] = []
    missing: list[str] = []
    tied = False
    for group in groups:
        present = [n for n in group if n in incoming]
        if not present:
            missing.extend(group)
            continue
        first = incoming[present[0]]
        for other in present[1:]:
            if not torch.equal(first, incoming[other].to(first.dtype)):
                raise CheckpointError(
                    f"checkpoint {source} has different values for {present[0]} and {other}, but the "
                    "model ties them (tie_word_embeddings): loading would silently overwrite one with the "
                    "other; use a base model with tie_word_embeddings=false, or a checkpoint in which they "
                    "are equal"
                )
        tied = tied or len(group) > 1
        copies.append((state[group[0]], first))
    missing.sort()

    if unexpected:
        hint = _prefix_hint(unexpected, set(missing))
        also = f" and lacks {len(missing)} of its tensors ({_names(missing)})" if missing else ""
        raise CheckpointError(
            f"checkpoint {source} has {_count(len(unexpected), 'tensor')} the model does not have "
            f"({_names(unexpected)}){also}; "
            + (hint or "it does not fit this model: point --model_path at the model it was trained from")
        )
    if missing and not allow_partial:
        advice = _tied_head_hint(model, missing, incoming) or (
            "if it is meant to be partial (e.g. only the language model), pass --ckpt-partial to keep "
            "the base model's values for the rest"
        )
        raise CheckpointError(
            f"checkpoint {source} lacks {len(missing)} of the model's {len(state)} tensors "
            f"({_names(missing)}); {advice}"
        )
    return _Plan(tuple(copies), len(groups), tuple(missing), tuple(ignored), tied)


def _prefix_hint(unexpected: list[str], wanted: set[str]) -> str | None:
    """Say so when the unexpected names become the model's after adding or removing one prefix."""
    from collections import Counter

    by_suffix: dict[str, list[str]] = {}
    for name in wanted:
        parts = name.split(".")
        for i in range(1, len(parts)):
            by_suffix.setdefault(".".join(parts[i:]), []).append(".".join(parts[:i]) + ".")
    votes: Counter[tuple[str, str]] = Counter()
    for key in unexpected:
        for prefix in set(by_suffix.get(key, [])):
            votes[("add", prefix)] += 1
        parts = key.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[i:]) in wanted:
                votes[("remove", ".".join(parts[:i]) + ".")] += 1
    ranked = votes.most_common(2)
    if not ranked:
        return None
    (action, prefix), count = ranked[0]
    # Generic names ("weight", "bias") fit under many prefixes: hint only at a clear, broad winner.
    if count * 2 < len(unexpected) or (len(ranked) > 1 and ranked[1][1] == count):
        return None
    if action == "add":
        why = "it was probably saved from an inner module of the model"
        fix = f"re-save it with the prefix {prefix!r} added"
    else:
        why = "it was probably saved from a wrapper around the model"
        fix = f"re-save it with the prefix {prefix!r} removed"
    return (
        f"{count} of the {len(unexpected)} unexpected names match the model after "
        f"{'adding' if action == 'add' else 'removing'} the prefix {prefix!r} ({why}): {fix}"
    )


def _tied_head_hint(model: Any, missing: list[str], incoming: dict[str, Any]) -> str | None:
    """A checkpoint saved from a tied-embedding model leaves the output head out; say so."""
    try:
        out_emb, in_emb = model.get_output_embeddings(), model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if out_emb is None or in_emb is None:
        return None
    params = dict(model.named_parameters(remove_duplicate=False))
    head = [n for n, p in params.items() if p is getattr(out_emb, "weight", None)]
    emb = [n for n, p in params.items() if p is getattr(in_emb, "weight", None)]
    if set(missing) == set(head) and any(n in incoming for n in emb):
        return (
            f"it looks saved from a model with tied embeddings ({head[0]} left out): use a base model whose "
            "config sets tie_word_embeddings=true, or pass --ckpt-partial to keep the base model's head"
        )
    return None


def _apply_peft(model: Any, spec: CheckpointSpec) -> LoadReport:
    try:
        from peft import PeftConfig, PeftModel
    except ImportError:
        raise CheckpointError(
            f"checkpoint {spec.path} is a PEFT adapter but peft is not installed; pip install "
            "'pytest-omnilmm[peft]'"
        ) from None
    import warnings

    # Read it ourselves first: a pickled adapter goes through weights_only before peft opens it.
    read_state_dict(spec)
    total = len(_alias_groups(model.state_dict()))
    try:
        config = PeftConfig.from_pretrained(str(spec.path))
        config.inference_mode = True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peft_model = PeftModel(model, config)
            result = peft_model.load_adapter(str(spec.path), adapter_name="default", is_trainable=False)
    except (ValueError, RuntimeError, KeyError, TypeError, AttributeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"PEFT adapter {spec.path} does not fit the base model ({first[:300]}); point --model_path "
            "at the model it was trained on"
        ) from None
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        peft_model.unload()
        raise CheckpointError(
            f"PEFT adapter {spec.path} does not match the model: {len(missing)} adapter tensors missing "
            f"({_names(missing)}), {len(unexpected)} unexpected ({_names(unexpected)}); point "
            "--model_path at the model it was trained on"
        )
    targeted = len(peft_model.base_model.targeted_module_names)
    merged = peft_model.merge_and_unload()
    return LoadReport(
        spec=spec, replaced=targeted, total=total, missing=(), ignored=(), tied_embeddings=False, model=merged
    )
