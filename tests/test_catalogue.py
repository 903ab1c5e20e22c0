"""The benchmark catalogue: POPE, HallusionBench and MMMU scored by hand from VLMEvalKit's rules on rows laid
out as the released TSVs are; ``list``; ``--lmudata`` / ``LMUData`` and ``--data VLMEvalKitName=PATH``."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_omnilmm.catalogue import CATALOGUE, find, lmudata_path
from pytest_omnilmm.catalogue.prepare import OTHER_ANSWERS, hallusion_prepare, mmmu_prepare, mmmu_prompt
from pytest_omnilmm.datasets import load_dataset
from pytest_omnilmm.metrics import ScoredRow, dataset_aggregates, get_metric
from pytest_omnilmm.metrics.pope import prf
from pytest_omnilmm.sample import ImageRef, Text

REPO = Path(__file__).resolve().parents[1]


def _b64(colour: str = "red") -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _tsv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def _scored(metric: str, samples, predictions: dict[str, str]) -> list[ScoredRow]:
    m = get_metric(metric)
    return [
        ScoredRow(
            sample_id=s.id,
            value=m.score(predictions[s.id], s).value,
            group=s.group,
            category=s.category,
            prediction=predictions[s.id],
            reference=s.references[0] if s.references else None,
        )
        for s in samples
    ]


# ------------------------------------------------------------------------------------------------- POPE
def test_pope_accuracy_precision_recall_f1_overall_and_per_split(tmp_path: Path) -> None:
    img = _b64()
    rows = [  # index, image, question, answer, category  (POPE.tsv's columns)
        ["1", img, "Is there a dog?", "Yes", "adversarial"],  # tp
        ["2", "1", "Is there a cat?", "Yes", "adversarial"],  # fn (back-reference image)
        ["3", img, "Is there a car?", "No", "adversarial"],  # fp
        ["4", img, "Is there a cup?", "No", "adversarial"],  # unreadable: counts as No, scores 0
        ["5", img, "Is there a bus?", "Yes", "popular"],  # "yes and no": unreadable -> fn
        ["6", img, "Is there a bed?", "No", "popular"],  # tn
        [
            "7",
            img,
            "Is there a pen?",
            "Yes",
            "popular,random",
        ],  # tp, counted in both splits and twice overall
        ["8", img, "Is there a hat?", "Yes", "none_said"],  # fn in a split that predicts no Yes at all
    ]
    path = _tsv(tmp_path / "POPE.tsv", ["index", "image", "question", "answer", "category"], rows)
    samples = load_dataset(path, name="pope")
    preds = {
        "1": "Yes, there is.",
        "2": "No, there is not.",
        "3": "yes",
        "4": "I cannot tell.",
        "5": "yes and no",
        "6": "No",
        "7": "Yes.",
        "8": "no",
    }
    agg = dataset_aggregates("pope", _scored("pope", samples, preds), n_boot=50)
    # Exploded rows: tp = 1, 7, 7; fp = 3; fn = 2, 5, 8; correct = 1, 6, 7, 7 of 9 rows.
    assert agg["precision"].mean == pytest.approx(3 / 4)
    assert agg["recall"].mean == pytest.approx(3 / 6)
    assert agg["f1"].mean == pytest.approx(2 * 0.75 * 0.5 / 1.25)
    assert agg["acc"].mean == pytest.approx(4 / 9)
    assert agg["acc"].n == 9
    assert (agg["precision/adversarial"].mean, agg["recall/adversarial"].mean) == (0.5, 0.5)
    assert agg["acc/adversarial"].mean == pytest.approx(1 / 4)
    assert agg["f1/popular"].mean == pytest.approx(2 / 3)
    assert agg["acc/popular"].mean == pytest.approx(2 / 3)
    assert agg["f1/random"].mean == 1.0
    # No Yes predicted and no Yes right: POPE_rating's 0 for a zero denominator.
    assert (agg["precision/none_said"].mean, agg["recall/none_said"].mean, agg["f1/none_said"].mean) == (
        0,
        0,
        0,
    )
    assert "popular,random" not in " ".join(agg)


def test_pope_zero_denominators() -> None:
    assert prf(0, 0, 0) == (0.0, 0.0, 0.0)
    assert prf(0, 2, 0) == (0.0, 0.0, 0.0)
    assert prf(1, 1, 3) == (0.5, 0.25, pytest.approx(1 / 3))


# -------------------------------------------------------------------------------------- HallusionBench
def test_hallusion_aacc_facc_qacc_group_by_l2_category_set_figure_question(tmp_path: Path) -> None:
    img = _b64()
    header = ["index", "image", "question", "answer", "category", "l2-category"]
    spec = [  # index, answer, prediction, category, l2
        ("VS_chart_0_0_0_0", "Yes", "Yes", "VS", "chart"),
        ("VS_chart_0_0_0_1", "No", "Yes", "VS", "chart"),
        ("VS_chart_0_0_1_0", "Yes", "yes", "VS", "chart"),
        ("VS_chart_0_0_1_1", "No", "no.", "VS", "chart"),
        ("VD_illusion_0_0_0_0", "Yes", "Yes", "VD", "illusion"),  # same set id 0, other l2: other groups
        ("VD_illusion_0_0_0_1", "No", "No", "VD", "illusion"),
        ("VD_illusion_0_1_0_0", "No", "maybe", "VD", "illusion"),  # unreadable: wrong
        ("VS_chart_0_9", "Yes", "Yes", "VS", "chart"),  # not the index form: not scorable, alone
    ]
    rows = [[i, img, "Is it so?", a, c, l2] for i, a, _, c, l2 in spec]
    samples = [hallusion_prepare(s) for s in load_dataset(_tsv(tmp_path / "H.tsv", header, rows), name="h")]
    scored = _scored("hallusion", samples, {i: p for i, _, p, _, _ in spec})
    assert scored[-1].value is None
    agg = dataset_aggregates("hallusion", scored, n_boot=50)
    assert agg["aAcc"].mean == pytest.approx(5 / 7)
    assert agg["aAcc"].n_missing == 1
    # figures: chart/0/0 [1,0] chart/0/1 [1,1] illusion/0/0 [1,1] illusion/1/0 [0]
    assert agg["fAcc"].mean == pytest.approx(2 / 4)
    # questions: chart/0/q0 [1,1] chart/0/q1 [0,1] illusion/0/q0 [1] illusion/0/q1 [1] illusion/1/q0 [0]
    assert agg["qAcc"].mean == pytest.approx(3 / 5)
    assert (agg["aAcc/chart"].mean, agg["fAcc/chart"].mean, agg["qAcc/chart"].mean) == (0.75, 0.5, 0.5)
    assert agg["aAcc/VD"].mean == pytest.approx(2 / 3)
    assert agg["qAcc/illusion"].mean == pytest.approx(2 / 3)


# -------------------------------------------------------------------------------------------------- MMMU
def test_mmmu_open_questions_become_two_options_and_images_go_to_their_tags(tmp_path: Path) -> None:
    red, blue = _b64("red"), _b64("blue")
    header = ["index", "question", "A", "B", "C", "D", "answer", "category", "image", "image_path", "split"]
    rows = [
        ["1", "<image 1> What is 6 x 7?", "", "", "", "", "42", "Math", red, "1.png", "validation"],
        [
            "2",
            "Compare <image 2> with <image 1>.",
            "red",
            "blue",
            "",
            "",
            "B",
            "Art",
            str([red, blue]),
            str(["2_1.png", "2_2.png"]),
            "validation",
        ],
    ]
    samples = [mmmu_prepare(s) for s in load_dataset(_tsv(tmp_path / "MMMU.tsv", header, rows), name="m")]
    open_q, multi = samples
    assert open_q.choices == (("A", "42"), ("B", OTHER_ANSWERS))
    assert open_q.references == ("A",)
    assert multi.choices == (("A", "red"), ("B", "blue"))  # missing options C, D are not offered
    assert multi.references == ("B",)
    mcq = get_metric("mcq")
    assert mcq.score("A", open_q).value == 1.0
    assert mcq.score("42", open_q).value == 1.0  # the option's text is matched
    assert mcq.score("B", open_q).value == 0.0
    assert mcq.score("C", multi).value == 0.0  # a letter no option has
    parts = mmmu_prompt(multi)
    kinds = [type(p).__name__ for p in parts]
    assert kinds == ["Text", "ImageRef", "Text", "ImageRef", "Text"]
    assert parts[0] == Text("Compare ")
    assert isinstance(parts[1], ImageRef) and parts[1].b64 == blue and parts[3].b64 == red


def test_mmmu_prompt_keeps_untagged_images_first_and_unknown_tags_as_text(tmp_path: Path) -> None:
    from pytest_omnilmm.catalogue.prepare import interleave_image_tags

    a, b = ImageRef(b64="AAAA"), ImageRef(b64="BBBB")
    assert interleave_image_tags("see <image 2> and <image 5>", (a, b)) == (
        a,
        Text("see "),
        b,
        Text(" and <image 5>"),
    )


# ------------------------------------------------------------------------------------- catalogue, list
def test_catalogue_names_every_benchmark_and_files_exist() -> None:
    wanted = {
        "MMStar",
        "AI2D_TEST",
        "ScienceQA_TEST",
        "RealWorldQA",
        "SEEDBench_IMG",
        "MMBench_DEV_EN",
        "MMBench_DEV_EN_V11",
        "MMBench_DEV_CN_V11",
        "MMMU_DEV_VAL",
        "POPE",
        "HallusionBench",
        "MME",
        "InfoVQA_VAL",
        "ChartQA_TEST",
        "OCRBench",
        "TextVQA_VAL",
        "DocVQA_VAL",
        "MathVista_MINI",
        "MMVet",
    }
    assert wanted <= {b.vlmeval for b in CATALOGUE}
    for b in CATALOGUE:
        assert b.sample is not None and (REPO / "evals" / b.sample).is_file(), b.name
        get_metric(b.metric)
    assert find("mmstar") is find("MMStar") is find("MMSTAR")
    total = sum(p.stat().st_size for p in (REPO / "evals" / "data" / "vlmeval").iterdir())
    assert total < 1_000_000


def test_list_command_prints_table_and_json() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "pytest_omnilmm", "list", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    entries = json.loads(out)
    assert len(entries) >= 16
    pope = next(e for e in entries if e["vlmeval"] == "POPE")
    assert (pope["metric"], pope["file"], pope["sample_present"]) == ("pope", "POPE.tsv", True)
    table = subprocess.run(
        [sys.executable, "-m", "pytest_omnilmm", "list"], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert "HallusionBench.tsv" in table and "NOT the leaderboard number" in table


def test_lmudata_path(tmp_path: Path) -> None:
    assert lmudata_path("mmstar", tmp_path) == tmp_path / "MMStar.tsv"
    assert lmudata_path("demo_mcq", tmp_path) is None
    assert lmudata_path("mmstar", None) is None


EVAL = """
import pytest
from pytest_omnilmm.catalogue.prepare import hallusion_prepare

