"""The plugin's command-line options and ini keys, and where each setting's value comes from (option >
env > ini > default: ``config.resolve``), read through pytest's ``config`` here and nowhere else. What the
values mean and how they are validated is ``config.py``; this module only connects it to pytest.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from .config import FLAGS, METAVARS, SETTINGS, flag_help_text, help_text, resolve
from .keys import CONFIG_KEY, RUN_ID_KEY, is_worker

Lookup = Callable[[str], tuple[object, str]]


def add_options(parser: pytest.Parser) -> None:
    """One ``--flag`` and one ini key per setting of ``config.SETTINGS`` / ``config.FLAGS``."""
    group = parser.getgroup("omnilmm", "pytest-omnilmm: evaluate multimodal LLM checkpoints")
    aliases = {"model_path": ["--model-path"], "generate_method": ["--generate-method"]}
    for s in SETTINGS:
        names = [s.flag, *aliases.get(s.name, [])]
        group.addoption(
            *names,
            action="append" if s.multiple else "store",
            dest=f"omnilmm_{s.name}",
            default=None,
            metavar=METAVARS.get(s.name, "VALUE"),
            help=help_text(s),
        )
        parser.addini(
            s.ini, s.help, type="linelist" if s.multiple else "string", default=[] if s.multiple else None
        )
    for name, flag, env, text in FLAGS:
        group.addoption(
            flag,
            action="store_true",
            dest=f"omnilmm_{name}",
            default=None,
            help=flag_help_text(name, env, text),
        )
        parser.addini(f"omnilmm_{name}", text, type="bool", default=False)


def lookup(config: pytest.Config) -> Lookup:
    """``lookup(name) -> (raw value, source)`` for ``config.build_config``."""
    table = {s.name: s for s in SETTINGS}
    flags = {name: env for name, _flag, env, _help in FLAGS}

    def _lookup(name: str) -> tuple[object, str]:
        if name == "gpus" and is_worker(config):
            # A worker is already pinned (its CUDA_VISIBLE_DEVICES is one GPU): nothing to re-check.
            return None, "controller"
        option_value = config.getoption(f"omnilmm_{name}")
        if name in flags:
            ini_value = config.getini(f"omnilmm_{name}") or None
            return resolve(option_value, os.environ, flags[name], ini_value, False)
        s = table[name]
        return resolve(option_value, os.environ, s.env, config.getini(s.ini), s.default, multiple=s.multiple)

    return _lookup


def header_lines(config: pytest.Config) -> list[str]:
    """The settings header of a session with eval items: each value and where it came from."""
    cfg = config.stash.get(CONFIG_KEY, None)
    if cfg is None:
        return []
    src = cfg.sources
    ckpts = ", ".join(f"{c.label}={c.path}" if c.path else "none" for c in cfg.checkpoints)
    lines = [
        f"omnilmm: model_path={cfg.model_path or '(from checkpoint)'} [{src.get('model_path')}]",
        f"omnilmm: ckpt={ckpts} [{src.get('ckpt')}]",
        f"omnilmm: generate_method={cfg.generate_method} [{src.get('generate_method')}] "
        f"device={cfg.device} [{src.get('device')}] dtype={cfg.dtype} [{src.get('dtype')}] "
        f"batch_size={'auto' if cfg.auto_batch else cfg.batch_size} [{src.get('batch_size')}]",
        f"omnilmm: max_new_tokens={cfg.max_new_tokens} [{src.get('max_new_tokens')}] "
        f"num_beams={cfg.num_beams} [{src.get('num_beams')}] limit={cfg.limit} [{src.get('limit')}] "
        f"metric_flavor={cfg.metric_flavor} [{src.get('metric_flavor')}]",
        f"omnilmm: results_dir={cfg.results_dir}/{config.stash.get(RUN_ID_KEY, '?')} "
        f"[{src.get('results_dir')}] "
        f"resume={'on' if cfg.resume else 'off'} trust_remote_code={cfg.trust_remote_code}",
    ]
    if cfg.baseline or cfg.save_baseline:
        lines.append(
            f"omnilmm: baseline={cfg.baseline} save_baseline={cfg.save_baseline} gate={cfg.gate} "
            f"max_drop={cfg.max_drop}"
        )
    return lines
