"""Checkpoint formats, their failure modes, and content fingerprints, on a tiny real MiniCPM-V 4.6."""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from transformers import MiniCPMV4_6ForConditionalGeneration

from pytest_omnilmm.checkpoint import (
    CheckpointError,
    apply_checkpoint,
    fingerprint,
    fingerprint_model_dir,
    inspect_checkpoint,
    read_state_dict,
)
from pytest_omnilmm.checkpoint import fingerprints as fp_module
from scripts.demo.build import build_tiny_model

LM = "model.language_model."


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def base_model(tiny_dir: Path) -> Any:
    return MiniCPMV4_6ForConditionalGeneration.from_pretrained(tiny_dir).eval()


@pytest.fixture
def model(base_model: Any) -> Any:
    """A fresh copy of the base model for each test to load into."""
    return copy.deepcopy(base_model)


@pytest.fixture(scope="module")
def source_model(base_model: Any) -> Any:
    """Same architecture, different values: what a fine-tune would produce."""
    other = copy.deepcopy(base_model)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in other.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return other


@pytest.fixture(scope="module")
def source_sd(source_model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in source_model.state_dict().items()}


@pytest.fixture(scope="module")
def tied_model(base_model: Any) -> Any:
    config = copy.deepcopy(base_model.config)
    config.tie_word_embeddings = True
    torch.manual_seed(2)
    model = MiniCPMV4_6ForConditionalGeneration(config).eval()
    assert model.get_input_embeddings().weight is model.get_output_embeddings().weight
    return model


def assert_weights(model: Any, expected: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert state.keys() == expected.keys()
    different = [k for k in state if not torch.equal(state[k], expected[k].to(state[k].dtype))]
    assert not different, different[:5]


def base_sd(base_model: Any) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in base_model.state_dict().items()}


# ------------------------------------------------------------------------------------------ round trips


def test_single_safetensors_round_trip(tmp_path: Path, model: Any, source_sd: dict) -> None:
    path = tmp_path / "ft.safetensors"
    save_file(source_sd, path)
    spec = inspect_checkpoint(str(path))
    assert (spec.kind, spec.has_config, spec.weight_files) == ("safetensors", False, (path,))
    report = apply_checkpoint(model, spec)
    assert report.model is model
    assert (report.replaced, report.total, report.missing_count) == (len(source_sd), len(source_sd), 0)
    assert_weights(model, source_sd)


def test_save_pretrained_dir_round_trip(
    tmp_path: Path, model: Any, source_model: Any, source_sd: dict
) -> None:
    source_model.save_pretrained(tmp_path / "ft")
    spec = inspect_checkpoint(tmp_path / "ft")
    assert (spec.kind, spec.has_config) == ("pretrained_dir", True)
    assert [f.name for f in spec.weight_files] == ["model.safetensors"]
    apply_checkpoint(model, spec)
    assert_weights(model, source_sd)


def test_sharded_save_pretrained_round_trip(
    tmp_path: Path, model: Any, source_model: Any, source_sd: dict
) -> None:
    source_model.save_pretrained(tmp_path / "ft", max_shard_size="600KB")
    spec = inspect_checkpoint(tmp_path / "ft")
    assert (spec.kind, spec.has_config) == ("sharded", True)
    assert len(spec.weight_files) > 1
    apply_checkpoint(model, spec)
    assert_weights(model, source_sd)


def test_sharded_by_hand_round_trip(tmp_path: Path, model: Any, source_sd: dict) -> None:
    names = sorted(source_sd)
    weight_map = {}
    for i in range(3):
        part = names[i::3]
        shard = f"model-{i + 1:05d}-of-00003.safetensors"
        save_file({k: source_sd[k] for k in part}, tmp_path / shard)
        weight_map.update(dict.fromkeys(part, shard))
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    for target in (tmp_path, index):  # the directory, or the index file itself
        spec = inspect_checkpoint(target)
        assert (spec.kind, spec.has_config, len(spec.weight_files)) == ("sharded", False, 3)
    apply_checkpoint(model, spec)
    assert_weights(model, source_sd)


def test_shard_missing_from_index_is_reported(tmp_path: Path, source_sd: dict) -> None:
    save_file(source_sd, tmp_path / "a.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"x": "a.safetensors", "y": "b.safetensors"}})
    )
    with pytest.raises(CheckpointError, match=r"shard b\.safetensors listed in .* is missing"):
        inspect_checkpoint(tmp_path)


