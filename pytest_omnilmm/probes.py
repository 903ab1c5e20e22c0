"""Probes: what only the machine can tell about a run's settings, asked once, on the controller.

``config.build_config`` is pure (options, environment and ini in, a frozen ``EvalConfig`` out). The probes
look: at the ``--ckpt`` headers (readable? a save_pretrained directory with its own config.json?), at
``--model_path`` (a model directory, or a hub id that is cached or reachable), at the installed backends,
at the ``--data`` files and image folders, ``--lmudata``, ``--results-dir``, ``--baseline`` and
``--save-baseline``, and ask nvidia-smi about ``--gpus``. ``probe`` runs them all where pytest_configure
builds the config on the controller. An xdist worker never probes: the controller hands it ``Probed``
(what the probes changed in the config) through ``workerinput``.

Errors are ``ConfigError``s worded like the pure checks': they start with the option's flag, and name the
environment variable or ini key instead when the value came from there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .config import CheckpointChoice, ConfigError, EvalConfig, name_the_source
from .gpus import probe_gpus

PROBED_KEY = "omnilmm_probed"  # the workerinput entry that carries ``Probed`` to xdist workers
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class Probed:
    """What the probes changed in the config: sent to xdist workers (plain values), which never probe."""

    model_path: str
    model_is_local: bool
    model_source: str  # sources["model_path"]: as given, or "checkpoint" when every checkpoint stands alone
    standalone: tuple[bool, ...]  # per checkpoint, in order
    gpus: tuple[str, ...]

    @classmethod
    def of(cls, config: EvalConfig) -> Probed:
        """The probed facts of a config ``probe`` returned."""
        return cls(
            model_path=config.model_path,
            model_is_local=config.model_is_local,
            model_source=str(config.sources.get("model_path", "default")),
            standalone=tuple(c.standalone for c in config.checkpoints),
            gpus=config.gpus,
        )

    def apply(self, config: EvalConfig) -> EvalConfig:
        """``config`` (pure, built from the same options) with the probed facts filled in."""
        return replace(
            config,
            model_path=self.model_path,
            model_is_local=self.model_is_local,
            checkpoints=tuple(
                replace(c, standalone=s) for c, s in zip(config.checkpoints, self.standalone, strict=True)
            ),
            sources={**config.sources, "model_path": self.model_source},
            gpus=self.gpus,
        )

    def to_plain(self) -> dict[str, Any]:
        return {
            "model_path": self.model_path,
            "model_is_local": self.model_is_local,
            "model_source": self.model_source,
            "standalone": list(self.standalone),
            "gpus": list(self.gpus),
        }

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> Probed:
        return cls(
            model_path=str(data["model_path"]),
            model_is_local=bool(data["model_is_local"]),
            model_source=str(data["model_source"]),
            standalone=tuple(bool(s) for s in data["standalone"]),
            gpus=tuple(str(g) for g in data["gpus"]),
        )


def settle(
    config: EvalConfig, workerinput: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> EvalConfig:
    """The config this process runs with: probed here on the controller (``workerinput`` None); on an
    xdist worker, completed with what the controller's probes found."""
    if workerinput is not None:
        return Probed.from_plain(workerinput[PROBED_KEY]).apply(config)
    return probe(config, env)


def probe(config: EvalConfig, env: Mapping[str, str] | None = None) -> EvalConfig:
    """Run every probe; return the config with the model path, its locality, each checkpoint's
    ``standalone`` and the GPU list settled. Raises ConfigError (one line, naming the setting's source)."""
    try:
        return _probe(config, os.environ if env is None else env)
    except ConfigError as exc:
        raise ConfigError(name_the_source(str(exc), config.sources)) from None


def _probe(config: EvalConfig, env: Mapping[str, str]) -> EvalConfig:
    model_given = config.given.get("model_path") is not None
    checkpoints = tuple(probe_checkpoint(c, model_given) for c in config.checkpoints)
    sources = dict(config.sources)
    if all(c.path is not None and c.standalone for c in checkpoints):
        model_path, is_local = "", True
        sources["model_path"] = "checkpoint"
    else:
        any_bare = any(c.path is not None and not c.standalone for c in checkpoints)
        model_path, is_local = probe_model_path(config.model_path, model_given, any_bare)
    probe_backend(config.backend)
    probe_paths(config)
    return replace(
        config,
        model_path=model_path,
        model_is_local=is_local,
        checkpoints=checkpoints,
        sources=sources,
        gpus=probe_gpus(config.given.get("gpus"), env),
    )


def probe_checkpoint(choice: CheckpointChoice, model_path_given: bool) -> CheckpointChoice:
    """Read a checkpoint's header (no torch): unusable is an error now; a directory with its own
    config.json stands alone unless --model_path names the base it goes on."""
    if choice.path is None:
        return choice
    from .checkpoint import CheckpointError, inspect_checkpoint

    try:
        spec = inspect_checkpoint(choice.path)
    except CheckpointError as exc:
        raise ConfigError(f"--ckpt {choice.given or choice.path}: {exc}") from None
    return replace(choice, standalone=spec.has_config and not model_path_given)


