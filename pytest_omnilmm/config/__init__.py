"""EvalConfig: every setting of a run, read once (option > env > ini > default) and validated once.

Nothing here touches ``pytest.Config``: ``options.lookup`` hands a ``Lookup`` to ``build_config``.
Pure: options, environment and ini in, a frozen ``EvalConfig`` out; paths are resolved as strings,
nothing is opened, run or asked over the network. What only the machine can tell (is the checkpoint
readable and does it carry its own config.json, is the model a directory or an available hub id, do the
data files exist, which GPUs are there) is asked once, on the controller, by ``probes.settle``.
Nothing here imports torch or transformers: this runs while pytest starts.

``settings`` holds the table of options (flags, env variables, ini keys, help, defaults); ``parse`` the
value parsers. Every name other modules import is re-exported here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .parse import (
    ConfigError,
    parse_bool,
    parse_data,
    parse_fraction,
    parse_gpus,
    parse_int,
    parse_margin_map,
    parse_name_values,
    parse_path,
    parse_percent,
    parse_percent_setting,
    parse_shard,
    parse_threads,
    visible_devices,
)
from .settings import (
    AUTO_BATCH_START,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_RESULTS_DIR,
    DTYPES,
    FLAGS,
    GATE_INCONCLUSIVE,
    GATE_MODES,
    GENERATE_ALIASES,
    GENERATE_METHODS,
    METAVARS,
    METRIC_FLAVORS,
    SETTINGS,
    Setting,
    flag_help_text,
    help_text,
    setting_default,
)

PACKAGE_DIR = Path(__file__).resolve().parents[1]
DEMO_MODEL_DIR = PACKAGE_DIR / "demo" / "model"
# ``--ckpt base``: the base model itself, with no weights on top, as one model of a sweep.
BASE_CKPT = "base"

__all__ = [
    "AUTO_BATCH_START",
    "BASE_CKPT",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_RESULTS_DIR",
    "DEMO_MODEL_DIR",
    "DTYPES",
    "FLAGS",
    "GATE_INCONCLUSIVE",
    "GATE_MODES",
    "GENERATE_ALIASES",
    "GENERATE_METHODS",
    "METAVARS",
    "METRIC_FLAVORS",
    "PACKAGE_DIR",
    "SETTINGS",
    "CheckpointChoice",
    "ConfigError",
    "EvalConfig",
    "Lookup",
    "Setting",
    "build_config",
    "flag_help_text",
    "help_text",
    "name_the_source",
    "parse_data",
    "parse_fraction",
    "parse_gpus",
    "parse_margin_map",
    "parse_name_values",
    "parse_percent",
    "parse_percent_setting",
    "resolve",
    "setting_default",
    "visible_devices",
]


@dataclass(frozen=True)
class CheckpointChoice:
    """One evaluated model: the role label in test ids, and the weights applied to the base (or None)."""

    label: str
    path: Path | None
    # A save_pretrained dir with its own config, loaded without a base model (settled by probes.probe).
    standalone: bool = False
    given: str = field(default="", compare=False)  # the --ckpt value as typed, for messages


@dataclass(frozen=True)
class EvalConfig:
    """Every setting of a run, frozen. ``build_config`` fills it without I/O; ``probes.probe`` (once, on the
    controller) settles ``model_path``/``model_is_local``, each checkpoint's ``standalone`` and ``gpus``
    for ``--gpus all``; xdist workers take those from the controller."""

    model_path: str
    model_is_local: bool
    checkpoints: tuple[CheckpointChoice, ...]
    generate_method: str
    device: str
    dtype: str
    batch_size: int
    auto_batch: bool
    max_new_tokens: int
    num_beams: int
    limit: int | None
    limit_seed: int
    results_dir: Path
    metric_flavor: str
    data: Mapping[str, Path]
    max_image_pixels: int
    trust_remote_code: bool
    ckpt_partial: bool
    resume: bool
    save_baseline: Path | None = None
    baseline: Path | None = None
    max_drop: float = 0.01
    max_drop_per: Mapping[str, float] = field(default_factory=dict)
    gate: str = "significant"
    gate_inconclusive: str = "fail"
    gate_allow_partial: bool = False
    min_score: Mapping[str, float] = field(default_factory=dict)
    max_slowdown: float | None = None
    gpus: tuple[str, ...] = ()
    shard: tuple[int, int] | None = None
    sources: Mapping[str, str] = field(default_factory=dict)  # setting -> option, env, ini or default
    # setting -> its value as looked up, before parsing: what probes quote in their messages
    given: Mapping[str, object] = field(default_factory=dict, compare=False)
    lmudata: Path | None = None
    data_images: Mapping[str, Path] = field(default_factory=dict)  # --data NAME=PATH,images=DIR
    rootdir: Path | None = None  # the project under test (its git commit goes in the reports)
    max_prompt_tokens: int | None = None  # None: the model's own context length
    backend: str = "hf"
    api_base: str = ""
    api_model: str = ""
    api_key_env: str = ""
    judge_api_base: str = ""  # judge-graded metrics: both set, or neither
    judge_model: str = ""
    judge_api_key_env: str = ""
    model_revision: str = ""
    concurrency: int = 4
    stream: bool = False
    request_timeout: float = 120.0
    retries: int = 3
    tensor_parallel_size: int = 1
    threads: int | None = None  # None: cores / xdist workers (see worker.process_limits.default_threads)
    progress: bool = True

    def generation_settings(self) -> dict[str, object]:
        """What changes the answers: part of every record's key and of the baseline."""
        return {
            "generate_method": self.generate_method,
            "max_new_tokens": self.max_new_tokens,
            "num_beams": self.num_beams,
            "dtype": self.dtype,
        }


