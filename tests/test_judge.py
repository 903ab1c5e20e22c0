"""Judge-graded MathVista_MINI and MMVet as VLMEvalKit grades them (``--judge-api-base``/``--judge-model``).

(a) Prompts and reply parsing on rows in the released TSV layout, against expectations worked out by hand
from VLMEvalKit's ``build_mathvista_gpt4_prompt`` / ``MathVista_auxeval`` / ``post_check`` and
``build_mmvet_gpt4_prompt`` / ``MMVet_auxeval``: a scripted judge (the ``Judge`` protocol, answering what a
case needs) stands in where the reply itself is the point (unparsable, failing, out of range, precision).
(b) End to end: ``transformers serve`` on a copy of the demo model as the judge of ``pytest evals/ -k
"mathvista or mmvet"``; its replies are junk, so the records are checked for the rule each reply went
through, not for a score. A judge nobody serves fails those samples alone, with their answers kept.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import json
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_omnilmm.config import ConfigError, build_config
from pytest_omnilmm.datasets import load_dataset
from pytest_omnilmm.metrics import get_metric
from pytest_omnilmm.metrics.judge import JudgeError, JudgeMissing, judge_model_of
from pytest_omnilmm.metrics.judge_prompts import FAIL_MSG
from pytest_omnilmm.metrics.mathvista import mathvista_judge_prompt, mathvista_judged
from pytest_omnilmm.metrics.mmvet import mmvet_judge_prompt, mmvet_judged
from pytest_omnilmm.records import Record, read_records
from pytest_omnilmm.sample import Sample

from .test_config import lookup_from
from .test_openai_backend import DEMO, REPO, Server, free_port

MATHVISTA_HEADER = [  # MathVista_MINI.tsv as VLMEvalKit distributes it (scripts/make_catalogue_samples.py)
    "index", "image", "question", "answer", "question_type", "answer_type", "choices", "answer_option",
    "unit", "precision", "task", "skills",
]  # fmt: skip
MMVET_HEADER = ["index", "image", "question", "answer", "category"]


def _png() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _rows(tmp_path: Path, name: str, header: list[str], rows: list[dict[str, str]]) -> dict[str, Sample]:
    img = _png()
    lines = ["\t".join(header)]
    lines += ["\t".join(img if col == "image" else row.get(col, "") for col in header) for row in rows]
    path = tmp_path / f"{name}.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {s.id: s for s in load_dataset(path, name=name, format="vlmeval_tsv")}


def _mathvista(tmp_path: Path) -> dict[str, Sample]:
    def row(index: str, answer: str, qtype: str, atype: str, **kw: str) -> dict[str, str]:
        base = {"index": index, "question": f"Question {index}?", "answer": answer, "question_type": qtype}
        return {**base, "answer_type": atype, "choices": "nan", "answer_option": "nan", **kw}

    choices = {"choices": "['red', 'blue', 'green']", "answer_option": "B"}
    return _rows(
        tmp_path,
        "MathVista_MINI",
        MATHVISTA_HEADER,
        [
            row("mc", "blue", "multi_choice", "text", **choices),
            row("int", "14", "free_form", "integer"),
            row("zero", "0", "free_form", "integer"),
            row("float", "1.5", "free_form", "float", precision="1.0"),
            row("third", "0.33", "free_form", "float", precision="2.0"),
            row("text", "circle", "free_form", "text"),
            row("none", "None", "free_form", "text"),
        ],
    )


@dataclass
class ScriptedJudge:
    """The ``Judge`` protocol answering from a script, recording every request."""

    replies: Sequence[str]
    model: str = "scripted-judge"
    asked: list[tuple[str, float, int]] = field(default_factory=list)

    def complete(self, prompt: str, *, temperature: float, max_tokens: int) -> str:
        self.asked.append((prompt, temperature, max_tokens))
        return self.replies[min(len(self.asked), len(self.replies)) - 1]


# ---------------------------------------------------------------------------------------- prompts
def test_mathvista_prompt_is_vlmevalkits_character_for_character() -> None:
    bundled = {s.id: s for s in load_dataset(REPO / "evals/data/vlmeval/MathVista_MINI.tsv", name="mv")}
    question = bundled["1"].metadata["question"]
    prompt = mathvista_judge_prompt(question, "There are 3 shapes.")
    # Length and sha256 of what VLMEvalKit's build_mathvista_gpt4_prompt returns for this row.
    assert len(prompt) == 1788
    assert hashlib.sha256(prompt.encode()).hexdigest() == (
        "0e978906e16ee5d136c1752dd1054be97f33c61850e0225e3ef1fd2d30c97682"
    )
    assert prompt.startswith(
        "\nPlease read the following example.\n"
        "Then extract the answer from the model response and type it at the end of the prompt.\n\n"
    )
    assert prompt.count("Extracted answer:") == 6 and "Extracted answer: 14\n\n\nHint:" in prompt
    # The row's question, then the answer between upstream's labels: no line break before the last one.
    assert prompt.endswith(
        "\nHow many shapes are there?\nModel respone: There are 3 shapes.Extracted answer:"
    )


def test_mmvet_prompt_is_vlmevalkits_character_for_character() -> None:
    bundled = {s.id: s for s in load_dataset(REPO / "evals/data/vlmeval/MMVet.tsv", name="mmvet")}
    row = bundled["0"]
    prompt = mmvet_judge_prompt(row.metadata["question"], row.references[0], "It is green.")
    assert len(prompt) == 2346
    assert hashlib.sha256(prompt.encode()).hexdigest() == (
        "4f7b74fab579949aa8aeb9b37065264e882bfa95bdc98b8d22d1f4df5fdc1bfa"
    )
    assert prompt.endswith("| 1.0\n\nWhat colour is the triangle? | green | It is green. | ")
    # <AND> / <OR> get a space on each side, whatever spaces they already had.
    assert mmvet_judge_prompt("What is x?", "-1<AND>-5", "x = -1").endswith(
        "\nWhat is x? | -1 <AND> -5 | x = -1 | "
    )
    assert mmvet_judge_prompt("Which?", "a <OR> b", "b").endswith("\nWhich? | a  <OR>  b | b | ")


# ---------------------------------------------------------------------------------------- MathVista
def test_mathvista_prefetch_first_and_the_judge_only_where_it_reads_nothing(tmp_path: Path) -> None:
    rows = _mathvista(tmp_path)

    def graded(row: str, prediction: str, *replies: str) -> tuple[float, str, int, object]:
        judge = ScriptedJudge(replies or ("unused",))
        out = mathvista_judged(prediction, rows[row], "vlmevalkit", judge)
        return out.value, out.log, len(judge.asked), out.read

    # multi_choice: can_infer reads a letter, right or wrong, and the judge is not asked
    assert graded("mc", "B") == (1.0, "Prefetch succeed", 0, "B")
    assert graded("mc", "blue") == (1.0, "Prefetch succeed", 0, "B")
    assert graded("mc", "A") == (0.0, "Prefetch succeed", 0, "A")
    # a refusal reads as "Z": prefetch succeeds with it (truthy) and it matches no option
    assert graded("mc", "Cannot determine the answer") == (0.0, "Prefetch succeed", 0, "Z")
    # nothing readable: the judge extracts, and can_infer reads its reply
    assert graded("mc", "red or blue", "B") == (1.0, "Succeed", 1, "B")
    assert graded("mc", "red or blue", "(B) blue") == (1.0, "Succeed", 1, "B")
    assert graded("mc", "red or blue", "I cannot tell") == (0.0, "Succeed", 1, None)  # unparsable reply
    # integer: the whole prediction must be an int equal to the answer
    assert graded("int", " 14\n") == (1.0, "Prefetch succeed", 0, 14)
    assert graded("int", "The answer is 14", "14") == (1.0, "Succeed", 1, 14)
    assert graded("int", "The answer is 14", "14.0") == (0.0, "Succeed", 1, None)  # int("14.0") fails
    assert graded("int", "13", "13") == (0.0, "Succeed", 1, 13)
    # an answer of 0 read right is falsy, so upstream asks the judge anyway
    assert graded("zero", "0", "0") == (1.0, "Succeed", 1, 0)
    # float: exact float equality; the precision column is not used
    assert graded("float", "1.50") == (1.0, "Prefetch succeed", 0, 1.5)
    assert graded("float", "about 1.5", "1.50") == (1.0, "Succeed", 1, 1.5)
    assert graded("float", "about 1.5", "1.49") == (0.0, "Succeed", 1, 1.49)
    assert graded("third", "one third", "0.333") == (0.0, "Succeed", 1, 0.333)
    assert graded("third", "one third", "0.33") == (1.0, "Succeed", 1, 0.33)
    # any other answer type compares str(None) with the answer: the judge is asked, and it never counts...
    assert graded("text", "circle", "circle") == (0.0, "Succeed", 1, "None")
    # ... unless the answer is literally "None"
    assert graded("none", "whatever") == (1.0, "Prefetch succeed", 0, "None")


def test_mathvista_judge_tries_and_all_tries_failing(tmp_path: Path) -> None:
    rows = _mathvista(tmp_path)
    judge = ScriptedJudge(["", f"{FAIL_MSG} ", "14"])
    out = mathvista_judged("fourteen", rows["int"], "vlmevalkit", judge)
    # an empty reply and the API-failure text are failed tries; the log names the *prediction* (sic)
    assert out.log == (
        "Try 0: output is fourteen, failed to parse.\nTry 1: output is fourteen, failed to parse.\nSucceed"
    )
    assert (out.value, out.replies) == (1.0, ("", f"{FAIL_MSG} ", "14"))
    assert [(t, m) for _p, t, m in judge.asked] == [(0.0, 128), (0.5, 128), (1.0, 128)]
    assert judge.asked[0][0] == mathvista_judge_prompt("Question int?", "fourteen")

    judge = ScriptedJudge([""])
    out = mathvista_judged("fourteen", rows["int"], "vlmevalkit", judge)
    assert [t for _p, t, _m in judge.asked] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert out.log.endswith("Try 4: output is fourteen, failed to parse.\nAll 5 retries failed.\n")
    assert (out.value, out.read) == (0.0, None)  # the extracted answer is "": int("") fails


# ---------------------------------------------------------------------------------------- MM-Vet
def _mmvet(tmp_path: Path) -> Sample:
    rows = [{"index": "7", "question": "What is x?", "answer": "-1<AND>-5", "category": "math"}]
    return _rows(tmp_path, "MMVet", MMVET_HEADER, rows)["7"]


def test_mmvet_score_parsing_and_rising_temperature(tmp_path: Path) -> None:
    row = _mmvet(tmp_path)

    def graded(*replies: str) -> tuple[float, str, list[tuple[float, int]]]:
        judge = ScriptedJudge(replies)
        out = mmvet_judged("x = -1", row, "vlmevalkit", judge)
        assert all(p == mmvet_judge_prompt("What is x?", "-1<AND>-5", "x = -1") for p, _t, _m in judge.asked)
        return out.value, out.log, [(t, m) for _p, t, m in judge.asked]

    assert graded("0.5") == (0.5, "Succeed", [(0.0, 3)])
    assert graded("1e-1")[0] == 0.1  # anything Python's float() reads
    assert graded("1")[0] == 1.0
    value, log, asked = graded("0.5 (half)", "1.2", "", "-0.1", "1.0")
    assert (value, [t for t, _m in asked]) == (1.0, [0.0, 0.5, 1.0, 1.5, 2.0])
    assert log == (
        "Try 0: output is 0.5 (half), failed to parse.\n"
        "Try 1: output is 1.2, invalid score: 1.2.\n"
        f"Try 2: output is {FAIL_MSG}, failed to parse.\n"  # an empty reply: the wrapper's failure text
        "Try 3: output is -0.1, invalid score: -0.1.\n"
        "Succeed"
    )
    # every try failing scores 0.0
    value, log, asked = graded("correct")
    assert (value, len(asked)) == (0.0, 5)
    assert log.endswith("Try 4: output is correct, failed to parse.\nAll 5 retries failed.\n")
    # the one deviation: NaN passes upstream's range check; here it is an invalid score
    assert graded("nan", "0.3")[:2] == (0.3, "Try 0: output is nan, invalid score: nan.\nSucceed")


# ------------------------------------------------------------------------------ metrics, config, client
def test_metrics_need_a_judge_and_name_it_in_the_note(tmp_path: Path) -> None:
    rows = _mathvista(tmp_path)
    with pytest.raises(
        JudgeMissing, match=r"--judge-api-base URL and --judge-model NAME.*'mathvista_prefetch'"
    ):
        get_metric("mathvista").score("B", rows["mc"])
    with pytest.raises(JudgeMissing, match="'exact_match'"):
        get_metric("mmvet_gpt").score("x", _mmvet(tmp_path))
    score = get_metric("mathvista").score("13", rows["int"], judge=ScriptedJudge(["14"], model="gpt-4o-mini"))
    assert score.value == 1.0 and judge_model_of(score.note or "") == "gpt-4o-mini"
    assert "replied '14'" in (score.note or "")
    # a metric that is not judge-graded ignores a judge
    assert get_metric("mathvista_prefetch").score("13", rows["int"], judge=ScriptedJudge(["14"])).value == 0.0


def test_judge_options_both_or_neither_a_url_and_a_key_from_the_environment(tmp_path: Path) -> None:
    def config(options: dict[str, object], env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return build_config(lookup_from(options, env or {}, {}), rootdir=tmp_path, env=env or {})

    assert config({}).judge_model == ""
    cfg = config({"judge_api_base": "http://127.0.0.1:9/v1"}, {"OMNILMM_JUDGE_MODEL": "gpt-4o-mini"})
    assert (cfg.judge_api_base, cfg.judge_model, cfg.sources["judge_model"]) == (
        "http://127.0.0.1:9/v1",
        "gpt-4o-mini",
        "env",
    )
    with pytest.raises(ConfigError, match=r"^--judge-api-base needs --judge-model NAME too"):
        config({"judge_api_base": "http://127.0.0.1:9/v1"})
    with pytest.raises(ConfigError, match=r"^OMNILMM_JUDGE_MODEL .*needs --judge-api-base URL too"):
        config({}, {"OMNILMM_JUDGE_MODEL": "m"})
    with pytest.raises(ConfigError, match="not an http"):
        config({"judge_api_base": "127.0.0.1:9/v1", "judge_model": "m"})
    judge = {
        "judge_api_base": "http://127.0.0.1:9/v1",
        "judge_model": "m",
        "judge_api_key_env": "MY_JUDGE_KEY",
    }
    with pytest.raises(ConfigError, match="MY_JUDGE_KEY: that environment variable is not set"):
        config(judge)
    assert config(judge, {"MY_JUDGE_KEY": "sk-secret"}).judge_api_key_env == "MY_JUDGE_KEY"


def test_an_unreachable_judge_is_one_line_and_fails_fast_after_the_first_try() -> None:
    from pytest_omnilmm.backends.judge import OpenAIJudge

    judge = OpenAIJudge(f"http://127.0.0.1:{free_port()}/v1", "m", timeout=5)
    for _ in range(2):
        with pytest.raises(
            JudgeError, match=r"^judge unreachable at http://127\.0\.0\.1:\d+/v1 \(.*--judge-api-base"
        ):
            judge.complete("hello", temperature=0.0, max_tokens=3)


# ---------------------------------------------------------------------------------------- end to end
needs_serve = pytest.mark.skipif(
    shutil.which("transformers") is None, reason="transformers CLI not installed"
)

_REPLIED = re.compile(r"""replied ('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")


def _judge_model(root: Path) -> Path:
    """The demo model with a 4096-token context: VLMEvalKit's judge prompts are 1,100-1,500 tokens long
    for its tokenizer, and ``transformers serve`` refuses a prompt longer than the model's context. The
    weights are the demo's (rotary positions: nothing in them depends on the context length)."""
    root.mkdir()
    for item in DEMO.iterdir():
        if item.name != "config.json":
            (root / item.name).symlink_to(item)
    config = json.loads((DEMO / "config.json").read_text())
    config["text_config"]["max_position_embeddings"] = 4096
    (root / "config.json").write_text(json.dumps(config, indent=2))
    return root


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(_judge_model(tmp_path_factory.mktemp("judge") / "model"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def evals_project(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(
        REPO / "evals", pytester.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    return pytester


def _records(results: Path) -> list[Record]:
    (run_dir,) = sorted(results.iterdir())[-1:]
    return list(read_records(run_dir / "records.jsonl"))


@needs_serve
def test_a_real_judge_server_grades_the_judged_benchmarks(
    evals_project: pytest.Pytester, judge_server: Server
) -> None:
    result = evals_project.runpytest(
        "-k", "mathvista or mmvet", "--limit", "2", "--limit-seed", "3", "-p", "no:benchmark", "--no-resume",
        "--results-dir", "res",
        "--judge-api-base", judge_server.base, "--judge-model", str(judge_server.model),
    )  # fmt: skip
    result.assert_outcomes(passed=4, skipped=2)  # the real MathVista_MINI / MMVet files are absent
    result.stdout.fnmatch_lines([f"*note: judge-scored by {judge_server.model}*"] * 2)
    records = {(r.dataset, r.sample_id): r for r in _records(evals_project.path / "res")}
    assert sorted(records) == [("demo_mathvista_mini", "11"), ("demo_mathvista_mini", "4"),
                               ("demo_mmvet", "5"), ("demo_mmvet", "6")]  # fmt: skip
    for (dataset, _id), record in records.items():
        assert record.metric == {"demo_mathvista_mini": "mathvista", "demo_mmvet": "mmvet_gpt"}[dataset]
        (note,) = record.extra["notes"]
        assert judge_model_of(note) == str(judge_server.model)
        replies = [ast.literal_eval(m) for m in _REPLIED.findall(note)]
        log = note.split("VLMEvalKit log: ", 1)[1]
        if dataset == "demo_mmvet":  # each reply read with float(): a junk reply fails, 5 times at most
            for i, reply in enumerate(replies):
                output = reply or FAIL_MSG
                try:
                    value: float | None = float(output)
                except ValueError:
                    value = None
                if value is None:
                    assert f"Try {i}: output is {output}, failed to parse." in log
                elif not 0 <= value <= 1:
                    assert f"Try {i}: output is {output}, invalid score" in log
                else:
                    assert log.endswith("Succeed") and record.scores["mmvet_gpt"] == value
            if log.endswith("All 5 retries failed."):
                assert len(replies) == 5 and record.scores["mmvet_gpt"] == 0.0
        elif not replies:  # prefetch read the answer: the judge was not asked
            assert log == "Prefetch succeed" and "not asked" in note
        else:
            assert log.endswith("Succeed") == bool(replies[-1])
            if _id == "11":  # a text answer compares str(None) with the answer: 0 whatever was extracted
                assert record.scores["mathvista"] == 0.0 and "read 'None'" in note
            else:
                try:
                    read: int | None = int(replies[-1])
                except ValueError:
                    read = None
                assert f"read {read!r}" in note
                assert record.scores["mathvista"] == (1.0 if read == int(record.references[0]) else 0.0)
    # row 11 has a text answer, which never prefetches: the judge was asked at least there
    assert "replied" in records[("demo_mathvista_mini", "11")].extra["notes"][0]


def test_an_unreachable_judge_fails_those_samples_alone_and_keeps_the_answers(
    evals_project: pytest.Pytester,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    # In a subprocess: pytester restores sys.modules after an in-process run, and torch's C extension
    # (loaded by another in-process run of this module) cannot be imported twice in one process.
    result = evals_project.runpytest_subprocess(
        "-k", "demo_mmvet or demo_mmstar", "--limit", "1", "-p", "no:benchmark", "--no-resume",
        "--results-dir", "res", "--judge-api-base", dead, "--judge-model", "gpt-4o-mini",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)  # MMStar is not judge-graded: it runs as always
    result.stdout.fnmatch_lines([f"*demo_mmvet: judge unreachable at {dead} (*"])
    records = _records(evals_project.path / "res")
    mmvet = [r for r in records if r.dataset == "demo_mmvet"]
    assert len(mmvet) == 1 and all(r.prediction and "judge unreachable" in (r.error or "") for r in mmvet)
    assert all(r.error is None for r in records if r.dataset == "demo_mmstar")