def probe_model_path(raw: str, explicit: bool, any_ckpt_without_config: bool) -> tuple[str, bool]:
    """A local directory with config.json, or a hub id that is available (cached or reachable)."""
    expanded = Path(os.path.expanduser(raw))
    if expanded.exists():
        if not expanded.is_dir():
            raise ConfigError(
                f"--model_path {raw}: is a file; give the base model's directory (with config.json) "
                "and put fine-tuned weights in --ckpt"
            )
        config_json = expanded / "config.json"
        if not os.access(expanded, os.R_OK | os.X_OK) or (
            os.path.isfile(config_json) and not os.access(config_json, os.R_OK)
        ):
            raise ConfigError(f"--model_path {raw}: cannot be read (permission denied); fix its permissions")
        if not (expanded / "config.json").is_file():
            contents = sorted(p.name for p in expanded.iterdir())[:6]
            what = (
                "is an empty directory"
                if not contents
                else f"has no config.json (found: {', '.join(contents)})"
            )
            raise ConfigError(
                f"--model_path {raw}: {what}; give a directory written by save_pretrained, or a hub id"
            )
        return str(expanded.resolve()), True
    if not explicit:
        if any_ckpt_without_config:
            raise ConfigError(
                "--ckpt needs an architecture: the bundled demo model is missing and the checkpoint has no "
                "config.json; the architecture must come from --model_path (a base model directory or hub id)"
            )
        # No error yet: a session without eval items (plain unit tests) must not fail over a model it never
        # loads. Loading it says the same thing, if an eval needs it.
        return str(expanded), True
    looks_like_path = raw.startswith((".", "/", "~")) or os.sep in raw.strip("/").replace("/", "", 1)
    if looks_like_path or not _HUB_ID.match(raw):
        raise ConfigError(f"--model_path {raw}: no such directory; give a local model directory or a hub id")
    from .hub import hub_availability

    problem = hub_availability(raw)
    if problem is not None:
        raise ConfigError(f"--model_path {raw}: {problem}")
    return raw, False


def probe_backend(backend: str) -> None:
    """The backend is installed (built in, or registered under the entry point group), and importable."""
    from .backends import ENTRY_POINT_GROUP, available_backends

    installed = available_backends()
    if backend not in installed:
        raise ConfigError(
            f"--backend {backend!r}: no such backend; installed: {', '.join(installed)} "
            f"(third-party backends register under the entry point group '{ENTRY_POINT_GROUP}')"
        )
    if backend == "vllm":
        from .backends.vllm import NOT_INSTALLED, vllm_available

        if not vllm_available():
            raise ConfigError(NOT_INSTALLED)


def probe_paths(config: EvalConfig) -> None:
    """Explicitly configured files and folders exist (a typo fails at startup, not as a skip), the
    results folder can be written, the baseline read."""
    for name, folder in config.data_images.items():
        if not folder.is_dir():
            raise ConfigError(
                f"--data {name}=...,images={folder}: that image folder does not exist; give the folder the "
                "dataset's image paths are relative to"
            )
    for name, path in config.data.items():
        if not path.exists():
            # Explicitly configured and absent is a typo, not "dataset not available": say so at startup.
            raise ConfigError(
                f"--data {name}={path}: no such file or directory; fix the path or drop the option"
            )
    if config.lmudata is not None and not config.lmudata.is_dir():
        raise ConfigError(
            f"--lmudata {config.given.get('lmudata')} (or LMUData): not a directory; point it at the folder "
            "holding VLMEvalKit's <NAME>.tsv files"
        )
    results_dir = config.results_dir
    if results_dir.exists() and not results_dir.is_dir():
        raise ConfigError(f"--results-dir {results_dir}: exists and is not a directory; choose another path")
    # Only a chosen one: with the default, plain unit tests in a read-only checkout must still run.
    if config.sources.get("results_dir") != "default":
        existing = next(p for p in (results_dir, *results_dir.parents) if os.path.exists(p))
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(
                f"--results-dir {results_dir}: {existing} is not writable; give a directory you can write to"
            )
    baseline, baseline_raw = config.baseline, config.given.get("baseline")
    if baseline is not None and not baseline.is_file():
        raise ConfigError(
            f"--baseline {baseline_raw}: no such file; create one with --save-baseline {baseline_raw}"
        )
    if baseline is not None and not os.access(baseline, os.R_OK):
        raise ConfigError(
            f"--baseline {baseline_raw}: cannot be read (permission denied); fix its permissions"
        )
    save_baseline = config.save_baseline
    if save_baseline is not None and not save_baseline.parent.is_dir():
        raise ConfigError(
            f"--save-baseline {save_baseline}: the directory {save_baseline.parent} does not exist"
        )