def _optimizer_state() -> dict:
    param = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    param.sum().backward()
    opt.step()
    return opt.state_dict()


@pytest.mark.parametrize(
    ("suffix", "wrapper", "prefix"),
    [
        (".bin", "plain", ""),
        (".pt", "state_dict", "module."),
        (".pth", "model", "_orig_mod."),
        (".pt", "model+optimizer", "module._orig_mod."),
        (".ckpt", "state_dict", "_orig_mod.module."),
        (".bin", "module", "module.module."),
    ],
)
def test_torch_pickles_round_trip(
    tmp_path: Path, model: Any, source_sd: dict, suffix: str, wrapper: str, prefix: str
) -> None:
    sd = {prefix + k: v for k, v in source_sd.items()}
    payload: Any = {
        "plain": sd,
        "state_dict": {"state_dict": sd, "epoch": 3, "global_step": 100},
        "model": {"model": sd},
        "module": {"module": sd},
        "model+optimizer": {"model": sd, "optimizer": _optimizer_state(), "args": {"lr": 0.1}},
    }[wrapper]
    path = tmp_path / f"ft{suffix}"
    torch.save(payload, path)
    spec = inspect_checkpoint(path)
    assert spec.kind == "torch"
    assert read_state_dict(spec).keys() == source_sd.keys()
    apply_checkpoint(model, spec)
    assert_weights(model, source_sd)


def test_compiled_submodule_prefix_is_stripped(tmp_path: Path, model: Any, source_sd: dict) -> None:
    sd = {k.replace(LM, "model._orig_mod.language_model."): v for k, v in source_sd.items()}
    torch.save(sd, tmp_path / "ft.pt")
    apply_checkpoint(model, inspect_checkpoint(tmp_path / "ft.pt"))
    assert_weights(model, source_sd)


def test_legacy_torch_format_loads(tmp_path: Path, model: Any, source_sd: dict) -> None:
    torch.save(source_sd, tmp_path / "old.bin", _use_new_zipfile_serialization=False)
    apply_checkpoint(model, inspect_checkpoint(tmp_path / "old.bin"))
    assert_weights(model, source_sd)


def test_model_dtype_is_kept(tmp_path: Path, base_model: Any, source_sd: dict) -> None:
    model = copy.deepcopy(base_model).to(torch.bfloat16)
    save_file(source_sd, tmp_path / "ft.safetensors")
    apply_checkpoint(model, inspect_checkpoint(tmp_path / "ft.safetensors"))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert_weights(model, source_sd)


# ------------------------------------------------------------------------------------------------ PEFT


def test_peft_lora_adapter_merges_exactly(tmp_path: Path, base_model: Any, model: Any) -> None:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(3)
    peft_model = get_peft_model(copy.deepcopy(base_model), config)
    peft_model.save_pretrained(tmp_path / "adapter")
    adapter = read_state_dict(inspect_checkpoint(tmp_path / "adapter"))

    spec = inspect_checkpoint(tmp_path / "adapter")
    assert spec.kind == "peft"
    report = apply_checkpoint(model, spec)
    merged = report.model.state_dict()
    base = base_model.state_dict()
    assert merged.keys() == base.keys()

    scale = config.lora_alpha / config.r
    changed = set()
    for key in adapter:
        if ".lora_A." not in key:
            continue
        module = key.removeprefix("base_model.model.").split(".lora_A.")[0]
        a, b = adapter[key], adapter[key.replace(".lora_A.", ".lora_B.")]
        expected = base[module + ".weight"] + scale * (b @ a)
        torch.testing.assert_close(merged[module + ".weight"], expected, rtol=1e-5, atol=1e-6)
        changed.add(module + ".weight")
    # every q_proj and v_proj (vision tower, its merger, language model), and nothing else touched
    targets = {n + ".weight" for n, _ in base_model.named_modules() if n.endswith(("q_proj", "v_proj"))}
    assert changed == targets and report.replaced == len(targets) == 10
    assert all(torch.equal(merged[k], base[k]) for k in base if k not in changed)
    assert not any("lora" in k for k in merged)