# A lookup the plugin provides: name -> (value, source) where source is "option", "env", "ini" or "default".
Lookup = Callable[[str], tuple[object, str]]


def resolve(
    option_value: object,
    env: Mapping[str, str],
    env_name: str,
    ini_value: object,
    default: object,
    multiple: bool = False,
) -> tuple[object, str]:
    """Precedence option > env > ini > default. ``None`` (or an empty list for ini) means "not set"."""
    if option_value is not None:
        return option_value, "option"
    if env_name in env:
        raw = env[env_name]
        return ([v for v in raw.split(",")] if multiple else raw), "env"
    if ini_value not in (None, "", []):
        return ini_value, "ini"
    return default, "default"


def build_config(lookup: Lookup, *, rootdir: Path, env: Mapping[str, str] | None = None) -> EvalConfig:
    """Read every setting through ``lookup``, validate, and freeze. Raises ConfigError (one line) naming
    where the bad value came from: the option, the environment variable or the ini key.

    Pure: the model path and the checkpoints' ``standalone`` are as given until ``probes.probe`` (run once,
    on the controller) has looked at them."""
    sources: dict[str, str] = {}
    given: dict[str, object] = {}
    try:
        return _build_config(lookup, rootdir, os.environ if env is None else env, sources, given)
    except ConfigError as exc:
        raise ConfigError(name_the_source(str(exc), sources)) from None


_SOURCE_NAMES: tuple[tuple[str, str, str, str], ...] = tuple(
    sorted(
        [(s.flag, s.name, s.env, s.ini) for s in SETTINGS]
        + [(flag, name, env, f"omnilmm_{name}") for name, flag, env, _help in FLAGS],
        key=lambda row: -len(row[0]),  # --max-drop-for before --max-drop
    )
)


def name_the_source(message: str, sources: Mapping[str, str]) -> str:
    """``--max-drop: 'x' is not a number`` becomes ``OMNILMM_MAX_DROP (environment variable for --max-drop):
    ...`` when the value came from the environment (likewise for an ini key): the flag was never typed."""
    for flag, name, env, ini in _SOURCE_NAMES:
        if not message.startswith(flag) or message[len(flag) : len(flag) + 1] not in (":", " ", ""):
            continue
        source = sources.get(name)
        if source == "env":
            return f"{env} (environment variable for {flag}){message[len(flag) :]}"
        if source == "ini":
            return f"{ini} (ini key for {flag}){message[len(flag) :]}"
        return message
    return message


