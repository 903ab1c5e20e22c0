"""The fixtures an eval case uses: ``sample`` (parametrized at collection), ``generate`` (batched, cached,
timed behind the call), ``score`` (the marker's metric, the run's flavour), ``omnilmm_model``, and the
session-scoped ``omnilmm_config`` / ``omnilmm_load_model`` / ``omnilmm_engine`` / ``omnilmm_judge``
behind them.

``plugin.py`` imports them so pytest finds them on the registered plugin; a conftest fixture of the same
name overrides any of them (``omnilmm_load_model`` is the documented one). torch and transformers are
imported only inside the fixtures, when an eval item runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ..collection import EvalCase
from ..config import EvalConfig
from ..ids import UnavailableParam, eval_param
from ..keys import CONFIG_KEY, PEERS_KEY, RUN_ID_KEY, worker_name
from ..session import mark_has_evals


@dataclass
class ItemState:
    """What an eval item gathered while running (``item.stash[STATE_KEY]``); becomes its Record."""

    case: EvalCase
    label: str
    sample: Any
    outcome: Any = None
    scores: dict[str, float | None] | None = None
    metric: str | None = None
    notes: list[str] | None = None
    flavor: str | None = None


STATE_KEY = pytest.StashKey[ItemState]()


@pytest.fixture(scope="session")
def omnilmm_config(pytestconfig: pytest.Config) -> EvalConfig:
    """The validated settings of this run."""
    return pytestconfig.stash[CONFIG_KEY]


@pytest.fixture(scope="session")
def omnilmm_load_model() -> Callable[..., Any]:
    """The function that loads a model for a checkpoint. Override in a conftest to load your own way:
    it takes a ``ModelRequest`` and returns a ``LoadedModel``."""
    from ..models import load_model

    return load_model


@pytest.fixture(scope="session")
def omnilmm_engine(
    pytestconfig: pytest.Config, omnilmm_config: EvalConfig, omnilmm_load_model: Callable[..., Any]
) -> Iterator[Any]:
    """The worker's engine: model pool (one load per checkpoint per process), batching, records."""
    from ..backends import make_backend
    from ..models import ModelRequest
    from .engine import Engine, ModelPool, load_resume_index
    from .process_limits import set_cpu_threads, set_max_image_pixels
    from .writer import RecordWriter

    cfg = omnilmm_config
    mark_has_evals(pytestconfig)
    set_cpu_threads(pytestconfig, cfg)
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
    worker = worker_name(pytestconfig)
    resume_index = load_resume_index(cfg.results_dir) if cfg.resume else {}
    writer = RecordWriter(run_dir / f"records-{worker}.jsonl")
    set_max_image_pixels(pytestconfig, cfg.max_image_pixels)
    backend = make_backend(cfg, loader=omnilmm_load_model)
    engine = Engine(cfg, ModelPool(backend), requests, writer, worker, resume_index, run_dir)
    yield engine
    engine.close()


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
        from .engine import AlreadySaid, ModelUnavailable

        peers = [task_of(p) for p in item.stash.get(PEERS_KEY, [item])]
        said = False
        try:
            outcome = omnilmm_engine.outcome(task_of(item), peers)
        except ModelUnavailable as exc:
            unavailable, said = str(exc), isinstance(exc, AlreadySaid)
        else:
            unavailable = None
        if said:
            pytest.skip(str(unavailable))
        if unavailable is not None:  # failed outside the except: pytest would print the line twice, chained
            pytest.fail(unavailable, pytrace=False)
        state.outcome = outcome
        if outcome.generated.error is not None:
            pytest.fail(outcome.generated.error, pytrace=False)
        return str(outcome.generated.prediction)

    return _generate


def task_of(item: pytest.Item) -> Any:
    """An item's engine task, built from its parameter (so also for a peer whose fixtures have not run)."""
    from ..generation import get_prompt_builder
    from .engine import Task

    param = eval_param(item)
    assert param is not None, f"{item.nodeid} is not an eval item"
    case = param.case
    return Task(item.nodeid, param.label, param.sample, case.prompt, case.builder or get_prompt_builder(None))


@pytest.fixture(scope="session")
def omnilmm_judge(omnilmm_config: EvalConfig) -> Any:
    """The judge model of judge-graded metrics (``--judge-api-base`` / ``--judge-model``), or None. Override
    in a conftest to judge your own way: an object with ``model`` and ``complete(prompt, *, temperature,
    max_tokens) -> str`` (see ``pytest_omnilmm.metrics.judge.Judge``)."""
    from ..backends.judge import OpenAIJudge

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
            from ..metrics import DEFAULT_FLAVOR, MetricError, get_metric

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