def test_peft_adapter_for_another_model_size_is_refused(tmp_path: Path, base_model: Any, model: Any) -> None:
    from peft import LoraConfig, get_peft_model

    config = copy.deepcopy(base_model.config)
    config.text_config.hidden_size = 96
    other = MiniCPMV4_6ForConditionalGeneration(config)
    get_peft_model(other, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(tmp_path / "adapter")
    with pytest.raises(CheckpointError, match="does not fit the base model"):
        apply_checkpoint(model, inspect_checkpoint(tmp_path / "adapter"))


def test_peft_not_installed_says_how_to_install(
    tmp_path: Path, model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "adapter_config.json").write_text("{}")
    save_file({"x": torch.zeros(1)}, tmp_path / "adapter_model.safetensors")
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(CheckpointError, match=r"pip install 'pytest-omnilmm\[peft\]'"):
        apply_checkpoint(model, inspect_checkpoint(tmp_path))


# -------------------------------------------------------------------------------------- unsafe pickles


class RunsCode:
    """Pickles to a call of ``open(marker, "w")``: unpickling it would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("payload", ["reduce", "namespace", "module"])
def test_pickle_that_could_run_code_is_refused_and_nothing_runs(
    tmp_path: Path, model: Any, base_model: Any, payload: str
) -> None:
    marker = tmp_path / "PWNED"
    obj: Any = {
        "reduce": {"w": torch.zeros(2), "hook": RunsCode(marker)},
        "namespace": {"state_dict": {"w": torch.zeros(2)}, "args": argparse.Namespace(lr=0.1)},
        "module": torch.nn.Linear(2, 2),
    }[payload]
    path = tmp_path / "evil.pt"
    torch.save(obj, path)
    spec = inspect_checkpoint(path)  # a well-formed archive: refused when read, not before
    with pytest.raises(CheckpointError) as info:
        apply_checkpoint(model, spec)
    message = str(info.value)
    assert "\n" not in message
    assert "execute code" in message and "nothing in it was run" in message
    assert "safetensors" in message and str(path) in message
    assert not marker.exists()
    assert_weights(model, base_sd(base_model))


# ------------------------------------------------------------------------------------ damaged files


def test_truncated_safetensors_fails_at_inspection(tmp_path: Path, source_sd: dict) -> None:
    path = tmp_path / "ft.safetensors"
    save_file(source_sd, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"not a valid safetensors file.*truncated"):
        inspect_checkpoint(path)
    path.write_bytes(data[:5])
    with pytest.raises(CheckpointError, match="too short"):
        inspect_checkpoint(path)
    path.write_bytes(data + b"junk")
    with pytest.raises(CheckpointError, match="after the last tensor"):
        inspect_checkpoint(path)


def test_garbage_bytes_fail_at_inspection(tmp_path: Path) -> None:
    garbage = bytes(range(256)) * 40
    (tmp_path / "a.safetensors").write_bytes(garbage)
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        inspect_checkpoint(tmp_path / "a.safetensors")
    (tmp_path / "b.pt").write_bytes(b"\x01\x02" + garbage)
    with pytest.raises(CheckpointError, match=r"neither a torch\.save archive nor a pickle"):
        inspect_checkpoint(tmp_path / "b.pt")
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8]}}).encode()
    (tmp_path / "c.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 8)
    with pytest.raises(CheckpointError, match="needs 16 bytes"):
        inspect_checkpoint(tmp_path / "c.safetensors")


def test_truncated_torch_archive_fails_at_inspection(tmp_path: Path, source_sd: dict) -> None:
    path = tmp_path / "ft.pt"
    torch.save(source_sd, path)
    path.write_bytes(path.read_bytes()[:-2000])
    with pytest.raises(CheckpointError, match="damaged zip archive"):
        inspect_checkpoint(path)


# ------------------------------------------------------------------------------------- bad locations


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"does not exist; check the --ckpt path"):
        inspect_checkpoint(tmp_path / "nope.safetensors")


def test_unsupported_suffix(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    with pytest.raises(CheckpointError, match=r"unsupported format '\.gguf'"):
        inspect_checkpoint(tmp_path / "m.gguf")


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        inspect_checkpoint(tmp_path)
    assert str(info.value) == (
        f"checkpoint {tmp_path} is an empty directory; point --ckpt at a .safetensors file or a "
        "save_pretrained directory"
    )


def test_directory_without_weights_lists_what_it_found(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "README.md").write_text("hi")
    with pytest.raises(CheckpointError, match=r"contains no weights \(found: README\.md, config\.json\)"):
        inspect_checkpoint(tmp_path)


def test_directory_with_only_other_pickles_asks_for_the_file(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(1)}, tmp_path / "final.pt")
    with pytest.raises(CheckpointError, match=r"only final\.pt; point --ckpt at the file you mean"):
        inspect_checkpoint(tmp_path)


def test_directory_with_two_weight_sets(tmp_path: Path, source_sd: dict) -> None:
    save_file(source_sd, tmp_path / "model.safetensors")
    torch.save(source_sd, tmp_path / "pytorch_model.bin")
    with pytest.raises(
        CheckpointError, match=r"2 candidate weight sets \(model\.safetensors, pytorch_model\.bin\)"
    ):
        inspect_checkpoint(tmp_path)
    (tmp_path / "pytorch_model.bin").unlink()
    save_file({"x": torch.zeros(1)}, tmp_path / "ema.safetensors")
    with pytest.raises(CheckpointError, match=r"ema\.safetensors, model\.safetensors\); point --ckpt at"):
        inspect_checkpoint(tmp_path)
    # Training side files next to one weight file are fine.
    (tmp_path / "ema.safetensors").unlink()
    torch.save({"step": 3}, tmp_path / "optimizer.pt")
    assert inspect_checkpoint(tmp_path).weight_files == (tmp_path / "model.safetensors",)


def test_shards_without_index(tmp_path: Path, source_sd: dict) -> None:
    for i in (1, 2):
        save_file(source_sd, tmp_path / f"model-0000{i}-of-00002.safetensors")
    with pytest.raises(CheckpointError, match=r"holds shards .* but no model\.safetensors\.index\.json"):
        inspect_checkpoint(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path, source_sd: dict) -> None:
    path = tmp_path / "ft.safetensors"
    save_file(source_sd, path)
    path.chmod(0)
    with pytest.raises(CheckpointError, match="permission denied"):
        inspect_checkpoint(path)


def test_inspection_does_not_import_torch(tmp_path: Path, source_sd: dict) -> None:
    save_file(source_sd, tmp_path / "model.safetensors")
    code = (
        "import sys; from pytest_omnilmm.checkpoint import inspect_checkpoint, fingerprint;"
        f"fingerprint(inspect_checkpoint({str(tmp_path)!r}), cache_path=None);"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    env = {**os.environ, "PYTEST_OMNILMM_CACHE": str(tmp_path / "cache")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# ---------------------------------------------------------------------------------- key / shape checks


def test_partial_checkpoint_needs_the_flag(
    tmp_path: Path, model: Any, base_model: Any, source_sd: dict
) -> None:
    lm_only = {k: v for k, v in source_sd.items() if k.startswith(LM)}
    save_file(lm_only, tmp_path / "lm.safetensors")
    spec = inspect_checkpoint(tmp_path / "lm.safetensors")
    with pytest.raises(CheckpointError) as info:
        apply_checkpoint(model, spec)
    n_missing = len(source_sd) - len(lm_only)
    assert f"lacks {n_missing} of the model's {len(source_sd)} tensors" in str(info.value)
    assert "--ckpt-partial" in str(info.value)
    assert_weights(model, base_sd(base_model))  # nothing written before the check failed

    report = apply_checkpoint(model, spec, allow_partial=True)
    assert (report.replaced, report.total, report.missing_count) == (len(lm_only), len(source_sd), n_missing)
    assert "kept from the base model" in report.describe()
    expected = {k: (source_sd[k] if k.startswith(LM) else v) for k, v in base_sd(base_model).items()}
    assert_weights(model, expected)


def test_unexpected_keys_are_refused_even_when_partial(tmp_path: Path, model: Any, source_sd: dict) -> None:
    save_file({**source_sd, "model.extra_head.weight": torch.zeros(2)}, tmp_path / "ft.safetensors")
    for partial in (False, True):
        with pytest.raises(
            CheckpointError, match=r"has 1 tensor the model does not have \(model\.extra_head"
        ):
            apply_checkpoint(model, inspect_checkpoint(tmp_path / "ft.safetensors"), allow_partial=partial)


def test_keys_saved_from_the_base_model_load_as_transformers_loads_them(
    tmp_path: Path, model: Any, base_model: Any, source_sd: dict
) -> None:
    """``model.model.state_dict()`` (no ``model.`` prefix): transformers adds its ``base_model_prefix``
    when loading, so the names fit; only the head, which the base model has not, is missing."""
    inner = {k.removeprefix("model."): v for k, v in source_sd.items() if k.startswith("model.")}
    save_file(inner, tmp_path / "inner.safetensors")
    spec = inspect_checkpoint(tmp_path / "inner.safetensors")
    with pytest.raises(CheckpointError, match=r"lacks 1 of the model's \d+ tensors \(lm_head\.weight\)"):
        apply_checkpoint(model, spec)
    report = apply_checkpoint(model, spec, allow_partial=True)
    assert (report.replaced, report.missing, report.renamed) == (len(inner), ("lm_head.weight",), len(inner))
    expected = {k: (base_sd(base_model)[k] if k == "lm_head.weight" else v) for k, v in source_sd.items()}
    assert_weights(model, expected)


def test_keys_saved_from_an_inner_module_hint_at_the_prefix(
    tmp_path: Path, model: Any, source_sd: dict
) -> None:
    inner = {k.removeprefix(LM): v for k, v in source_sd.items() if k.startswith(LM)}
    save_file(inner, tmp_path / "inner.safetensors")
    with pytest.raises(CheckpointError) as info:
        apply_checkpoint(model, inspect_checkpoint(tmp_path / "inner.safetensors"), allow_partial=True)
    assert (
        f"{len(inner)} of the {len(inner)} unexpected names match the model after adding the prefix "
        f"'{LM}'" in str(info.value)
    )


def test_keys_with_an_extra_prefix_hint_at_removing_it(tmp_path: Path, model: Any, source_sd: dict) -> None:
    save_file({"backbone." + k: v for k, v in source_sd.items()}, tmp_path / "ft.safetensors")
    with pytest.raises(CheckpointError, match=r"after removing the prefix 'backbone\.'"):
        apply_checkpoint(model, inspect_checkpoint(tmp_path / "ft.safetensors"))


def test_layout_transformers_converts_loads_through_its_converters(tmp_path: Path) -> None:
    """A layout transformers reshapes when loading (Mixtral saves one w1/w2/w3 per expert; the model fuses
    them into gate_up_proj/down_proj) loads onto the model exactly, in the saved and in the model's layout."""
    from transformers import MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8, num_local_experts=3, num_experts_per_tok=2,
    )  # fmt: skip
    torch.manual_seed(0)
    base = MixtralForCausalLM(config).eval()
    tuned = copy.deepcopy(base)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(torch.randn_like(p))
    tuned.save_pretrained(tmp_path / "saved")
    saved = read_state_dict(inspect_checkpoint(tmp_path / "saved" / "model.safetensors"))
    assert "model.layers.0.block_sparse_moe.experts.2.w3.weight" in saved  # the per-expert layout
    save_file({k: v.contiguous() for k, v in tuned.state_dict().items()}, tmp_path / "own.safetensors")
    for path in (tmp_path / "saved" / "model.safetensors", tmp_path / "own.safetensors"):
        model = copy.deepcopy(base)
        report = apply_checkpoint(model, inspect_checkpoint(path))
        assert report.replaced == report.total
        assert_weights(model, tuned.state_dict())
    assert report.renamed == 0  # the model's own names are not mapped


