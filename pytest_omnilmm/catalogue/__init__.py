"""The benchmark catalogue: the VLMEvalKit datasets MiniCPM-V is reported on, and how each is scored.

One frozen ``Benchmark`` per dataset. The same entries drive ``python -m pytest_omnilmm list``,
``--lmudata`` / ``LMUData`` file lookup and the bundled evals (``evals/test_catalogue.py``). Nothing here
imports torch or reads a file at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .prepare import hallusion_prepare, mmmu_prepare, mmmu_prompt

__all__ = ["CATALOGUE", "Benchmark", "find", "judged_metrics", "lmudata_hint", "lmudata_path"]


@dataclass(frozen=True)
class Benchmark:
    """One benchmark as VLMEvalKit distributes and scores it.

    ``name`` is the plugin's dataset name (``--data NAME=PATH``), ``vlmeval`` VLMEvalKit's dataset name
    (the ``<vlmeval>.tsv`` file of an ``LMUData`` folder). ``sample`` is the bundled synthetic sample,
    relative to the ``evals/`` folder, run as dataset ``sample_name``. ``evaluated_by`` names the eval file
    when the benchmark's eval case lives outside ``evals/test_catalogue.py``. ``judged_metric`` is the metric
    used instead of ``metric`` when a judge model is configured (``--judge-api-base`` / ``--judge-model``):
    VLMEvalKit's judge-graded rule for benchmarks it grades with a GPT judge.
    """

    name: str
    vlmeval: str
    task: str  # mcq | yes_no | vqa | judge
    metric: str
    flavour: str
    grouping: str
    prompt: str | Callable[..., Any] | None = None
    prepare: Callable[..., Any] | None = None
    sample: str | None = None
    sample_name: str | None = None
    evaluated_by: str = "evals/test_catalogue.py"
    note: str = ""
    judged_metric: str | None = None

    @property
    def file(self) -> str:
        return f"{self.vlmeval}.tsv"

    def as_json(self, evals_dir: Path | None = None) -> dict[str, Any]:
        bundled = None if self.sample is None else f"evals/{self.sample}"
        exists = None
        if evals_dir is not None and self.sample is not None:
            exists = (evals_dir / self.sample).is_file()
        return {
            "name": self.name,
            "vlmeval": self.vlmeval,
            "task": self.task,
            "metric": self.metric,
            "flavour": self.flavour,
            "file": self.file,
            "grouping": self.grouping,
            "sample": bundled,
            "sample_present": exists,
            "sample_name": self.sample_name,
            "evaluated_by": self.evaluated_by,
            "note": self.note,
            "judged_metric": self.judged_metric,
        }


_PLAIN = "one question per group (plain accuracy)"
_CIRCULAR = "index % 1,000,000: rotated copies of one question form a group (circular accuracy)"
_VL = "vlmevalkit"


def _mcq(name: str, vlmeval: str, grouping: str = _PLAIN, **kw: Any) -> Benchmark:
    return Benchmark(
        name,
        vlmeval,
        "mcq",
        "mcq",
        _VL,
        grouping,
        prompt=kw.pop("prompt", "mcq"),
        sample=kw.pop("sample", f"data/vlmeval/{vlmeval}.tsv"),
        sample_name=kw.pop("sample_name", f"demo_{name}"),
        **kw,
    )


def _vqa(name: str, vlmeval: str, metric: str, **kw: Any) -> Benchmark:
    return Benchmark(
        name,
        vlmeval,
        kw.pop("task", "vqa"),
        metric,
        _VL,
        kw.pop("grouping", _PLAIN),
        sample=kw.pop("sample", f"data/vlmeval/{vlmeval}.tsv"),
        sample_name=kw.pop("sample_name", f"demo_{name}"),
        **kw,
    )


_JUDGE_NOTE = (
    "rule-based exact match only: NOT the leaderboard number (VLMEvalKit grades MM-Vet with a GPT judge); "
    "with --judge-api-base/--judge-model it is graded as VLMEvalKit grades it (metric mmvet_gpt)"
)

CATALOGUE: tuple[Benchmark, ...] = (
    _mcq("mmstar", "MMStar"),
    _mcq("ai2d_test", "AI2D_TEST"),
    _mcq("scienceqa_test", "ScienceQA_TEST"),
    _mcq("realworldqa", "RealWorldQA"),
    _mcq("seedbench_img", "SEEDBench_IMG"),
    _mcq(
        "mmbench",
        "MMBench_DEV_EN",
        _CIRCULAR,
        sample="data/demo_mcq.tsv",
        sample_name="demo_mcq",
        evaluated_by="evals/test_multiple_choice.py",
    ),
    _mcq("mmbench_dev_en_v11", "MMBench_DEV_EN_V11", _CIRCULAR),
    _mcq("mmbench_dev_cn_v11", "MMBench_DEV_CN_V11", _CIRCULAR),
    _mcq(
        "mmmu_dev_val",
        "MMMU_DEV_VAL",
        prompt=mmmu_prompt,
        prepare=mmmu_prepare,
        note="open questions become A=<answer>, B='Other Answers' (MMMU_preproc); images at <image k>",
    ),
    Benchmark(
        "pope",
        "POPE",
        "yes_no",
        "pope",
        _VL,
        "one question per group; a row counts in every split its comma-separated category names",
        prompt="yes_no",
        sample="data/vlmeval/POPE.tsv",
        sample_name="demo_pope",
    ),
    Benchmark(
        "hallusionbench",
        "HallusionBench",
        "yes_no",
        "hallusion",
        _VL,
        "index <c>_<s>_<x>_<set>_<figure>_<question>: fAcc by (l2-category, set, figure), "
        "qAcc by (l2-category, set, question)",
        prompt="yes_no",
        prepare=hallusion_prepare,
        sample="data/vlmeval/HallusionBench.tsv",
        sample_name="demo_hallusionbench",
    ),
    Benchmark(
        "mme",
        "MME",
        "yes_no",
        "mme",
        _VL,
        "(category, image_path): the two questions of one image (accuracy+)",
        prompt="yes_no",
        sample="data/demo_yesno.tsv",
        sample_name="demo_yesno",
        evaluated_by="evals/test_yes_no.py",
    ),
    _vqa("infovqa_val", "InfoVQA_VAL", "anls"),
    _vqa("chartqa", "ChartQA_TEST", "relaxed_accuracy", evaluated_by="evals/test_document.py"),
    _vqa(
        "ocrbench",
        "OCRBench",
        "ocrbench",
        sample="data/demo_ocr.tsv",
        sample_name="demo_ocr",
        evaluated_by="evals/test_ocr.py",
    ),
    _vqa("textvqa_val", "TextVQA_VAL", "vqa_accuracy"),
    _vqa("docvqa_val", "DocVQA_VAL", "anls"),
    _vqa(
        "mathvista_mini",
        "MathVista_MINI",
        "mathvista_prefetch",
        task="judge",
        note="VLMEvalKit's judge-free prefetch step only (post_check): rows it would send to the GPT judge "
        "score 0, so this is NOT the leaderboard number; with --judge-api-base/--judge-model those rows go "
        "to the judge as in VLMEvalKit (metric mathvista)",
        judged_metric="mathvista",
    ),
    _vqa("mmvet", "MMVet", "exact_match", task="judge", note=_JUDGE_NOTE, judged_metric="mmvet_gpt"),
)

_BY_NAME: dict[str, Benchmark] = {b.name: b for b in CATALOGUE}
_BY_VLMEVAL: dict[str, Benchmark] = {b.vlmeval: b for b in CATALOGUE}
assert len(_BY_NAME) == len(CATALOGUE) and len(_BY_VLMEVAL) == len(CATALOGUE)


def find(name: str) -> Benchmark | None:
    """The entry called ``name`` (the plugin's name or VLMEvalKit's, case-insensitive), else None."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name in _BY_VLMEVAL:
        return _BY_VLMEVAL[name]
    lowered = name.lower()
    return next((b for b in CATALOGUE if lowered in (b.name, b.vlmeval.lower())), None)


def judged_metrics() -> dict[str, str]:
    """Dataset name (the benchmark's and its bundled sample's) -> the metric to use with a judge model."""
    out: dict[str, str] = {}
    for b in CATALOGUE:
        if b.judged_metric:
            out[b.name] = b.judged_metric
            if b.sample_name:
                out[b.sample_name] = b.judged_metric
    return out


def lmudata_path(name: str, lmudata: Path | None) -> Path | None:
    """``<lmudata>/<VLMEvalKit name>.tsv`` for a catalogue dataset, or None (not in the catalogue / no
    folder given). The path is returned even when the file is absent, so the skip reason can name it."""
    entry = _BY_NAME.get(name)
    if entry is None or lmudata is None:
        return None
    return lmudata / entry.file


def lmudata_hint(name: str) -> str:
    """For a skip reason: where else a catalogue dataset's file can come from ("" for other datasets)."""
    entry = _BY_NAME.get(name)
    if entry is None:
        return ""
    return f", or --lmudata DIR (or LMUData=DIR) with {entry.file} in it"
