"""EvalConfig: precedence option > env > ini > default, the source in the header, validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_omnilmm import config as config_mod
from pytest_omnilmm.config import FLAGS, SETTINGS, ConfigError, build_config, resolve
from pytest_omnilmm.probes import Probed, probe

from .conftest import EVAL_MODULE, write_jsonl_dataset


def lookup_from(options: dict[str, object], env: dict[str, str], ini: dict[str, object]):
    table = {s.name: s for s in SETTINGS}
    flags = {name for name, _flag, _env, _help in FLAGS}

    def lookup(name: str) -> tuple[object, str]:
        if name in flags:
            return resolve(options.get(name), env, "OMNILMM_" + name.upper(), ini.get(name), False)
        s = table[name]
        return resolve(options.get(name), env, s.env, ini.get(s.ini), s.default, multiple=s.multiple)

    return lookup


def configure(lookup, *, rootdir: Path, env: dict[str, str] | None = None):
    """What pytest_configure does on the controller: the pure config, then the probes."""
    return probe(build_config(lookup, rootdir=rootdir, env=env), env)


def test_precedence_option_env_ini_default(tiny_model: Path, tmp_path: Path) -> None:
    ini = {"omnilmm_max_new_tokens": "7", "omnilmm_num_beams": "2", "omnilmm_dtype": "float16"}
    env = {"OMNILMM_MAX_NEW_TOKENS": "9", "OMNILMM_NUM_BEAMS": "3"}
    options = {"model_path": str(tiny_model), "max_new_tokens": "11"}
    cfg = configure(lookup_from(options, env, ini), rootdir=tmp_path, env=env)
    assert cfg.max_new_tokens == 11 and cfg.sources["max_new_tokens"] == "option"
    assert cfg.num_beams == 3 and cfg.sources["num_beams"] == "env"
    assert cfg.dtype == "float16" and cfg.sources["dtype"] == "ini"
    assert cfg.batch_size == 8 and cfg.sources["batch_size"] == "default"


def test_header_shows_sources(
    pytester: pytest.Pytester, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyprojecttoml(
        f'[tool.pytest.ini_options]\nomnilmm_model_path = "{tiny_model}"\nomnilmm_dtype = "float16"\n'
    )
    monkeypatch.setenv("OMNILMM_NUM_BEAMS", "2")
    # The header is printed only for a session with eval items (tests/test_isolation.py).
    write_jsonl_dataset(pytester.path)
    pytester.makepyfile(test_tiny_eval=EVAL_MODULE)
    result = pytester.runpytest_subprocess("--max-new-tokens", "5", "--collect-only")
    result.stdout.fnmatch_lines(
        [
            f"omnilmm: model_path={tiny_model} [[]ini[]]",
            "*dtype=float16 [[]ini[]]*",
            "omnilmm: max_new_tokens=5 [[]option[]] num_beams=2 [[]env[]]*",
        ]
    )


def test_old_is_chat_and_unknown_method_names_the_choices(tiny_model: Path, tmp_path: Path) -> None:
    cfg = configure(
        lookup_from({"model_path": str(tiny_model), "generate_method": "old"}, {}, {}), rootdir=tmp_path
    )
    assert cfg.generate_method == "chat"
    with pytest.raises(
        ConfigError, match=r"--generate_method: unknown method 'x'; choose chat \(alias old\)"
    ):
        configure(
            lookup_from({"model_path": str(tiny_model), "generate_method": "x"}, {}, {}), rootdir=tmp_path
        )


def test_empty_ckpt_means_none(tiny_model: Path, tmp_path: Path) -> None:
    for ckpt in ([""], None, []):
        cfg = configure(lookup_from({"model_path": str(tiny_model), "ckpt": ckpt}, {}, {}), rootdir=tmp_path)
        assert [(c.label, c.path) for c in cfg.checkpoints] == [("base", None)]


def test_ckpt_dir_with_config_stands_alone_without_model_path(tiny_model: Path, tmp_path: Path) -> None:
    cfg = configure(lookup_from({"ckpt": [str(tiny_model)]}, {}, {}), rootdir=tmp_path)
    (choice,) = cfg.checkpoints
    assert choice.standalone and cfg.model_path == ""
    # with an explicit --model_path the same directory's weights go on top of the base
    cfg = configure(
        lookup_from({"ckpt": [str(tiny_model)], "model_path": str(tiny_model)}, {}, {}), rootdir=tmp_path
    )
    assert not cfg.checkpoints[0].standalone


def test_bare_weights_need_an_architecture_when_no_default_model(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import load_file, save_file

    weights = tmp_path / "w.safetensors"
    save_file(load_file(str(tiny_model / "model.safetensors")), str(weights))
    monkeypatch.setattr(config_mod, "DEMO_MODEL_DIR", tmp_path / "no-demo-model")
    with pytest.raises(ConfigError, match="the architecture must come from --model_path"):
        configure(lookup_from({"ckpt": [str(weights)]}, {}, {}), rootdir=tmp_path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model_path": "/nonexistent/model"}, "--model_path /nonexistent/model: no such directory"),
        ({"ckpt": ["nope.pt"]}, "--ckpt nope.pt:"),
        ({"limit": "0"}, "--limit: 0 is too small"),
        ({"max_drop": "5"}, "--max-drop: 5.0 is outside 0..1"),
        ({"gate": "lenient"}, "--gate: 'lenient' is not a gate mode"),
        ({"min_score": ["textvqa"]}, "--min-score: 'textvqa' is not NAME=NUMBER"),
        ({"max_slowdown": "10"}, "--max-slowdown: '10' is ambiguous"),
        ({"max_slowdown": "fast"}, "--max-slowdown: 'fast' is not a percentage"),
        ({"shard": "3/3"}, "--shard: '3/3' is not I/N with 0 <= I < N"),
        ({"gpus": "zero"}, "--gpus: 'zero' is not a GPU list"),
        ({"baseline": "missing.json"}, "--baseline missing.json: no such file"),
        ({"metric_flavor": "lmms"}, "--metric-flavor: unknown flavour 'lmms'"),
    ],
)
def test_each_bad_value_is_one_line(tiny_model: Path, tmp_path: Path, options: dict, message: str) -> None:
    options = {"model_path": str(tiny_model), **options}
    with pytest.raises(ConfigError) as info:
        configure(lookup_from(options, {}, {}), rootdir=tmp_path, env={})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_model_path_must_have_config(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    with pytest.raises(ConfigError, match="is an empty directory"):
        configure(lookup_from({"model_path": str(tmp_path / "m")}, {}, {}), rootdir=tmp_path)
    (tmp_path / "m" / "weights.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"has no config.json \(found: weights.bin\)"):
        configure(lookup_from({"model_path": str(tmp_path / "m")}, {}, {}), rootdir=tmp_path)


def test_gpus_respect_existing_visible_devices(tiny_model: Path, tmp_path: Path) -> None:
    env = {"CUDA_VISIBLE_DEVICES": "4,6"}
    cfg = configure(
        lookup_from({"model_path": str(tiny_model), "gpus": "1,0"}, env, {}), rootdir=tmp_path, env=env
    )
    assert cfg.gpus == ("6", "4")
    with pytest.raises(ConfigError, match="GPU 2 is not among CUDA_VISIBLE_DEVICES=4,6"):
        configure(
            lookup_from({"model_path": str(tiny_model), "gpus": "2"}, env, {}), rootdir=tmp_path, env=env
        )


def test_build_config_is_pure_and_the_probes_find_what_is_missing(tmp_path: Path) -> None:
    """Nothing named here exists: the pure config accepts it all (no file system, hub or nvidia-smi);
    each probe then names its own setting, as before."""
    env = {"OMNILMM_BASELINE": "gone.json"}
    options = {
        "model_path": str(tmp_path / "no-model"),
        "ckpt": ["gone.safetensors"],
        "data": ["d=missing.jsonl"],
        "lmudata": "no-lmudata",
        "backend": "no-such-backend",
    }
    cfg = build_config(lookup_from(options, env, {}), rootdir=tmp_path, env=env)
    assert cfg.checkpoints[0].path == (Path.cwd() / "gone.safetensors").resolve()
    assert cfg.data["d"] == tmp_path / "missing.jsonl" and cfg.baseline == tmp_path / "gone.json"
    with pytest.raises(ConfigError, match=r"^--ckpt gone.safetensors: checkpoint .* does not exist"):
        probe(cfg, env)
    for name, message in [
        ("ckpt", "^--model_path .*/no-model: no such directory"),
        ("model_path", "^--backend 'no-such-backend': no such backend; installed: hf, openai"),
        ("backend", r"^--data d=.*/missing.jsonl: no such file or directory"),
        ("data", r"^--lmudata no-lmudata \(or LMUData\): not a directory"),
        ("lmudata", r"^OMNILMM_BASELINE \(environment variable for --baseline\) gone.json: no such file"),
    ]:
        options.pop(name)
        cfg = build_config(lookup_from(options, env, {}), rootdir=tmp_path, env=env)
        with pytest.raises(ConfigError, match=message):
            probe(cfg, env)


def test_a_worker_takes_the_controllers_findings(tiny_model: Path, tmp_path: Path) -> None:
    """xdist workers never probe: the controller's findings travel as plain values and complete the
    worker's own pure config into the controller's."""
    lookup = lookup_from({"ckpt": [str(tiny_model), "base"]}, {}, {})
    controller = configure(lookup, rootdir=tmp_path)
    # the sweep's "base" needs a base model: the bundled demo; ckpt0 has its own config.json
    assert controller.model_path == str(config_mod.DEMO_MODEL_DIR.resolve())
    assert [c.standalone for c in controller.checkpoints] == [True, False]
    plain = Probed.of(controller).to_plain()
    worker = Probed.from_plain(plain).apply(build_config(lookup, rootdir=tmp_path))
    assert worker == controller and worker.sources == controller.sources

    lookup = lookup_from({"ckpt": [str(tiny_model)]}, {}, {})
    controller = configure(lookup, rootdir=tmp_path)
    assert controller.model_path == "" and controller.sources["model_path"] == "checkpoint"
    worker = Probed.from_plain(Probed.of(controller).to_plain()).apply(build_config(lookup, rootdir=tmp_path))
    assert worker == controller and worker.checkpoints[0].standalone