def test_checkpoint_for_another_model_size(tmp_path: Path, model: Any, base_model: Any) -> None:
    config = copy.deepcopy(base_model.config)
    config.text_config.hidden_size = 96
    bigger = MiniCPMV4_6ForConditionalGeneration(config)
    save_file({k: v.contiguous() for k, v in bigger.state_dict().items()}, tmp_path / "big.safetensors")
    for partial in (False, True):
        with pytest.raises(CheckpointError) as info:
            apply_checkpoint(model, inspect_checkpoint(tmp_path / "big.safetensors"), allow_partial=partial)
        message = str(info.value)
        assert "have another shape than in the model" in message and "another model size" in message
        assert "model.language_model.embed_tokens.weight: model (446, 64), checkpoint (446, 96)" in message
    assert_weights(model, base_sd(base_model))


@pytest.mark.parametrize("layers", [1, 3])
def test_checkpoint_for_another_architecture(tmp_path: Path, model: Any, layers: int) -> None:
    # A bare Linear has names ("weight", "bias") that fit under many of the model's modules: no false hint.
    other = (
        torch.nn.Linear(4, 4)
        if layers == 1
        else torch.nn.Sequential(*[torch.nn.Linear(4, 4) for _ in range(layers)])
    )
    n = len(other.state_dict())
    save_file(other.state_dict(), tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError) as info:
        apply_checkpoint(model, inspect_checkpoint(tmp_path / "other.safetensors"), allow_partial=True)
    assert f"none of the {n} tensors" in str(info.value)
    assert "it is for another architecture" in str(info.value) and "prefix" not in str(info.value)