@pytest.mark.dataset("pope", metric="pope", prompt="yes_no")
@pytest.mark.dataset("mmstar", metric="mcq", prompt="mcq")
@pytest.mark.dataset("hallusionbench", metric="hallusion", prompt="yes_no", prepare=hallusion_prepare)
def test_b(sample, generate, score):
    score(generate(sample))
"""


def test_lmudata_env_and_option_find_vlmeval_files(
    pytester: pytest.Pytester, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lmu = pytester.mkdir("LMUData")
    for name in ("POPE", "HallusionBench"):
        (lmu / f"{name}.tsv").write_bytes((REPO / f"evals/data/vlmeval/{name}.tsv").read_bytes())
    pytester.makepyfile(test_lmu=EVAL)
    base = ["--model_path", str(tiny_model), "--max-new-tokens", "2", "-p", "no:cacheprovider", "-rs"]
    result = pytester.runpytest_subprocess(*base, "--lmudata", str(lmu))
    result.assert_outcomes(passed=24, skipped=1)
    result.stdout.fnmatch_lines(["*MMStar.tsv*"])  # the skip names the file it looked for
    summary = json.loads(sorted((pytester.path / ".omnilmm-results").glob("*/summary.json"))[-1].read_text())
    rows = {r["dataset"]: r for r in summary["results"]}
    assert rows["pope"]["primary"] == "f1" and "recall/adversarial" in rows["pope"]["aggregates"]
    # the marker's prepare= ran: groups are (l2-category, set), so per-l2 figures exist
    assert {"fAcc/illusion", "qAcc/chart", "aAcc/VD"} <= set(rows["hallusionbench"]["aggregates"])
    monkeypatch.setenv("LMUData", str(lmu))
    pytester.runpytest_subprocess(*base).assert_outcomes(passed=24, skipped=1)
    monkeypatch.delenv("LMUData")
    mmstar = REPO / "evals/data/vlmeval/MMStar.tsv"
    pytester.runpytest_subprocess(*base, "--data", f"MMStar={mmstar}").assert_outcomes(passed=12, skipped=2)
    bad = pytester.runpytest_subprocess(*base, "--lmudata", str(lmu / "nope"))
    assert bad.ret != 0
    bad.stderr.fnmatch_lines(["*--lmudata*not a directory*"])


# --------------------------------------------------------------------------------------------- MathVista
def test_mathvista_prefetch_rules_without_a_judge(tmp_path: Path) -> None:
    img = _b64()
    header = [
        "index",
        "image",
        "question",
        "answer",
        "question_type",
        "answer_type",
        "choices",
        "answer_option",
    ]
    rows = [
        ["1", img, "Which colour?", "blue", "multi_choice", "text", "['red', 'blue', 'green']", "B"],
        ["2", img, "How many?", "14", "free_form", "integer", "nan", "nan"],
        ["3", img, "Ratio?", "1.5", "free_form", "float", "nan", "nan"],
        ["4", img, "Which shape?", "circle", "free_form", "text", "nan", "nan"],
        ["5", img, "Which colour?", "red", "multi_choice", "text", "nan", "A"],
    ]
    samples = {s.id: s for s in load_dataset(_tsv(tmp_path / "MathVista_MINI.tsv", header, rows), name="mv")}
    m = get_metric("mathvista_prefetch")

    def value(i: str, prediction: str) -> float | None:
        return m.score(prediction, samples[i]).value

    assert value("1", "B") == 1.0
    assert value("1", "blue") == 1.0  # the option text, read by can_infer
    assert value("1", "A") == 0.0
    assert value("1", "red or blue") == 0.0  # two options named: can_infer cannot tell
    assert value("2", "14") == 1.0
    assert value("2", " 14\n") == 1.0  # int() allows surrounding whitespace
    assert value("2", "14.0") == 0.0  # not a bare integer: the judge would be asked
    assert value("2", "The answer is 14") == 0.0
    assert value("3", "1.50") == 1.0
    assert value("4", "circle") == 0.0  # text answers never prefetch upstream
    assert value("5", "A") == 0.0  # no choices list to read
    assert "judge" in (m.score("circle", samples["4"]).note or "")
