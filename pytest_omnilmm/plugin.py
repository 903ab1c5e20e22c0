"""pytest hooks and fixtures of pytest-omnilmm. Thin: the work lives in engine / controller / report.

Import-time cost matters (``pytest --help`` loads this module): torch and transformers are imported
only inside fixtures, when a model is actually needed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from .batching import plan_units_by_key
from .config import (
    FLAGS,
    METAVARS,
    SETTINGS,
    ConfigError,
    EvalConfig,
    build_config,
    flag_help_text,
    help_text,
    name_the_source,
    resolve,
)
from .ids import EvalParam, UnavailableParam, eval_param
from .probes import settle
from .process_state import default_threads, freeze_gc, set_max_image_pixels, set_torch_threads, setdefault_env
from .records import RECORD_PROPERTY

CONFIG_KEY = pytest.StashKey[EvalConfig]()
CONTROLLER_KEY = pytest.StashKey["Controller"]()
RUN_ID_KEY = pytest.StashKey[str]()
CASE_KEY = pytest.StashKey["EvalCase"]()
PEERS_KEY = pytest.StashKey[list]()
STATE_KEY = pytest.StashKey["ItemState"]()
DECLARED_KEY = pytest.StashKey[dict]()
HAS_EVALS_KEY = pytest.StashKey[bool]()
ITEM_PROPERTY = "omnilmm_item"

DATASET_MARKER = "dataset"


# --------------------------------------------------------------------------------------------- options
def pytest_addoption(parser: pytest.Parser) -> None:
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


def _lookup(config: pytest.Config) -> Callable[[str], tuple[object, str]]:
    table = {s.name: s for s in SETTINGS}
    flags = {name: env for name, _flag, env, _help in FLAGS}

    def lookup(name: str) -> tuple[object, str]:
        if name == "gpus" and _is_worker(config):
            # A worker is already pinned (its CUDA_VISIBLE_DEVICES is one GPU): nothing to re-check.
            return None, "controller"
        option_value = config.getoption(f"omnilmm_{name}")
        if name in flags:
            ini_value = config.getini(f"omnilmm_{name}") or None
            return resolve(option_value, os.environ, flags[name], ini_value, False)
        s = table[name]
        return resolve(option_value, os.environ, s.env, config.getini(s.ini), s.default, multiple=s.multiple)

    return lookup


# ----------------------------------------------------------------------------------------- configure
@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Iterator[Any]:
    """``--gpus``: rewrite the xdist worker specs before xdist reads them (one pinned worker per GPU)."""
    raw, source = _lookup(config)("gpus")
    if raw not in (None, "") and not _is_worker(config):
        from .probes import probe_gpus

        try:
            gpus = probe_gpus(raw, os.environ)
        except ConfigError as exc:
            raise pytest.UsageError(name_the_source(str(exc), {"gpus": source})) from None
        if not config.pluginmanager.hasplugin("xdist"):
            raise pytest.UsageError("--gpus needs pytest-xdist; install it or run without --gpus")
        if config.getoption("numprocesses", None):
            raise pytest.UsageError("--gpus starts one worker per GPU by itself; drop -n (or drop --gpus)")
        from .xdist import gpu_tx_specs

        config.option.tx = gpu_tx_specs(gpus)
        if config.getoption("dist", "no") == "no":
            config.option.dist = "load"
    storage = _new_benchmark_storage(config)
    try:
        return (yield)
    finally:
        if storage is not None and not config.stash.get(HAS_EVALS_KEY, False):
            _remove_if_empty(storage)


def _new_benchmark_storage(config: pytest.Config) -> Path | None:
    """pytest-benchmark (a dependency of this plugin) creates its storage folder in every session. If the
    folder does not exist yet, it is removed again after a session without eval items, when still empty:
    a project that merely has this plugin installed gets no stray ``.benchmarks/``."""
    value = config.getoption("benchmark_storage", None)
    if not isinstance(value, str) or ("://" in value and not value.startswith("file://")):
        return None
    path = Path(value.removeprefix("file://"))
    path = path if path.is_absolute() else Path.cwd() / path
    return None if path.exists() else path


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()  # only succeeds on an empty folder
    except OSError:
        pass


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "dataset(name, path=None, format=None, metric='exact_match', prompt=None, flavor=None, "
        "prepare=None): parametrize `sample` over "
        "a dataset, one test item per sample (path relative to the test file; --data NAME=PATH overrides)",
    )
    try:
        eval_config = build_config(_lookup(config), rootdir=Path(config.invocation_params.dir))
        # Probes (file system, hub, nvidia-smi) run once, on the controller; a worker takes their findings.
        eval_config = settle(eval_config, getattr(config, "workerinput", None))
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[CONFIG_KEY] = eval_config
    if _is_worker(config):
        config.stash[RUN_ID_KEY] = config.workerinput["omnilmm_run_id"]  # type: ignore[attr-defined]
    else:
        from .controller import Controller, new_run_id

        config.stash[RUN_ID_KEY] = new_run_id()
        controller = Controller(eval_config, config.stash[RUN_ID_KEY])
        config.stash[CONTROLLER_KEY] = controller
        config.pluginmanager.register(ControllerHooks(controller), "omnilmm-controller")
    if not _is_worker(config):
        _terminate_like_interrupt(config)
    if config.pluginmanager.hasplugin("xdist"):
        from . import xdist as xdist_hooks

        config.pluginmanager.register(xdist_hooks.XdistHooks(config), "omnilmm-xdist")


def pytest_sessionstart(session: pytest.Session) -> None:
    """The progress line, on the controller only (the terminal reporter exists by now)."""
    config = session.config
    if not _is_worker(config) and CONFIG_KEY in config.stash:
        from .progress import register_progress

        register_progress(config, config.stash[CONFIG_KEY].progress)


def _terminate_like_interrupt(config: pytest.Config) -> None:
    """Pre-emption sends SIGTERM: end the session like Ctrl-C, so the summary of what finished is written."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # someone (a runner, another plugin) already handles it

    def interrupt(signum: int, frame: object) -> None:
        if not config.stash.get(HAS_EVALS_KEY, False):
            # No eval item in this session: die of SIGTERM exactly as pytest alone would (rc 143).
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")

    signal.signal(signal.SIGTERM, interrupt)
    config.add_cleanup(lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _worker_name(config: pytest.Config) -> str:
    return str(config.workerinput["workerid"]) if _is_worker(config) else "main"  # type: ignore[attr-defined]


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """The settings header, only for a session that has eval items (an unrelated project sees nothing)."""
    return header_lines(config) if any(_is_eval_item(it) for it in items) else []


def header_lines(config: pytest.Config) -> list[str]:
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


# ---------------------------------------------------------------------------------------- collection
@dataclass(frozen=True)
class EvalCase:
    """What a dataset marker declares for one test function and dataset."""

    dataset: str
    path: Path
    format: str | None
    metric: str
    prompt: str  # a stable name: part of the resume key
    flavor: str | None = None
    builder: Any = None  # the prompt builder (a PROMPTS entry or the eval's own function)


@dataclass(frozen=True)
class Unavailable:
    """A parameter standing in for a dataset that cannot be read: skipped or failed with the reason."""

    dataset: str
    reason: str
    broken: bool  # True: the file exists but is bad (fail); False: absent (skip)


def _dataset_path(cfg: EvalConfig, name: str, declared: str | None, module_dir: Path) -> Path | None:
    if name in cfg.data:
        return cfg.data[name]
    from .catalogue import find, lmudata_path

    entry = find(name)
    if entry is not None and entry.name == name and entry.vlmeval in cfg.data:  # --data MMStar=PATH
        return cfg.data[entry.vlmeval]
    found = lmudata_path(name, getattr(cfg, "lmudata", None))
    if found is not None:
        return found
    if declared is None:
        return None
    path = Path(declared)
    return path if path.is_absolute() else module_dir / path


def _limited(samples: list[Any], limit: int | None, seed: int, dataset: str) -> list[Any]:
    """A seeded random subset, identical on every run and worker, in the dataset's own order."""
    if limit is None or len(samples) <= limit:
        return samples

    def rank(sample: Any) -> str:
        return hashlib.sha256(f"{seed}\0{dataset}\0{sample.id}".encode()).hexdigest()

    chosen = {id(s) for s in sorted(samples, key=rank)[:limit]}
    return [s for s in samples if id(s) in chosen]


def _prompt_name(prompt: Any) -> str:
    if prompt is None:
        return "default"
    if callable(prompt):
        return f"{getattr(prompt, '__module__', '?')}.{getattr(prompt, '__qualname__', repr(prompt))}"
    return str(prompt)


def _prompt_builder(where: str, prompt: Any) -> Any:
    from .generation import get_prompt_builder

    try:
        return get_prompt_builder(prompt)
    except ValueError as exc:
        pytest.fail(f"{where}: @pytest.mark.dataset(prompt=...): {exc}", pytrace=False)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    markers = list(metafunc.definition.iter_markers(DATASET_MARKER))
    if not markers or "sample" not in metafunc.fixturenames:
        return
    cfg = metafunc.config.stash[CONFIG_KEY]
    from .datasets import DatasetError, load_dataset

    module_dir = Path(str(metafunc.definition.fspath)).parent
    declared = metafunc.config.stash.setdefault(DECLARED_KEY, {})
    several = len(markers) > 1
    params: list[Any] = []
    for marker in reversed(markers):  # iter_markers yields the closest (last written) first
        name = str(marker.args[0]) if marker.args else str(marker.kwargs.get("name", ""))
        if not name:
            raise pytest.UsageError(
                f"{metafunc.definition.nodeid}: @pytest.mark.dataset needs a dataset name"
            )
        path = _dataset_path(cfg, name, marker.kwargs.get("path"), module_dir)
        case = EvalCase(
            dataset=name,
            path=path or Path(),
            format=marker.kwargs.get("format"),
            metric=str(marker.kwargs.get("metric", "exact_match")),
            prompt=_prompt_name(marker.kwargs.get("prompt")),
            flavor=marker.kwargs.get("flavor"),
            builder=_prompt_builder(metafunc.definition.nodeid, marker.kwargs.get("prompt")),
        )
        owner = declared.setdefault(name, metafunc.definition.nodeid)
        if owner != metafunc.definition.nodeid:
            # Records are keyed by (checkpoint, dataset, sample id): two evals of one dataset would overwrite.
            pytest.fail(
                f"{metafunc.definition.nodeid}: dataset {name!r} is already evaluated by {owner}; "
                f"give this eval its own dataset name (e.g. @pytest.mark.dataset('{name}_2', path=...))",
                pytrace=False,
            )
        prefix = f"{name}-" if several else ""
        if path is None or not path.exists():
            where = f"not found at {path}" if path is not None else "has no location"
            reason = f"dataset {name!r} {where}; set --data {name}=PATH (or omnilmm_data in ini)"
            from .catalogue import lmudata_hint

            reason += lmudata_hint(name)
            params.append(
                pytest.param(
                    UnavailableParam(case, Unavailable(name, reason, broken=False)),
                    id=f"{prefix}unavailable",
                    marks=pytest.mark.skip(reason=reason),
                )
            )
            continue
        try:
            samples = load_dataset(path, name=name, format=case.format, image_root=cfg.data_images.get(name))
        except DatasetError as exc:
            params.append(
                pytest.param(
                    UnavailableParam(case, Unavailable(name, str(exc), broken=True)), id=f"{prefix}unreadable"
                )
            )
            continue
        samples = _limited(samples, cfg.limit, cfg.limit_seed, name)
        if callable(marker.kwargs.get("prepare")):  # a benchmark's own step (catalogue/prepare.py)
            samples = [marker.kwargs["prepare"](s) for s in samples]
        for choice in cfg.checkpoints:
            for sample in samples:
                param = EvalParam(case, choice.label, sample, metafunc.definition.nodeid)
                params.append(pytest.param(param, id=param.node_id_part(prefix)))
    metafunc.parametrize("sample", params, indirect=True)


def _shard_of(nodeid: str, count: int) -> int:
    return int(hashlib.sha256(nodeid.encode()).hexdigest()[:12], 16) % count


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    cfg = config.stash[CONFIG_KEY]
    if cfg.shard is not None:
        index, count = cfg.shard
        keep = [it for it in items if not _is_eval_item(it) or _shard_of(it.nodeid, count) == index]
        kept = set(keep)
        dropped = [it for it in items if it not in kept]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    # Checkpoint-major order: each checkpoint's model is loaded once per process.
    rank = {c.label: i for i, c in enumerate(cfg.checkpoints)}
    items.sort(key=lambda it: rank.get(_label(it), -1))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Batches are planned on the final item list (after -k, --lf, --shard and every other filter)."""
    cfg = session.config.stash[CONFIG_KEY]
    items = session.items
    units = plan_units_by_key([_batch_key(it) for it in items], cfg.batch_size)
    groups: dict[int, list[pytest.Item]] = {}
    for item, unit in zip(items, units, strict=True):
        if _is_eval_item(item):
            groups.setdefault(unit, []).append(item)
    for members in groups.values():
        for item in members:
            item.stash[PEERS_KEY] = members
    if groups:
        mark_has_evals(session.config)
        # Thousands of collected items are long-lived: freezing them keeps the garbage collector from walking
        # them during generation (measured: ~0.5 ms/sample of harness overhead on the demo model).
        freeze_gc(session.config)


def mark_has_evals(config: pytest.Config) -> None:
    """This session runs eval items: the process-wide settings an eval needs may now be changed."""
    if config.stash.get(HAS_EVALS_KEY, False):
        return
    config.stash[HAS_EVALS_KEY] = True
    cfg = config.stash[CONFIG_KEY]
    if cfg.model_is_local:
        # A local model must never reach for the hub (and never wait on it).
        setdefault_env(config, "HF_HUB_OFFLINE", "1")
        setdefault_env(config, "TRANSFORMERS_OFFLINE", "1")
    setdefault_env(config, "TOKENIZERS_PARALLELISM", "false")


def _batch_key(item: pytest.Item) -> Any:
    param = eval_param(item)
    return param.batch_key if param is not None else item.nodeid


def _is_eval_item(item: pytest.Item) -> bool:
    return eval_param(item) is not None


def _label(item: pytest.Item) -> str | None:
    param = eval_param(item)
    return param.label if param is not None else None


# ------------------------------------------------------------------------------------------ fixtures
@dataclass
class ItemState:
    """What an eval item gathered while running; becomes its Record."""

    case: EvalCase
    label: str
    sample: Any
    outcome: Any = None
    scores: dict[str, float | None] | None = None
    metric: str | None = None
    notes: list[str] | None = None
    flavor: str | None = None


@pytest.fixture(scope="session")
def omnilmm_config(pytestconfig: pytest.Config) -> EvalConfig:
    """The validated settings of this run."""
    return pytestconfig.stash[CONFIG_KEY]


@pytest.fixture(scope="session")
def omnilmm_load_model() -> Callable[..., Any]:
    """The function that loads a model for a checkpoint. Override in a conftest to load your own way:
    it takes a ``ModelRequest`` and returns a ``LoadedModel``."""
    from .models import load_model

    return load_model


@pytest.fixture(scope="session")
def omnilmm_engine(
    pytestconfig: pytest.Config, omnilmm_config: EvalConfig, omnilmm_load_model: Callable[..., Any]
) -> Iterator[Any]:
    """The worker's engine: model pool (one load per checkpoint per process), batching, records."""
    from .backends import make_backend
    from .engine import Engine, ModelPool, load_resume_index
    from .models import ModelRequest
    from .records import RecordWriter

    cfg = omnilmm_config
    mark_has_evals(pytestconfig)
    _set_cpu_threads(pytestconfig, cfg)
    requests = {
        c.label: ModelRequest(
            label=c.label,
            model_path=cfg.model_path,
            ckpt=c.path,
            standalone=c.standalone,
            device=cfg.device,
            dtype=cfg.dtype,
            trust_remote_code=cfg.trust_remote_code,
            allow_partial=cfg.ckpt_partial,
        )
        for c in cfg.checkpoints
    }
    run_dir = cfg.results_dir / pytestconfig.stash[RUN_ID_KEY]
    worker = _worker_name(pytestconfig)
    resume_index = load_resume_index(cfg.results_dir) if cfg.resume else {}
    writer = RecordWriter(run_dir / f"records-{worker}.jsonl")
    set_max_image_pixels(pytestconfig, cfg.max_image_pixels)
    backend = make_backend(cfg, loader=omnilmm_load_model)
    engine = Engine(cfg, ModelPool(backend), requests, writer, worker, resume_index, run_dir)
    yield engine
    engine.close()


def _set_cpu_threads(config: pytest.Config, cfg: EvalConfig) -> None:
    """``--threads N``, or the cores split between xdist workers so they do not oversubscribe. An
    ``OMP_NUM_THREADS`` the user set is kept unless ``--threads`` is given. A server backend generates
    elsewhere: torch is not even imported for it, unless ``--threads`` asks."""
    if cfg.threads is None and (os.environ.get("OMP_NUM_THREADS") or cfg.backend == "openai"):
        return
    set_torch_threads(config, cfg.threads or default_threads(os.environ))


@pytest.fixture
def sample(request: pytest.FixtureRequest, omnilmm_engine: Any) -> Any:
    """The sample this test item evaluates (parametrized by ``@pytest.mark.dataset``)."""
    param = request.param
    if isinstance(param, UnavailableParam):
        if param.reason.broken:
            pytest.fail(param.reason.reason, pytrace=False)
        pytest.skip(param.reason.reason)
    request.node.stash[STATE_KEY] = ItemState(param.case, param.label, param.sample)
    return param.sample


@pytest.fixture
def generate(request: pytest.FixtureRequest, omnilmm_engine: Any, sample: Any) -> Callable[..., str]:
    """``generate(sample) -> str``: the answer of this item's checkpoint (batched, cached, timed)."""
    item = request.node
    state: ItemState = item.stash[STATE_KEY]

    def _generate(the_sample: Any = None) -> str:
        if the_sample is not None and the_sample is not state.sample:
            raise ValueError("generate() answers this item's own sample; pass `sample` (or nothing)")
        from .engine import ModelUnavailable

        peers = [_peer_task(p) for p in item.stash.get(PEERS_KEY, [item])]
        try:
            outcome = omnilmm_engine.outcome(_peer_task(item), peers)
        except ModelUnavailable as exc:
            unavailable = str(exc)
        else:
            unavailable = None
        if unavailable is not None:  # failed outside the except: pytest would print the line twice, chained
            pytest.fail(unavailable, pytrace=False)
        state.outcome = outcome
        if outcome.generated.error is not None:
            pytest.fail(outcome.generated.error, pytrace=False)
        return str(outcome.generated.prediction)

    return _generate


def _peer_task(item: pytest.Item) -> Any:
    """A peer's task before its own fixtures ran: built from its parameter."""
    from .engine import Task
    from .generation import get_prompt_builder

    param = eval_param(item)
    assert param is not None, f"{item.nodeid} is not an eval item"
    case = param.case
    return Task(item.nodeid, param.label, param.sample, case.prompt, case.builder or get_prompt_builder(None))


@pytest.fixture(scope="session")
def omnilmm_judge(omnilmm_config: EvalConfig) -> Any:
    """The judge model of judge-graded metrics (``--judge-api-base`` / ``--judge-model``), or None. Override
    in a conftest to judge your own way: an object with ``model`` and ``complete(prompt, *, temperature,
    max_tokens) -> str`` (see ``pytest_omnilmm.metrics.judge.Judge``)."""
    from .backends.judge import OpenAIJudge

    return OpenAIJudge.from_config(omnilmm_config)


@pytest.fixture
def score(
    request: pytest.FixtureRequest, omnilmm_config: EvalConfig, sample: Any, omnilmm_judge: Any
) -> Callable[..., float | None]:
    """``score(answer)`` scores with the marker's metric and the run's flavour; ``score(0.7, metric="x")``
    records a value you computed. Returns the value (None when the sample has no references). A
    judge-graded metric asks ``omnilmm_judge``; a judge that cannot be asked fails this sample alone."""
    state: ItemState = request.node.stash[STATE_KEY]

    def _score(answer: str | float, metric: str | None = None) -> float | None:
        name = metric or state.case.metric
        if isinstance(answer, str):
            from .metrics import DEFAULT_FLAVOR, MetricError, get_metric

            try:
                metric_obj = get_metric(name)
                wanted = state.case.flavor or omnilmm_config.metric_flavor
                # A run-wide flavour covers the metrics that have it (omnilmm defines only VQA accuracy and
                # ANLS); the others keep their default, and the record says which one scored it.
                flavor = wanted if wanted in metric_obj.flavors else DEFAULT_FLAVOR
                if state.case.flavor and state.case.flavor not in metric_obj.flavors:
                    raise MetricError(
                        f"metric {name!r} has no flavour {state.case.flavor!r}; "
                        f"it has {', '.join(metric_obj.flavors)}"
                    )
                result = metric_obj.score(answer, state.sample, flavor, judge=omnilmm_judge)
            except MetricError as exc:  # includes JudgeError: the judge could not be asked
                problem: str | None = f"{state.case.dataset}: {exc}"
            else:
                problem = None
            if problem is not None:  # failed outside the except block: one message, no chained traceback
                pytest.fail(problem, pytrace=False)
            state.flavor = flavor
            value, note = result.value, result.note
        else:
            value, note = float(answer), None
        state.scores = {**(state.scores or {}), name: value}
        if state.metric is None:
            state.metric = name
        if note:
            state.notes = [*(state.notes or []), note]
        return value

    return _score


@pytest.fixture
def omnilmm_model(request: pytest.FixtureRequest, omnilmm_engine: Any, sample: Any) -> Any:
    """The loaded model (``LoadedModel``) of this item's checkpoint, for eval cases that drive it directly."""
    state: ItemState = request.node.stash[STATE_KEY]
    return omnilmm_engine.pool.get(omnilmm_engine.requests[state.label])


# ------------------------------------------------------------------------------------------- records
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if call.when == "setup" and _is_eval_item(item):
        param = eval_param(item)
        assert param is not None
        report.user_properties.append(
            (
                ITEM_PROPERTY,
                {"dataset": param.case.dataset, "sample_id": param.sample.id, "label": param.label},
            )
        )
    state = item.stash.get(STATE_KEY, None)
    if state is None or not _is_eval_item(item):
        return report
    if (call.when == "call" and not report.skipped) or (call.when == "setup" and report.failed):
        engine = getattr(item, "funcargs", {}).get("omnilmm_engine")
        if engine is None:
            return report
        error = check_failed = None
        if report.failed:
            if _is_golden_check(call, state):
                check_failed = _one_line(call.excinfo)
            else:
                error = _one_line(call.excinfo)
        record = engine.make_record(
            _peer_task(item),
            state.case.dataset,
            state.outcome,
            dict(state.scores or {}),
            state.metric,
            error,
            state.notes or (),
            flavor=state.flavor,
        )
        if check_failed is not None:
            record = replace(record, check_failed=check_failed)
        engine.write(record)
        report.user_properties.append((RECORD_PROPERTY, record.to_json()))
        _junit_view(item, report, record)
    return report


def _junit_view(item: pytest.Item, report: pytest.TestReport, record: Any) -> None:
    """What CI test views (JUnit XML) show per sample: its own share of the batch's time, and its answer.

    The first item of a batch runs the whole batch's generate call; without this, JUnit would charge all of
    it to that item and ~0 s to the others.
    """
    if report.when == "call" and not record.resumed and record.batch_size > 0 and record.latency_s > 0:
        report.duration = record.latency_s / record.batch_size
    # On the item, not this report: JUnit XML reads the properties of the teardown report, copied from it.
    item.user_properties.append(("prediction", record.prediction if record.prediction is not None else ""))
    score = record.scores.get(record.metric) if record.metric else None
    item.user_properties.append(("score", "" if score is None else score))


def _is_golden_check(call: pytest.CallInfo[None], state: ItemState) -> bool:
    """An ``assert`` in the eval body after the answer was generated and scored: a failed sample."""
    return (
        call.when == "call"
        and call.excinfo is not None
        and call.excinfo.errisinstance(AssertionError)
        and state.outcome is not None
        and state.outcome.generated.error is None
        and bool(state.scores)
    )


def _one_line(excinfo: Any) -> str:
    if excinfo is None:
        return "failed"
    value = excinfo.value
    text = str(getattr(value, "msg", None) or value) or excinfo.typename
    return f"{excinfo.typename}: {text.splitlines()[0]}" if text else excinfo.typename


class ControllerHooks:
    """Registered on the controller's own plugin manager: its reports go to its controller (a process can
    hold several sessions, e.g. pytester's in-process runs, so no module-level state)."""

    def __init__(self, controller: Any) -> None:
        self.controller = controller

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.controller.add_report(report)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    controller = session.config.stash.get(CONTROLLER_KEY, None)
    if controller is None:
        return
    failed = controller.finish(
        session.config, exit_status=int(exitstatus), partial=_partial_reason(session, int(exitstatus))
    )
    if failed and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _partial_reason(session: pytest.Session, exitstatus: int) -> str | None:
    """Why this session did not run every collected item, or None when it did."""
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        return "interrupted (Ctrl-C or a signal) before every item ran"
    stopped = session.shouldfail or session.shouldstop
    if stopped:
        return f"stopped early ({stopped})"
    return None


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    controller = config.stash.get(CONTROLLER_KEY, None)
    if controller is not None:
        for line in controller.summary_lines():
            terminalreporter.write_line(line)