def test_non_persistent_buffers_in_a_checkpoint_are_ignored(
    tmp_path: Path, model: Any, source_sd: dict
) -> None:
    name = "model.language_model.rotary_emb.inv_freq"
    extra = {**source_sd, name: model.get_buffer(name).clone()}
    save_file(extra, tmp_path / "ft.safetensors")
    report = apply_checkpoint(model, inspect_checkpoint(tmp_path / "ft.safetensors"))
    assert report.ignored == (name,)
    assert_weights(model, source_sd)


# ----------------------------------------------------------------------------------- tied embeddings

HEAD, EMBED = "lm_head.weight", "model.language_model.embed_tokens.weight"


def test_tied_model_save_pretrained_round_trip(tmp_path: Path, tied_model: Any, source_sd: dict) -> None:
    tied_model.save_pretrained(tmp_path / "tied")  # transformers writes the shared tensor once
    spec = inspect_checkpoint(tmp_path / "tied")
    assert HEAD not in read_state_dict(spec)
    target = copy.deepcopy(tied_model)
    with torch.no_grad():
        for p in target.parameters():
            p.zero_()
    report = apply_checkpoint(target, spec)
    assert report.tied_embeddings and report.missing_count == 0
    assert report.total == report.replaced == len(source_sd) - 1
    assert target.get_output_embeddings().weight is target.get_input_embeddings().weight
    assert_weights(target, tied_model.state_dict())