def _choose_checkpoints(raw: Sequence[str]) -> tuple[CheckpointChoice, ...]:
    paths = [str(p).strip() for p in raw if str(p).strip() != ""]
    if not paths:
        return (CheckpointChoice("base", None),)
    if paths.count(BASE_CKPT) > 1:
        raise ConfigError(f"--ckpt {BASE_CKPT} is given {paths.count(BASE_CKPT)} times; give it once")
    choices = []
    i = 0
    for raw_path in paths:
        if raw_path == BASE_CKPT:
            choices.append(CheckpointChoice("base", None))
            continue
        path = Path(os.path.expanduser(raw_path)).resolve()
        choices.append(CheckpointChoice(f"ckpt{i}", path, given=raw_path))
        i += 1
    return tuple(choices)


def _build_config(
    lookup: Lookup,
    rootdir: Path,
    env: Mapping[str, str],
    sources: dict[str, str],
    given: dict[str, object],
) -> EvalConfig:
    def get(name: str) -> object:
        value, source = lookup(name)
        sources[name] = source
        given[name] = value
        return value

    model_raw = get("model_path")
    ckpt_raw = get("ckpt") or []
    if isinstance(ckpt_raw, str):
        ckpt_raw = [ckpt_raw]
    checkpoints = _choose_checkpoints(list(ckpt_raw))
    # As given (the bundled demo model by default); probes.probe checks and resolves it.
    model_path = str(DEMO_MODEL_DIR) if model_raw is None else str(model_raw)

    method_raw = str(get("generate_method")).strip()
    method = GENERATE_ALIASES.get(method_raw, method_raw)
    if method not in GENERATE_METHODS:
        raise ConfigError(
            f"--generate_method: unknown method {method_raw!r}; choose chat (alias old) or interleave"
        )

    device = str(get("device")).strip().lower()
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", device):
        raise ConfigError(f"--device: {device!r} is not a device; use auto, cpu, cuda or cuda:N")

    dtype = str(get("dtype")).strip().lower()
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype: {dtype!r} is not one of {', '.join(DTYPES)}")

    batch_raw = str(get("batch_size")).strip().lower()
    auto_batch = batch_raw == "auto"
    batch_size = AUTO_BATCH_START if auto_batch else parse_int("--batch-size", batch_raw, minimum=1)

    limit_raw = get("limit")
    limit = None if limit_raw in (None, "") else parse_int("--limit", limit_raw, minimum=1)
    backend = str(get("backend") or "hf").strip()  # installed backends: probes.probe_backend
    api = {
        "api_base": str(get("api_base") or "").strip(),
        "api_model": str(get("api_model") or "").strip(),
        "api_key_env": str(get("api_key_env") or "").strip(),
        "model_revision": str(get("model_revision") or "").strip(),
        "concurrency": parse_int("--concurrency", get("concurrency") or 4, minimum=1),
        "stream": parse_bool(get("stream")),
        "tensor_parallel_size": parse_int(
            "--tensor-parallel-size", get("tensor_parallel_size") or 1, minimum=1
        ),
    }
    try:
        api["request_timeout"] = float(str(get("request_timeout") or 120))
    except ValueError:
        raise ConfigError(
            f"--request-timeout: {get('request_timeout')!r} is not a number of seconds"
        ) from None
    if backend == "openai" and not (api["api_base"] and api["api_model"]):
        raise ConfigError(
            "--backend openai needs --api-base URL and --api-model NAME "
            "(e.g. --api-base http://127.0.0.1:8000/v1 --api-model MiniCPM-V-4_6)"
        )
    if backend == "openai" and api["api_key_env"] and not env.get(str(api["api_key_env"])):
        raise ConfigError(f"--api-key-env {api['api_key_env']}: that environment variable is not set")
    judge = {
        name: str(get(name) or "").strip() for name in ("judge_api_base", "judge_model", "judge_api_key_env")
    }
    if bool(judge["judge_api_base"]) != bool(judge["judge_model"]):
        given, missing = (
            ("--judge-api-base", "--judge-model NAME")
            if judge["judge_api_base"]
            else ("--judge-model", "--judge-api-base URL")
        )
        raise ConfigError(
            f"{given} needs {missing} too: the judge is an OpenAI-compatible server and the model it serves "
            "(e.g. --judge-api-base http://127.0.0.1:8000/v1 --judge-model gpt-4o-mini)"
        )
    if judge["judge_api_base"] and not re.match(r"https?://", judge["judge_api_base"]):
        raise ConfigError(
            f"--judge-api-base {judge['judge_api_base']}: not an http(s) URL; give the server's base URL, "
            "e.g. http://127.0.0.1:8000/v1"
        )
    if judge["judge_api_key_env"] and not env.get(judge["judge_api_key_env"]):
        raise ConfigError(
            f"--judge-api-key-env {judge['judge_api_key_env']}: that environment variable is not set"
        )
    prompt_raw = get("max_prompt_tokens")
    max_prompt_tokens = (
        None if prompt_raw in (None, "") else parse_int("--max-prompt-tokens", prompt_raw, minimum=1)
    )

    flavor = str(get("metric_flavor")).strip()
    if flavor not in METRIC_FLAVORS:
        raise ConfigError(
            f"--metric-flavor: unknown flavour {flavor!r}; choose one of {', '.join(METRIC_FLAVORS)}"
        )

    data_raw = get("data") or []
    if isinstance(data_raw, str):
        data_raw = [data_raw]
    data, data_images = parse_data(list(data_raw), base=rootdir)  # existence: probes.probe_paths

    results_dir = Path(os.path.expanduser(str(get("results_dir"))))
    if not results_dir.is_absolute():
        results_dir = rootdir / results_dir  # checked (a directory, writable) by probes.probe_paths

    gate = str(get("gate")).strip().lower()
    if gate not in GATE_MODES:
        raise ConfigError(
            f"--gate: {gate!r} is not a gate mode; choose significant or noninferiority (alias strict)"
        )
    gate = "noninferiority" if gate == "strict" else gate
    gate_inconclusive = str(get("gate_inconclusive")).strip().lower()
    if gate_inconclusive not in GATE_INCONCLUSIVE:
        raise ConfigError(f"--gate-inconclusive: {gate_inconclusive!r} is not fail or pass")

    return EvalConfig(
        model_path=model_path,
        model_is_local=True,  # settled by probes.probe (False for a hub id)
        checkpoints=checkpoints,
        generate_method=method,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        auto_batch=auto_batch,
        max_new_tokens=parse_int("--max-new-tokens", get("max_new_tokens"), minimum=1),
        num_beams=parse_int("--num-beams", get("num_beams"), minimum=1),
        limit=limit,
        max_prompt_tokens=max_prompt_tokens,
        backend=backend,
        **api,  # type: ignore[arg-type]
        **judge,
        limit_seed=parse_int("--limit-seed", get("limit_seed"), minimum=0),
        results_dir=results_dir,
        metric_flavor=flavor,
        data=data,
        lmudata=parse_path(get("lmudata"), rootdir),
        max_image_pixels=parse_int("--max-image-pixels", get("max_image_pixels"), minimum=1),
        trust_remote_code=parse_bool(get("trust_remote_code")),
        ckpt_partial=parse_bool(get("ckpt_partial")),
        threads=parse_threads(get("threads")),
        progress=not parse_bool(get("no_progress")),
        resume=not parse_bool(get("no_resume")),
        save_baseline=parse_path(get("save_baseline"), rootdir),
        baseline=parse_path(get("baseline"), rootdir),
        max_drop=parse_fraction("--max-drop", get("max_drop")),
        max_drop_per=parse_name_values("--max-drop-for", get("max_drop_per"), "textvqa=0.02"),
        gate=gate,
        gate_inconclusive=gate_inconclusive,
        gate_allow_partial=parse_bool(get("gate_allow_partial")),
        min_score=parse_name_values("--min-score", get("min_score"), "textvqa=0.6"),
        max_slowdown=None
        if get("max_slowdown") in (None, "")
        else parse_percent_setting("--max-slowdown", get("max_slowdown")),
        gpus=parse_gpus(get("gpus"), env) or (),  # None ("all", unrestricted): probes.probe_gpus
        shard=parse_shard(get("shard")),
        sources=sources,
        given=given,
        rootdir=rootdir,
        data_images=data_images,
    )
