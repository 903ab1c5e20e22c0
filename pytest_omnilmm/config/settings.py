"""The settings table: each option's CLI spelling, environment variable, ini key, help text and default,
the boolean switches, the ``--help`` metavars, and the allowed values of the choice settings. Data only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

GENERATE_METHODS = ("chat", "interleave")
GENERATE_ALIASES = {"old": "chat"}
DTYPES = ("auto", "bfloat16", "float16", "float32")
DEFAULT_RESULTS_DIR = ".omnilmm-results"
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # PIL's own default (0.25 GB of RGB); above it a sample fails.
AUTO_BATCH_START = 16
GATE_MODES = ("significant", "noninferiority", "strict")  # strict: the old name of noninferiority
GATE_INCONCLUSIVE = ("fail", "pass")
METRIC_FLAVORS = ("vlmevalkit", "vlmevalkit-2025.01", "omnilmm")


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