def test_tied_model_accepts_equal_head_and_embedding(tmp_path: Path, tied_model: Any) -> None:
    sd = {k: v.clone() for k, v in tied_model.state_dict().items()}
    assert torch.equal(sd[HEAD], sd[EMBED])
    torch.save(sd, tmp_path / "tied.pt")  # torch.save keeps both names
    target = copy.deepcopy(tied_model)
    report = apply_checkpoint(target, inspect_checkpoint(tmp_path / "tied.pt"))
    assert report.tied_embeddings
    assert_weights(target, sd)


def test_untied_head_into_tied_model_is_refused(tmp_path: Path, tied_model: Any, source_sd: dict) -> None:
    assert not torch.equal(source_sd[HEAD], source_sd[EMBED])
    save_file(source_sd, tmp_path / "untied.safetensors")
    target = copy.deepcopy(tied_model)
    with pytest.raises(CheckpointError, match=r"different values for .* but the model ties them"):
        apply_checkpoint(target, inspect_checkpoint(tmp_path / "untied.safetensors"))
    assert_weights(target, tied_model.state_dict())


def test_tied_checkpoint_into_untied_model_explains_the_missing_head(
    tmp_path: Path, tied_model: Any, model: Any
) -> None:
    tied_model.save_pretrained(tmp_path / "tied")
    with pytest.raises(
        CheckpointError, match=r"saved from a model with tied embeddings \(lm_head\.weight left out\)"
    ):
        apply_checkpoint(model, inspect_checkpoint(tmp_path / "tied"))


# --------------------------------------------------------------------------------------- fingerprints


