"""EvalConfig: every setting of a run, read once (option > env > ini > default) and validated once.

Only ``plugin.py`` touches ``pytest.Config``; it hands a ``RawSettings`` lookup to ``build_config``.
Nothing here imports torch or transformers: this runs while pytest starts.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DEMO_MODEL_DIR = PACKAGE_DIR / "demo" / "model"

GENERATE_METHODS = ("chat", "interleave")
GENERATE_ALIASES = {"old": "chat"}
DTYPES = ("auto", "bfloat16", "float16", "float32")
DEFAULT_RESULTS_DIR = ".omnilmm-results"
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # PIL's own default (0.25 GB of RGB); above it a sample fails.
AUTO_BATCH_START = 16
GATE_MODES = ("significant", "noninferiority", "strict")  # strict: the old name of noninferiority
GATE_INCONCLUSIVE = ("fail", "pass")


class ConfigError(Exception):
    """A bad setting: the message is one line naming the option, the value and what to do."""


@dataclass(frozen=True)
class Setting:
    """How an option is found: its CLI spelling, environment variable and ini key."""

    name: str  # the attribute of EvalConfig
    flag: str  # the CLI spelling shown to users
    env: str
    ini: str
    help: str
    default: object = None
    multiple: bool = False  # repeatable option / linelist ini / comma-separated env


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "model_path",
        "--model_path",
        "OMNILMM_MODEL_PATH",
        "omnilmm_model_path",
        "base model: a local save_pretrained directory or a hub id (default: the bundled demo model)",
    ),
    Setting(
        "ckpt",
        "--ckpt",
        "OMNILMM_CKPT",
        "omnilmm_ckpt",
        "fine-tuned weights applied on top of --model_path: .safetensors, sharded or save_pretrained dir, "
        ".bin/.pt/.pth (weights only), PEFT adapter dir. Repeat for a sweep; '' means none; 'base' puts "
        "the base model itself in a sweep (a file named base: ./base)",
        multiple=True,
    ),
    Setting(
        "generate_method",
        "--generate_method",
        "OMNILMM_GENERATE_METHOD",
        "omnilmm_generate_method",
        "chat (alias old): images first, then text; interleave: images where they stand in the text",
        default="chat",
    ),
    Setting(
        "device",
        "--device",
        "OMNILMM_DEVICE",
        "omnilmm_device",
        "torch device: auto (cuda when available, else cpu), cpu, cuda, cuda:N",
        default="auto",
    ),
    Setting(
        "dtype",
        "--dtype",
        "OMNILMM_DTYPE",
        "omnilmm_dtype",
        "weights dtype: auto (bfloat16 on GPU, float32 on CPU), bfloat16, float16, float32",
        default="auto",
    ),
    Setting(
        "batch_size",
        "--batch-size",
        "OMNILMM_BATCH_SIZE",
        "omnilmm_batch_size",
        "samples per generate call (left padded), or 'auto': start at 16, halve on out-of-memory",
        default="8",
    ),
    Setting(
        "max_new_tokens",
        "--max-new-tokens",
        "OMNILMM_MAX_NEW_TOKENS",
        "omnilmm_max_new_tokens",
        "generation length limit",
        default="32",
    ),
    Setting(
        "num_beams",
        "--num-beams",
        "OMNILMM_NUM_BEAMS",
        "omnilmm_num_beams",
        "beam search width (1 = greedy)",
        default="1",
    ),
    Setting(
        "threads",
        "--threads",
        "OMNILMM_THREADS",
        "omnilmm_threads",
        "torch CPU threads per process (torch.set_num_threads); default: the cores this process may use "
        "divided among the xdist workers, at least 1 (with OMP_NUM_THREADS set, torch's own choice is kept)",
    ),
    # -- backends (issue 13 point 8, issue 16) --
    Setting(
        "backend",
        "--backend",
        "OMNILMM_BACKEND",
        "omnilmm_backend",
        "what generates: hf (in-process transformers) or a backend registered under the entry point group "
        "pytest_omnilmm.backends",
        default="hf",
    ),
    Setting(
        "api_base",
        "--api-base",
        "OMNILMM_API_BASE",
        "omnilmm_api_base",
        "--backend openai: the server's OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1",
    ),
    Setting(
        "api_model",
        "--api-model",
        "OMNILMM_API_MODEL",
        "omnilmm_api_model",
        "--backend openai: the model name the server serves",
    ),
    Setting(
        "api_key_env",
        "--api-key-env",
        "OMNILMM_API_KEY_ENV",
        "omnilmm_api_key_env",
        "--backend openai: the NAME of the environment variable holding the API key (never the key)",
    ),
    # -- the judge model of judge-graded metrics (MathVista, MM-Vet as VLMEvalKit grades them) --
    Setting(
        "judge_api_base",
        "--judge-api-base",
        "OMNILMM_JUDGE_API_BASE",
        "omnilmm_judge_api_base",
        "the judge model's OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1; with --judge-model, "
        "MathVista_MINI and MMVet are graded as VLMEvalKit grades them",
    ),
    Setting(
        "judge_model",
        "--judge-model",
        "OMNILMM_JUDGE_MODEL",
        "omnilmm_judge_model",
        "the model name the judge server serves (VLMEvalKit uses gpt-4o-mini for MathVista, gpt-4-turbo "
        "for MM-Vet)",
    ),
    Setting(
        "judge_api_key_env",
        "--judge-api-key-env",
        "OMNILMM_JUDGE_API_KEY_ENV",
        "omnilmm_judge_api_key_env",
        "the NAME of the environment variable holding the judge's API key (never the key)",
    ),
    Setting(
        "concurrency",
        "--concurrency",
        "OMNILMM_CONCURRENCY",
        "omnilmm_concurrency",
        "--backend openai: requests in flight",
        default="4",
    ),
    Setting(
        "stream",
        "--stream",
        "OMNILMM_STREAM",
        "omnilmm_stream",
        "--backend openai: stream answers to measure time to first token (1/0)",
        default="0",
    ),
    Setting(
        "model_revision",
        "--model-revision",
        "OMNILMM_MODEL_REVISION",
        "omnilmm_model_revision",
        "--backend openai: the served weights' revision; part of the resume key",
    ),
    Setting(
        "request_timeout",
        "--request-timeout",
        "OMNILMM_REQUEST_TIMEOUT",
        "omnilmm_request_timeout",
        "--backend openai: seconds per request before it is retried",
        default="120",
    ),
    Setting(
        "tensor_parallel_size",
        "--tensor-parallel-size",
        "OMNILMM_TENSOR_PARALLEL_SIZE",
        "omnilmm_tensor_parallel_size",
        "--backend vllm: GPUs per model",
        default="1",
    ),
    Setting(
        "max_prompt_tokens",
        "--max-prompt-tokens",
        "OMNILMM_MAX_PROMPT_TOKENS",
        "omnilmm_max_prompt_tokens",
        "a sample whose prompt has more tokens fails alone (default: the model's context length)",
    ),
    Setting(
        "limit",
        "--limit",
        "OMNILMM_LIMIT",
        "omnilmm_limit",
        "evaluate a seeded random subset of N samples per dataset (the same on every run and worker)",
    ),
    Setting(
        "limit_seed",
        "--limit-seed",
        "OMNILMM_LIMIT_SEED",
        "omnilmm_limit_seed",
        "seed of the --limit subset",
        default="0",
    ),
    Setting(
        "results_dir",
        "--results-dir",
        "OMNILMM_RESULTS_DIR",
        "omnilmm_results_dir",
        "where each run writes records.jsonl, summary.json, report.md (one folder per run)",
        default=DEFAULT_RESULTS_DIR,
    ),
    Setting(
        "metric_flavor",
        "--metric-flavor",
        "OMNILMM_METRIC_FLAVOR",
        "omnilmm_metric_flavor",
        "metric definitions to reproduce: vlmevalkit (current upstream), vlmevalkit-2025.01, omnilmm",
        default="vlmevalkit",
    ),
    Setting(
        "data",
        "--data",
        "OMNILMM_DATA",
        "omnilmm_data",
        "dataset location NAME=PATH (repeatable), e.g. --data textvqa=/data/TextVQA_0.5.1_val.json",
        multiple=True,
    ),
    Setting(
        "lmudata",
        "--lmudata",
        "LMUData",
        "omnilmm_lmudata",
        "a VLMEvalKit data folder (VLMEvalKit's LMUData): catalogue datasets are read from <DIR>/<NAME>.tsv",
    ),
    Setting(
        "max_image_pixels",
        "--max-image-pixels",
        "OMNILMM_MAX_IMAGE_PIXELS",
        "omnilmm_max_image_pixels",
        "decompression-bomb guard: larger images fail their sample",
        default=str(DEFAULT_MAX_IMAGE_PIXELS),
    ),
    Setting(
        "save_baseline",
        "--save-baseline",
        "OMNILMM_SAVE_BASELINE",
        "omnilmm_save_baseline",
        "write this run's results as a baseline JSON file (commit it next to your evals)",
    ),
    Setting(
        "baseline",
        "--baseline",
        "OMNILMM_BASELINE",
        "omnilmm_baseline",
        "compare this run with a baseline JSON file, sample by sample; exit 1 when worse",
    ),
    Setting(
        "max_drop",
        "--max-drop",
        "OMNILMM_MAX_DROP",
        "omnilmm_max_drop",
        "allowed absolute drop of a metric against the baseline (e.g. 0.01 = one point)",
        default="0.01",
    ),
    Setting(
        "max_drop_per",
        "--max-drop-for",
        "OMNILMM_MAX_DROP_FOR",
        "omnilmm_max_drop_for",
        "allowed drop for one dataset or metric, NAME=DROP (repeatable), e.g. textvqa=0.02",
        multiple=True,
    ),
    Setting(
        "gate",
        "--gate",
        "OMNILMM_GATE",
        "omnilmm_gate",
        "significant: fail on a drop significant against zero (one-sided 5%%, Holm over the run) that is "
        "worse than --max-drop; noninferiority (alias strict): pass only when the data show the drop is "
        "within --max-drop",
        default="significant",
    ),
    Setting(
        "gate_inconclusive",
        "--gate-inconclusive",
        "OMNILMM_GATE_INCONCLUSIVE",
        "omnilmm_gate_inconclusive",
        "fail|pass: what a dataset the run cannot judge (its detectable drop exceeds --max-drop) does",
        default="fail",
    ),
    Setting(
        "min_score",
        "--min-score",
        "OMNILMM_MIN_SCORE",
        "omnilmm_min_score",
        "absolute floor DATASET=SCORE (repeatable), e.g. --min-score textvqa=0.6",
        multiple=True,
    ),
    Setting(
        "max_slowdown",
        "--max-slowdown",
        "OMNILMM_MAX_SLOWDOWN",
        "omnilmm_max_slowdown",
        "fail when p50 batch latency or samples/s is worse than the baseline's by more than this "
        "(e.g. 10%%); gated only on the baseline's hardware",
    ),
    Setting(
        "gpus",
        "--gpus",
        "OMNILMM_GPUS",
        "omnilmm_gpus",
        "one xdist worker per GPU, pinned via CUDA_VISIBLE_DEVICES: 'all' or a list like 0,1,2,3",
    ),
    Setting(
        "shard",
        "--shard",
        "OMNILMM_SHARD",
        "omnilmm_shard",
        "run shard I of N (I/N, 0-based) of the eval items; combine shards: python -m pytest_omnilmm merge",
    ),
)


def setting_default(name: str) -> object:
    """The default of setting ``name`` (one table for the plugin and the merge CLI)."""
    return next(setting.default for setting in SETTINGS if setting.name == name)


# What ``--help`` shows after each option: the kind of value, never the environment variable's name.
METAVARS: Mapping[str, str] = {
    "model_path": "PATH_OR_ID",
    "ckpt": "PATH",
    "generate_method": "METHOD",
    "device": "DEVICE",
    "dtype": "DTYPE",
    "batch_size": "N|auto",
    "max_new_tokens": "N",
    "num_beams": "N",
    "threads": "N",
    "backend": "NAME",
    "api_base": "URL",
    "api_model": "NAME",
    "api_key_env": "VAR",
    "judge_api_base": "URL",
    "judge_model": "NAME",
    "judge_api_key_env": "VAR",
    "concurrency": "N",
    "stream": "0|1",
    "model_revision": "REVISION",
    "request_timeout": "SECONDS",
    "tensor_parallel_size": "N",
    "max_prompt_tokens": "N",
    "limit": "N",
    "limit_seed": "SEED",
    "results_dir": "DIR",
    "metric_flavor": "FLAVOR",
    "data": "NAME=PATH",
    "lmudata": "DIR",
    "max_image_pixels": "PIXELS",
    "save_baseline": "FILE",
    "baseline": "FILE",
    "max_drop": "DROP",
    "max_drop_per": "NAME=DROP",
    "gate": "MODE",
    "gate_inconclusive": "fail|pass",
    "min_score": "DATASET=SCORE",
    "max_slowdown": "PERCENT",
    "gpus": "GPUS",
    "shard": "I/N",
}


def help_text(setting: Setting) -> str:
    """The ``--help`` line of a setting: what it does, its default, and where else it can be set."""
    default = "" if setting.default is None else f" (default: {setting.default})"
    return f"{setting.help}{default} [env {setting.env}, ini {setting.ini}]"


def flag_help_text(name: str, env: str, text: str) -> str:
    return f"{text} [env {env}=1, ini omnilmm_{name} = true]"


FLAGS: tuple[tuple[str, str, str, str], ...] = (
    # (name, flag, env, help) of boolean switches; ini key is "omnilmm_" + name
    (
        "trust_remote_code",
        "--trust-remote-code",
        "OMNILMM_TRUST_REMOTE_CODE",
        "allow a model repository's own Python code to run (legacy MiniCPM-V 2.x / o-2.6 chat API)",
    ),
    (
        "ckpt_partial",
        "--ckpt-partial",
        "OMNILMM_CKPT_PARTIAL",
        "accept a checkpoint that covers only part of the model (e.g. only the language model)",
    ),
    (
        "gate_allow_partial",
        "--gate-allow-partial",
        "OMNILMM_GATE_ALLOW_PARTIAL",
        "gate on the baseline samples this run has instead of failing when some are missing "
        "(the table says so)",
    ),
    (
        "no_resume",
        "--no-resume",
        "OMNILMM_NO_RESUME",
        "regenerate every sample instead of reusing matching finished records from --results-dir",
    ),
    (
        "no_progress",
        "--no-progress",
        "OMNILMM_NO_PROGRESS",
        "no progress line (samples done / total, samples/s, ETA); -qq turns it off too",
    ),
)


@dataclass(frozen=True)
class CheckpointChoice:
    """One evaluated model: the role label in test ids, and the weights applied to the base (or None)."""

    label: str
    path: Path | None
    standalone: bool = False  # a save_pretrained dir with its own config, loaded without a base model


@dataclass(frozen=True)
class EvalConfig:
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
    sources: Mapping[str, str] = field(default_factory=dict)
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
    threads: int | None = None  # None: cores / xdist workers (see process_state.default_threads)
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


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _int(name: str, flag: str, raw: object, *, minimum: int) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigError(
            f"{flag}: {raw!r} is not a whole number; give e.g. {flag} {max(minimum, 1)}"
        ) from None
    if value < minimum:
        raise ConfigError(f"{flag}: {value} is too small; it must be at least {minimum}")
    return value


def _truthy(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    return str(raw).strip().lower() in {"1", "true", "yes", "on"}


def parse_data(entries: Sequence[str], *, base: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """``NAME=PATH`` or ``NAME=PATH,images=DIR`` entries (relative paths against ``base``, the rootdir).

    Returns the data files and, for the entries that name one, the folder their image paths are relative to.
    """
    data: dict[str, Path] = {}
    images: dict[str, Path] = {}

    def absolute(raw: str) -> Path:
        path = Path(os.path.expanduser(raw.strip()))
        return path if path.is_absolute() else base / path

    for entry in entries:
        entry = str(entry).strip()
        if not entry:
            continue
        name, sep, raw_path = entry.partition("=")
        raw_path, comma, image_part = raw_path.partition(",images=")
        if not sep or not name.strip() or not raw_path.strip() or (comma and not image_part.strip()):
            raise ConfigError(
                f"--data: {entry!r} is not NAME=PATH or NAME=PATH,images=DIR; give e.g. "
                "--data textvqa=/data/TextVQA_0.5.1_val.json or --data docvqa=val.json,images=/data/docs"
            )
        data[name.strip()] = absolute(raw_path)
        if comma:
            images[name.strip()] = absolute(image_part)
    return data, images


# ``--ckpt base``: the base model itself, with no weights on top, as one model of a sweep.
BASE_CKPT = "base"


def _choose_checkpoints(raw: Sequence[str], model_path_given: bool) -> tuple[CheckpointChoice, ...]:
    from .checkpoint import CheckpointError, inspect_checkpoint

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
        try:
            spec = inspect_checkpoint(path)
        except CheckpointError as exc:
            raise ConfigError(f"--ckpt {raw_path}: {exc}") from None
        standalone = spec.has_config and not model_path_given
        choices.append(CheckpointChoice(f"ckpt{i}", path, standalone=standalone))
        i += 1
    return tuple(choices)


def _check_model_path(raw: str, explicit: bool, any_ckpt_without_config: bool) -> tuple[str, bool]:
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


def _lmudata(raw: object, rootdir: Path) -> Path | None:
    if raw in (None, ""):
        return None
    path = Path(os.path.expanduser(str(raw)))
    path = path if path.is_absolute() else rootdir / path
    if not path.is_dir():
        raise ConfigError(
            f"--lmudata {raw} (or LMUData): not a directory; point it at the folder holding VLMEvalKit's "
            "<NAME>.tsv files"
        )
    return path


def build_config(lookup: Lookup, *, rootdir: Path, env: Mapping[str, str] | None = None) -> EvalConfig:
    """Read every setting through ``lookup``, validate, and freeze. Raises ConfigError (one line) naming
    where the bad value came from: the option, the environment variable or the ini key."""
    sources: dict[str, str] = {}
    try:
        return _build_config(lookup, rootdir, os.environ if env is None else env, sources)
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


def _build_config(
    lookup: Lookup, rootdir: Path, env: Mapping[str, str], sources: dict[str, str]
) -> EvalConfig:
    def get(name: str) -> object:
        value, source = lookup(name)
        sources[name] = source
        return value

    model_raw = get("model_path")
    model_explicit = model_raw is not None
    ckpt_raw = get("ckpt") or []
    if isinstance(ckpt_raw, str):
        ckpt_raw = [ckpt_raw]
    checkpoints = _choose_checkpoints(list(ckpt_raw), model_explicit)
    needs_base = not all(c.path is not None and c.standalone for c in checkpoints)
    if needs_base:
        any_bare = any(c.path is not None and not c.standalone for c in checkpoints)
        model_path, is_local = _check_model_path(
            str(model_raw) if model_explicit else str(DEMO_MODEL_DIR), model_explicit, any_bare
        )
    else:
        model_path, is_local = "", True
        sources["model_path"] = "checkpoint"

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
    batch_size = AUTO_BATCH_START if auto_batch else _int("batch_size", "--batch-size", batch_raw, minimum=1)

    limit_raw = get("limit")
    limit = None if limit_raw in (None, "") else _int("limit", "--limit", limit_raw, minimum=1)
    backend = str(get("backend") or "hf").strip()
    from .backends import available_backends  # entry points: read here, once, in pytest_configure

    if backend not in available_backends():
        raise ConfigError(
            f"--backend {backend!r}: no such backend; installed: {', '.join(available_backends())} "
            "(third-party backends register under the entry point group 'pytest_omnilmm.backends')"
        )
    api = {
        "api_base": str(get("api_base") or "").strip(),
        "api_model": str(get("api_model") or "").strip(),
        "api_key_env": str(get("api_key_env") or "").strip(),
        "model_revision": str(get("model_revision") or "").strip(),
        "concurrency": _int("concurrency", "--concurrency", get("concurrency") or 4, minimum=1),
        "stream": _truthy(get("stream")),
        "tensor_parallel_size": _int(
            "tensor_parallel_size", "--tensor-parallel-size", get("tensor_parallel_size") or 1, minimum=1
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
    if backend == "openai" and api["api_key_env"] and not os.environ.get(str(api["api_key_env"])):
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
    if backend == "vllm":
        from .backends.vllm import NOT_INSTALLED, vllm_available

        if not vllm_available():
            raise ConfigError(NOT_INSTALLED)
    prompt_raw = get("max_prompt_tokens")
    max_prompt_tokens = (
        None
        if prompt_raw in (None, "")
        else _int("max_prompt_tokens", "--max-prompt-tokens", prompt_raw, minimum=1)
    )

    flavor = str(get("metric_flavor")).strip()
    flavors = ("vlmevalkit", "vlmevalkit-2025.01", "omnilmm")
    if flavor not in flavors:
        raise ConfigError(f"--metric-flavor: unknown flavour {flavor!r}; choose one of {', '.join(flavors)}")

    data_raw = get("data") or []
    if isinstance(data_raw, str):
        data_raw = [data_raw]
    data, data_images = parse_data(list(data_raw), base=rootdir)
    for name, folder in data_images.items():
        if not folder.is_dir():
            raise ConfigError(
                f"--data {name}=...,images={folder}: that image folder does not exist; give the folder the "
                "dataset's image paths are relative to"
            )
    for name, path in data.items():
        if not path.exists():
            # Explicitly configured and absent is a typo, not "dataset not available": say so at startup.
            raise ConfigError(
                f"--data {name}={path}: no such file or directory; fix the path or drop the option"
            )

    lmudata = _lmudata(get("lmudata"), rootdir)

    results_dir = Path(os.path.expanduser(str(get("results_dir"))))
    if not results_dir.is_absolute():
        results_dir = rootdir / results_dir
    if results_dir.exists() and not results_dir.is_dir():
        raise ConfigError(f"--results-dir {results_dir}: exists and is not a directory; choose another path")
    # Only a chosen one: with the default, plain unit tests in a read-only checkout must still run.
    if sources["results_dir"] != "default":
        existing = next(p for p in (results_dir, *results_dir.parents) if os.path.exists(p))
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(
                f"--results-dir {results_dir}: {existing} is not writable; give a directory you can write to"
            )

    gate = str(get("gate")).strip().lower()
    if gate not in GATE_MODES:
        raise ConfigError(
            f"--gate: {gate!r} is not a gate mode; choose significant or noninferiority (alias strict)"
        )
    gate = "noninferiority" if gate == "strict" else gate
    gate_inconclusive = str(get("gate_inconclusive")).strip().lower()
    if gate_inconclusive not in GATE_INCONCLUSIVE:
        raise ConfigError(f"--gate-inconclusive: {gate_inconclusive!r} is not fail or pass")
    baseline_raw = get("baseline")
    baseline = _path_or_none(baseline_raw, rootdir)
    if baseline is not None and not baseline.is_file():
        raise ConfigError(
            f"--baseline {baseline_raw}: no such file; create one with --save-baseline {baseline_raw}"
        )
    if baseline is not None and not os.access(baseline, os.R_OK):
        raise ConfigError(
            f"--baseline {baseline_raw}: cannot be read (permission denied); fix its permissions"
        )
    save_baseline = _path_or_none(get("save_baseline"), rootdir)
    if save_baseline is not None and not save_baseline.parent.is_dir():
        raise ConfigError(
            f"--save-baseline {save_baseline}: the directory {save_baseline.parent} does not exist"
        )

    return EvalConfig(
        model_path=model_path,
        model_is_local=is_local,
        checkpoints=checkpoints,
        generate_method=method,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        auto_batch=auto_batch,
        max_new_tokens=_int("max_new_tokens", "--max-new-tokens", get("max_new_tokens"), minimum=1),
        num_beams=_int("num_beams", "--num-beams", get("num_beams"), minimum=1),
        limit=limit,
        max_prompt_tokens=max_prompt_tokens,
        backend=backend,
        **api,  # type: ignore[arg-type]
        **judge,
        limit_seed=_int("limit_seed", "--limit-seed", get("limit_seed"), minimum=0),
        results_dir=results_dir,
        metric_flavor=flavor,
        data=data,
        lmudata=lmudata,
        max_image_pixels=_int("max_image_pixels", "--max-image-pixels", get("max_image_pixels"), minimum=1),
        trust_remote_code=_truthy(get("trust_remote_code")),
        ckpt_partial=_truthy(get("ckpt_partial")),
        threads=_threads(get("threads")),
        progress=not _truthy(get("no_progress")),
        resume=not _truthy(get("no_resume")),
        save_baseline=save_baseline,
        baseline=baseline,
        max_drop=_fraction("--max-drop", get("max_drop")),
        max_drop_per=_name_values("--max-drop-for", get("max_drop_per"), "textvqa=0.02"),
        gate=gate,
        gate_inconclusive=gate_inconclusive,
        gate_allow_partial=_truthy(get("gate_allow_partial")),
        min_score=_name_values("--min-score", get("min_score"), "textvqa=0.6"),
        max_slowdown=None
        if get("max_slowdown") in (None, "")
        else _percent("--max-slowdown", get("max_slowdown")),
        gpus=_gpus(get("gpus"), env),
        shard=_shard(get("shard")),
        sources=sources,
        rootdir=rootdir,
        data_images=data_images,
    )


def _threads(raw: object) -> int | None:
    if raw in (None, ""):
        return None  # decided per process, where the worker count is known
    return _int("threads", "--threads", raw, minimum=1)


def _path_or_none(raw: object, rootdir: Path) -> Path | None:
    if raw in (None, ""):
        return None
    path = Path(os.path.expanduser(str(raw)))
    return path if path.is_absolute() else rootdir / path


def _fraction(flag: str, raw: object) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{flag}: {raw!r} is not a number; give e.g. {flag} 0.01") from None
    if not 0 <= value <= 1:
        raise ConfigError(f"{flag}: {value} is outside 0..1; scores are fractions, so one point is 0.01")
    return value


def parse_margin_map(value: str | Iterable[str], *, option: str = "--max-drop") -> dict[str, float]:
    """``"textvqa=0.02, vqa_accuracy=0.03"`` (or ini lines) -> ``{"textvqa": 0.02, ...}``."""
    parts = [value] if isinstance(value, str) else list(value)
    out: dict[str, float] = {}
    for part in parts:
        for item in re.split(r"[,\n]", part):
            item = item.strip()
            if not item:
                continue
            name, sep, number = item.partition("=")
            name, number = name.strip(), number.strip()
            if not sep or not name:
                raise ValueError(f"{option}: {item!r} is not NAME=NUMBER (e.g. textvqa=0.6)")
            try:
                parsed = float(number)
            except ValueError:
                raise ValueError(
                    f"{option}: {item!r}: {number!r} is not a number (e.g. {name}=0.6)"
                ) from None
            if not math.isfinite(parsed):
                raise ValueError(f"{option}: {item!r}: the number must be finite")
            if name in out and out[name] != parsed:
                raise ValueError(f"{option}: {name!r} is given twice ({out[name]} and {parsed}); keep one")
            out[name] = parsed
    return out


def parse_percent(value: str | float, *, option: str = "--max-slowdown") -> float:
    """``"10%"`` or ``"0.10"`` -> 0.10; a bare number above 1 is refused as ambiguous."""
    text = str(value).strip()
    is_percent = text.endswith("%")
    try:
        number = float(text[:-1].strip() if is_percent else text)
    except ValueError:
        raise ValueError(f"{option}: {text!r} is not a percentage; write e.g. 10% or 0.10") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{option}: {text!r} must be a percentage >= 0, e.g. 10%")
    if is_percent:
        return number / 100.0
    if number > 1:
        raise ValueError(f"{option}: {text!r} is ambiguous; write {text}% or {number / 100:g} (a fraction)")
    return number


def _percent(flag: str, raw: object) -> float:
    try:
        return parse_percent(str(raw), option=flag)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _name_values(flag: str, raw: object, example: str) -> dict[str, float]:
    entries = [raw] if isinstance(raw, str) else [str(e) for e in raw or []]
    try:
        parsed = parse_margin_map(entries, option=flag)
    except ValueError as exc:
        raise ConfigError(f"{exc}; give e.g. {flag} {example}") from None
    return {name: _fraction(f"{flag} {name}", value) for name, value in parsed.items()}


def _gpus(raw: object, env: Mapping[str, str]) -> tuple[str, ...]:
    if raw in (None, ""):
        return ()
    text = str(raw).strip()
    if text == "all":
        visible = env.get("CUDA_VISIBLE_DEVICES")
        if visible is not None and visible.strip():
            return tuple(v.strip() for v in visible.split(",") if v.strip())
        try:
            import subprocess

            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=True)
        except (OSError, subprocess.SubprocessError):
            raise ConfigError(
                "--gpus all: no GPU found (nvidia-smi failed); list GPUs explicitly, e.g. --gpus 0,1"
            ) from None
        count = sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
        if count == 0:
            raise ConfigError(
                "--gpus all: nvidia-smi lists no GPU; run without --gpus (use -n N for CPU workers)"
            )
        return tuple(str(i) for i in range(count))
    ids = tuple(v.strip() for v in text.split(",") if v.strip())
    if not ids or not all(re.fullmatch(r"\d+|GPU-[\w-]+|MIG-[\w-]+", v) for v in ids):
        raise ConfigError(f"--gpus: {text!r} is not a GPU list; give 'all' or ids like 0,1,2,3")
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if not (visible is not None and visible.strip()):
        _check_gpus_exist(text, ids)
    if visible is not None and visible.strip():
        # Respect an existing restriction: --gpus indexes into the GPUs this process may see.
        allowed = [v.strip() for v in visible.split(",") if v.strip()]
        mapped = []
        for v in ids:
            if not v.isdigit() or int(v) >= len(allowed):
                raise ConfigError(
                    f"--gpus {text}: GPU {v} is not among CUDA_VISIBLE_DEVICES={visible}; "
                    f"use indices 0..{len(allowed) - 1}"
                )
            mapped.append(allowed[int(v)])
        return tuple(mapped)
    return ids


def _check_gpus_exist(text: str, ids: tuple[str, ...]) -> None:
    """``--gpus 0,1`` on a machine without those GPUs is an error, never a silent CPU run."""
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        raise ConfigError(
            f"--gpus {text}: no GPU found on this machine (nvidia-smi -L failed or is not installed); "
            "run without --gpus (use -n N for CPU workers)"
        ) from None
    listed = [line for line in out.stdout.splitlines() if line.startswith("GPU ")]
    for v in ids:
        known = int(v) < len(listed) if v.isdigit() else any(v in line for line in listed)
        if not known:
            found = f"{len(listed)} GPU(s): " + "; ".join(listed) if listed else "no GPU"
            raise ConfigError(f"--gpus {text}: GPU {v} is not on this machine; nvidia-smi lists {found}")


def _shard(raw: object) -> tuple[int, int] | None:
    if raw in (None, ""):
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(raw))
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise ConfigError(f"--shard: {raw!r} is not I/N with 0 <= I < N; give e.g. --shard 0/4")
    return int(m.group(1)), int(m.group(2))