def _aged(path: Path, seconds: float = 60.0) -> Path:
    """Backdate a file so its hash may be cached (a just-written file is hashed but never cached)."""
    stamp = path.stat().st_mtime - seconds
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture
def count_hashing(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = fp_module.sha256_file

    def counting(path: Path) -> str:
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(fp_module, "sha256_file", counting)
    return calls


def test_fingerprint_is_cached_and_follows_content(tmp_path: Path, count_hashing: list[Path]) -> None:
    cache = tmp_path / "cache" / "hashes.json"
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.arange(6.0)}, path)
    _aged(path)
    first = fingerprint(path, cache_path=cache)
    assert len(count_hashing) == 1 and cache.is_file()
    assert fingerprint(inspect_checkpoint(path), cache_path=cache) == first
    assert len(count_hashing) == 1  # served from the cache, file not read again

    save_file({"w": torch.arange(6.0) + 1}, path)  # same path, same size, new content
    _aged(path, 30.0)
    second = fingerprint(path, cache_path=cache)
    assert second != first and len(count_hashing) == 2

    copy_path = tmp_path / "elsewhere" / "renamed.safetensors"
    copy_path.parent.mkdir()
    copy_path.write_bytes(path.read_bytes())
    assert fingerprint(copy_path, cache_path=cache) == second  # content, not location, decides


def test_fresh_file_is_hashed_but_not_cached(tmp_path: Path, count_hashing: list[Path]) -> None:
    cache = tmp_path / "hashes.json"
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(3)}, path)
    assert fingerprint(path, cache_path=cache) == fingerprint(path, cache_path=cache)
    assert len(count_hashing) == 2


def test_unusable_cache_does_not_fail(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(3)}, path)
    _aged(path)
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    expected = fingerprint(path, cache_path=tmp_path / "ok.json")
    assert fingerprint(path, cache_path=blocker / "hashes.json") == expected  # cannot create the cache dir
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    assert fingerprint(path, cache_path=corrupt) == expected
    assert json.loads(corrupt.read_text())["version"] == 1  # rewritten whole


def test_cache_location_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_OMNILMM_CACHE", str(tmp_path / "c"))
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(3)}, path)
    _aged(path)
    fingerprint(path)
    entries = json.loads((tmp_path / "c" / "hashes.json").read_text())["entries"]
    assert list(entries) == [str(path.resolve())]


def test_hash_streams_in_one_mebibyte_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    path = tmp_path / "big.bin"
    data = os.urandom(2 * fp_module.CHUNK_SIZE + 123)
    path.write_bytes(data)
    sizes: list[int] = []
    real = fp_module.iter_chunks

    def spy(stream: Any) -> Any:
        for chunk in real(stream):
            sizes.append(len(chunk))
            yield chunk

    monkeypatch.setattr(fp_module, "iter_chunks", spy)
    assert fp_module.sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sizes == [fp_module.CHUNK_SIZE, fp_module.CHUNK_SIZE, 123]


def test_sharded_fingerprint_changes_with_one_shard(
    tmp_path: Path, source_model: Any, count_hashing: list[Path]
) -> None:
    cache = tmp_path / "hashes.json"
    ckpt = tmp_path / "ft"
    source_model.save_pretrained(ckpt, max_shard_size="600KB")
    for f in ckpt.iterdir():
        _aged(f)
    spec = inspect_checkpoint(ckpt)
    first = fingerprint(spec, cache_path=cache)
    hashed = len(count_hashing)
    assert hashed == len(spec.weight_files) + len(spec.extra_files)
    shard = spec.weight_files[-1]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    _aged(shard, 10)
    assert fingerprint(spec, cache_path=cache) != first
    assert len(count_hashing) == hashed + 1  # only the changed shard is read again


def test_model_dir_fingerprint_covers_templates_not_clutter(tmp_path: Path, tiny_dir: Path) -> None:
    import shutil

    cache = tmp_path / "hashes.json"
    model_dir = Path(shutil.copytree(tiny_dir, tmp_path / "m"))
    first = fingerprint_model_dir(model_dir, cache_path=cache)
    (model_dir / "README.md").write_text("notes")
    (model_dir / "checkpoint-500").mkdir()
    save_file({"w": torch.ones(2)}, model_dir / "checkpoint-500" / "model.safetensors")
    assert fingerprint_model_dir(model_dir, cache_path=cache) == first
    template = model_dir / "chat_template.jinja"
    template.write_text(template.read_text() + " ")
    assert fingerprint_model_dir(model_dir, cache_path=cache) != first
    with pytest.raises(CheckpointError, match="not a directory"):
        fingerprint_model_dir(template)
