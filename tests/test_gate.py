"""The regression gate: statistics, verdicts, fail-closed cases, rendering and plots."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_omnilmm.controller import plots
from pytest_omnilmm.gate import (
    FAIL,
    INCONCLUSIVE,
    NOT_GATED,
    PASS,
    GateSettings,
    append_step_summary,
    binom_cdf,
    clopper_pearson,
    compare,
    decide_all,
    holm,
    mcnemar_one_sided_p,
    minimal_detectable_drop,
    natural_key,
    paired_stats,
    parse_margin_map,
    parse_percent,
    render_gate_table,
    render_markdown,
)
from pytest_omnilmm.gate.baseline import Baseline, build_baseline
from pytest_omnilmm.records import Record

# ------------------------------------------------------------------------------------------ helpers


def rec(
    sid: str,
    score: float | None,
    *,
    dataset: str = "textvqa",
    ckpt: str = "ckpt0",
    metric: str = "exact_match",
    flavor: str = "vlmevalkit",
    prediction: str | None = None,
    sample_hash: str | None = None,
    **extra: Any,
) -> Record:
    error = extra.get("error")
    return Record(
        sample_id=sid,
        dataset=dataset,
        checkpoint=ckpt,
        checkpoint_path=f"{ckpt}.safetensors",
        fingerprint=f"fp-{ckpt}",
        key=f"key-{sid}",
        sample_hash=sample_hash or f"hash-{dataset}-{sid}",
        settings_hash="settings",
        prediction=prediction if prediction is not None else f"answer {sid} ({score})",
        references=["ref"],
        scores={} if error else {metric: score},
        metric=metric,
        metric_flavor=flavor,
        **extra,
    )


def run_info(labels: Iterable[str] = ("ckpt0",), **override: Any) -> dict[str, Any]:
    labels = list(labels)
    info: dict[str, Any] = {
        "generation": {
            "generate_method": "chat",
            "max_new_tokens": 16,
            "num_beams": 1,
            "dtype": "float32",
            "batch_size": 8,
        },
        "metric_flavor": "vlmevalkit",
        "model_path": "demo/model",
        "checkpoints": {lab: {"path": f"{lab}.safetensors", "fingerprint": f"fp-{lab}"} for lab in labels},
        "versions": {
            "torch": "2.14.1",
            "transformers": "5.24.0",
            "pytest_omnilmm": "0.1.0",
            "python": "3.12",
        },
        "git": {"commit": "abc123", "dirty": False},
        "hardware": {"device": "cpu", "device_name": "x86_64"},
        "perf": {lab: {"p50_latency_s": 0.10, "samples_per_s": 80.0} for lab in labels},
    }
    info.update(override)
    return info


def scores_run(scores: Iterable[float], **kw: Any) -> list[Record]:
    return [rec(f"s{i:04d}", s, **kw) for i, s in enumerate(scores)]


def baseline_of(records: list[Record], info: dict[str, Any] | None = None, **kw: Any) -> Baseline:
    return Baseline.from_dict(build_baseline(records, info or run_info(), n_boot=200, **kw), "b.json")


FAST = GateSettings()


def decide(stats: Any, *, margin: float, mode: str) -> Any:
    """One comparison alone (Holm over one test is the test itself)."""
    return decide_all([stats], [margin], mode=mode, alpha=0.05)[0]


def row_for(report: Any, check: str, **match: str) -> Any:
    found = [r for r in report.rows if r.check == check and all(getattr(r, k) == v for k, v in match.items())]
    assert len(found) == 1, (check, match, report.rows)
    return found[0]


# ------------------------------------------------------------------------------------------ parsing


def test_parse_margin_map_accepts_commas_and_ini_lines() -> None:
    assert parse_margin_map("textvqa=0.02, vqa_accuracy = 0.03") == {"textvqa": 0.02, "vqa_accuracy": 0.03}
    assert parse_margin_map(["textvqa=0.6", "docvqa=0.5\nchartqa=0.4"]) == {
        "textvqa": 0.6,
        "docvqa": 0.5,
        "chartqa": 0.4,
    }
    assert parse_margin_map("") == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("textvqa", "not NAME=NUMBER"),
        ("=0.5", "not NAME=NUMBER"),
        ("textvqa=abc", "is not a number"),
        ("a=0.1,a=0.2", "given twice"),
        ("a=nan", "finite"),
    ],
)
def test_parse_margin_map_rejects_with_one_line(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as info:
        parse_margin_map(text, option="--min-score")
    assert str(info.value).startswith("--min-score:") and "\n" not in str(info.value)


def test_parse_percent() -> None:
    assert parse_percent("10%") == pytest.approx(0.10)
    assert parse_percent(" 2.5 % ") == pytest.approx(0.025)
    assert parse_percent("0.1") == pytest.approx(0.1)
    assert parse_percent("0") == 0.0
    for bad, fragment in (("10", "ambiguous"), ("-5%", ">= 0"), ("fast", "not a percentage")):
        with pytest.raises(ValueError, match=fragment):
            parse_percent(bad)


def test_settings_validate_and_pick_margins() -> None:
    with pytest.raises(ValueError, match="unknown mode 'loose'"):
        GateSettings(mode="loose")
    with pytest.raises(ValueError, match="--max-drop"):
        GateSettings(max_drop=-0.1)
    with pytest.raises(ValueError, match="--gate-inconclusive"):
        GateSettings(inconclusive="maybe")
    assert GateSettings(mode="strict").mode == "noninferiority"  # the old name stays an alias
    assert GateSettings().inconclusive_fails and not GateSettings(inconclusive="pass").inconclusive_fails
    s = GateSettings(max_drop=0.01, per_metric_max_drop={"textvqa": 0.03, "anls": 0.02})
    assert s.margin_for("textvqa", "anls") == 0.03  # the dataset's own margin wins
    assert s.margin_for("docvqa", "anls") == 0.02
    assert s.margin_for("docvqa", "exact_match") == 0.01
    with pytest.raises(TypeError):
        s.per_metric_max_drop["x"] = 1.0  # type: ignore[index]


# --------------------------------------------------------------------------------------- statistics


def test_binomial_tail_matches_exact_sums() -> None:
    for n in (1, 7, 40, 333):
        for k in range(0, n + 1, max(1, n // 9)):
            for p in (0.05, 0.5, 0.9):
                exact = math.fsum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))
                assert binom_cdf(k, n, p) == pytest.approx(exact, abs=1e-11)


def test_exact_mcnemar_and_clopper_pearson_by_hand() -> None:
    # 2 wins, 10 losses: P(X <= 2 | 12, 1/2) = (1 + 12 + 66) / 4096, one-sided "the candidate is worse"
    assert mcnemar_one_sided_p(2, 10) == pytest.approx(79 / 4096)
    assert mcnemar_one_sided_p(10, 2) == pytest.approx(1 - 13 / 4096)  # 1 - P(X >= 11)
    assert mcnemar_one_sided_p(0, 0) == 1.0
    low, high = clopper_pearson(3, 10)  # textbook values for 3/10
    assert (low, high) == (pytest.approx(0.06674, abs=1e-5), pytest.approx(0.65245, abs=1e-5))
    assert clopper_pearson(0, 10) == (0.0, pytest.approx(1 - 0.025**0.1))


def test_exact_ci_agrees_with_exact_test() -> None:
    """The CI of Δ for 0-1 scores inverts the same binomial test: CI excludes 0 <=> p < 0.05."""
    for gains, losses in [(0, 6), (1, 8), (2, 10), (3, 11), (5, 15), (9, 9), (20, 40)]:
        n = 200
        base = [1.0] * losses + [0.0] * gains + [1.0] * (n - gains - losses)
        cand = [0.0] * losses + [1.0] * gains + [1.0] * (n - gains - losses)
        stats = paired_stats(base, cand)
        assert stats.test == "mcnemar-exact"
        assert stats.delta == pytest.approx((gains - losses) / n)
        assert stats.p_value is not None
        assert (stats.ci_high < 0) == (stats.p_value < 0.025), (gains, losses, stats)


def _latent_accuracy(rng: np.random.Generator, n: int) -> np.ndarray:
    """Per-sample chance of a right answer, as greedy decoding gives it: 94 % of samples are settled
    (always right with probability 0.7 overall, else always wrong), 6 % are near-ties (coin flips)."""
    settled = rng.random(n) < 0.94
    return np.where(settled, (rng.random(n) < 0.7).astype(float), 0.5)


def test_aa_runs_rarely_fail_the_significant_gate() -> None:
    """200 pairs of runs (n=500) drawn from the same per-sample accuracy: about 5 % fail (one-sided
    alpha), even with margin 0; two latent structures, so discordant pairs are both rare and frequent.
    The bound 20 is the 99.9 % quantile of Binomial(200, 0.05): a calibrated test stays below it."""
    rng = np.random.default_rng(20261)
    for latent in (lambda n: _latent_accuracy(rng, n), lambda n: rng.random(n)):
        for margin in (0.0, 0.01):
            fails = 0
            for _ in range(200):
                p = latent(500)
                a = (rng.random(500) < p).astype(float)
                b = (rng.random(500) < p).astype(float)
                stats = paired_stats(a.tolist(), b.tolist())
                fails += decide(stats, margin=margin, mode="significant").verdict == FAIL
            assert fails <= 20, (margin, fails)


def test_aa_runs_with_clustered_continuous_scores() -> None:
    """The cluster-robust t path (VQA-accuracy-like scores, 4 questions per image) is calibrated too."""
    rng = np.random.default_rng(7)
    fails = 0
    groups = [f"img{i // 4}" for i in range(500)]
    for _ in range(200):
        image_ease = np.repeat(rng.random(125), 4)
        p = np.clip(image_ease + rng.normal(0, 0.15, 500), 0, 1)

        base, cand = (np.round(np.clip(p + rng.normal(0, 0.2, (2, 500)), 0, 1) * 3) / 3).tolist()
        stats = paired_stats(base, cand, groups)
        assert stats.test == "sign-flip" and stats.n_clusters == 125
        fails += decide(stats, margin=0.0, mode="significant").verdict == FAIL
    assert fails <= 20  # the 99.9 % quantile of Binomial(200, 0.05)


def test_injected_three_point_drop_is_caught() -> None:
    """Candidate = an independent rerun of the same latent accuracy with 30 of its right answers
    (3 points of 1,000) flipped to wrong. Margin 0: the question is "is it worse at all"; a margin
    eats into the detectable drop (a 3-point drop with margin 0.01 is a 2-point excess)."""
    rng = np.random.default_rng(3)
    caught = 0
    for _ in range(200):
        p = _latent_accuracy(rng, 1000)
        base = (rng.random(1000) < p).astype(float)
        cand = (rng.random(1000) < p).astype(float)
        cand[rng.choice(np.flatnonzero(cand == 1), 30, replace=False)] = 0.0
        stats = paired_stats(base.tolist(), cand.tolist())
        caught += decide(stats, margin=0.0, mode="significant").verdict == FAIL
    assert caught >= 190, caught


def test_noninferiority_fails_what_significant_calls_inconclusive() -> None:
    base = [1.0] * 40
    cand = [1.0] * 37 + [0.0] * 3  # Δ = -0.075 on 40 samples: a drop, but not a sure one (p = 1/8)
    stats = paired_stats(base, cand)
    assert stats.p_value == pytest.approx(0.125)
    assert decide(stats, margin=0.01, mode="noninferiority").verdict == FAIL
    sig = decide(stats, margin=0.01, mode="significant")
    assert sig.verdict == INCONCLUSIVE  # not significant, and 40 samples cannot see a 1-point drop
    assert sig.mdd is not None and sig.mdd > 0.1
    assert sig.n_needed is not None and sig.n_needed > 40
    assert f"about {sig.n_needed} paired samples (have 40)" in sig.reason
    # unconditional exact bound: 0 wins, 3 losses of 40 -> Δ >= -(upper 97.5 % CP of 3/40) ~ -0.204
    assert stats.lower_bound(0.05) == pytest.approx(-0.204, abs=0.002)
    assert decide(stats, margin=0.2, mode="noninferiority").verdict == FAIL
    assert decide(stats, margin=0.25, mode="noninferiority").verdict == PASS
    # a margin the run can resolve passes the significant gate too
    assert decide(stats, margin=0.2, mode="significant").verdict == PASS


def test_identical_runs_pass_with_margin_zero() -> None:
    scores = [0.0, 1.0, 0.5, 1 / 3] * 25
    stats = paired_stats(scores, scores, [f"g{i % 10}" for i in range(100)])
    assert stats.delta == 0 and stats.p_value == 1.0
    assert decide(stats, margin=0.0, mode="significant").verdict == PASS
    # non-inferiority with margin 0 asks for proof of no drop at all: a bound of exactly 0 is not above 0
    assert decide(stats, margin=0.0, mode="noninferiority").verdict == FAIL
    assert decide(stats, margin=0.001, mode="noninferiority").verdict == PASS


# --------------------------------------------------------------------------------------- compare()


def _accuracy(n: int, rate: float, seed: int) -> list[float]:
    rnd = random.Random(seed)
    return [1.0 if rnd.random() < rate else 0.0 for _ in range(n)]


def test_same_run_as_its_own_baseline_passes() -> None:
    records = scores_run(_accuracy(300, 0.7, 1))
    report = compare(baseline_of(records), records, run_info(), FAST)
    assert not report.failed and report.reasons == []
    row = row_for(report, "paired", dataset="textvqa")
    assert (row.verdict, row.delta, row.n, row.test) == (PASS, 0.0, 300, "mcnemar-exact")
    assert any("same weights as the baseline" in n for n in report.notes)


def test_worse_checkpoint_fails_and_names_the_flipped_samples() -> None:
    base_scores = _accuracy(400, 0.7, 2)
    base = scores_run(base_scores, prediction="cat")
    right = [i for i, s in enumerate(base_scores) if s == 1.0]
    worse = set(right[:40])  # a 10-point drop
    cand = [
        rec(f"s{i:04d}", 0.0 if i in worse else s, ckpt="ckpt1", prediction="dog" if i in worse else "cat")
        for i, s in enumerate(base_scores)
    ]
    report = compare(baseline_of(base), cand, run_info(["ckpt1"]), FAST)
    assert report.failed
    row = row_for(report, "paired", checkpoint="ckpt1", dataset="textvqa")
    assert row.verdict == FAIL and row.delta == pytest.approx(-0.1)
    assert row.ci_high is not None and row.ci_high < -0.01 and row.p_value < 1e-6
    assert row.n_worse == 40 and row.n_better == 0
    assert len(row.flips) == 5 and [f.sample_id for f in row.flips] == sorted(f"s{i:04d}" for i in right[:5])
    assert row.flips[0].baseline_prediction == "cat" and row.flips[0].candidate_prediction == "dog"
    assert report.reasons[0].startswith("ckpt1 / textvqa / exact_match: dropped 0.1000")

    lines = render_gate_table(report)
    text = "\n".join(lines)
    assert lines[0].startswith("regression gate (significant) vs b.json: FAILED")
    assert "95 % CI of Δ" in lines[1] and "FAIL" in text and "textvqa" in text
    assert f"{row.flips[0].sample_id}  1 -> 0  baseline 'cat'  now 'dog'" in text
    summary = {
        "checkpoint": "ckpt1",
        "dataset": "textvqa",
        "metric": "exact_match",
        "n": 400,
        "errors": 0,
        "mean": 0.6,
        "ci_low": 0.55,
        "ci_high": 0.65,
        "p50_latency_s": 0.1,
        "samples_per_s": 80.0,
    }
    md = render_markdown(report, [summary])
    assert "## Regression gate: ❌ FAILED" in md
    header = (
        "| checkpoint | dataset | metric | coverage | paired n | baseline | candidate | Δ | 95 % CI of Δ | "
        "p (1-sided) | p (Holm) | MDD 80% | limit |"
    )
    assert header in md
    assert f"| {row.flips[0].sample_id} | 1 → 0 | cat | dog |" in md
    assert "| ckpt1 | textvqa | exact_match | 400 | 0 | 0.6000 | [0.5500, 0.6500] | 0.1 s | 80 |" in md


def test_sweep_compares_every_checkpoint_and_merged_order_does_not_matter() -> None:
    base_scores = _accuracy(300, 0.7, 3)
    base = scores_run(base_scores)
    cand: list[Record] = []
    for label, zeroed in (("ckpt0", 0), ("ckpt1", 3), ("ckpt2", 60)):
        cand += [rec(f"s{i:04d}", 0.0 if i < zeroed else s, ckpt=label) for i, s in enumerate(base_scores)]
    cand += scores_run(_accuracy(50, 0.5, 4), ckpt="ckpt1", dataset="docvqa", metric="anls")
    info = run_info(["ckpt0", "ckpt1", "ckpt2"])
    report = compare(baseline_of(base), cand, info, FAST)
    paired = [r for r in report.rows if r.check == "paired"]
    # ckpt1 lost 3 of 300 (p = 1/8): not significant, and 300 samples cannot resolve a 1-point margin
    verdicts = [(r.checkpoint, r.verdict) for r in paired]
    assert verdicts == [("ckpt0", PASS), ("ckpt1", INCONCLUSIVE), ("ckpt2", FAIL)]
    assert [r.p_adjusted for r in paired][2] == pytest.approx(3 * paired[2].p_value)  # Holm: smallest x3
    extra = row_for(report, "coverage", dataset="docvqa")
    assert extra.verdict == NOT_GATED and "not in the baseline" in extra.reason
    shuffled = list(cand)
    random.Random(0).shuffle(shuffled)  # shards merged in any order give the very same report
    assert compare(baseline_of(base), shuffled, info, FAST) == report


@pytest.mark.parametrize("setting", ["generate_method", "max_new_tokens", "num_beams", "dtype"])
def test_changed_generation_setting_fails_closed(setting: str) -> None:
    records = scores_run(_accuracy(100, 0.7, 5))
    info = run_info()
    info["generation"] = {**info["generation"], setting: "changed"}
    report = compare(baseline_of(records), records, info, FAST)
    assert report.failed
    row = row_for(report, "setting", metric=setting)
    before = run_info()["generation"][setting]
    assert f"generation setting {setting} changed: baseline {before!r}, this run 'changed'" in row.reason


def test_batch_size_is_not_gated() -> None:
    records = scores_run(_accuracy(100, 0.7, 5))
    info = run_info()
    info["generation"] = {**info["generation"], "batch_size": 1}
    assert not compare(baseline_of(records), records, info, FAST).failed


def test_other_metric_flavour_fails_closed() -> None:
    base = scores_run(_accuracy(100, 0.7, 6), flavor="omnilmm")
    cand = scores_run(_accuracy(100, 0.7, 6), flavor="vlmevalkit")
    report = compare(baseline_of(base), cand, run_info(), FAST)
    assert report.failed
    assert (
        "baseline used flavour 'omnilmm', this run 'vlmevalkit'; rerun with --metric-flavor omnilmm "
        "or regenerate the baseline" in report.reasons[0]
    )


def test_changed_sample_content_fails_closed() -> None:
    base = scores_run(_accuracy(100, 0.7, 7))
    cand = [
        dataclasses.replace(r, sample_hash="new") if r.sample_id in ("s0003", "s0050") else r for r in base
    ]
    report = compare(baseline_of(base), cand, run_info(), FAST)
    row = row_for(report, "paired", dataset="textvqa")
    assert row.verdict == FAIL
    assert (
        "dataset content changed for 2 samples, e.g. 's0003'; regenerate the baseline with --save-baseline"
        in (row.reason)
    )
    assert row.n == 98  # the unchanged samples are still compared, for information


def test_no_matched_samples_fails_closed() -> None:
    base = scores_run(_accuracy(50, 0.7, 8))
    cand = [dataclasses.replace(r, sample_id="other-" + r.sample_id) for r in base]
    row = row_for(compare(baseline_of(base), cand, run_info(), FAST), "paired")
    assert row.verdict == FAIL and row.reason.startswith(
        "0/50 baseline samples present: none of the baseline's sample ids are among this run's 50"
    )


def test_dataset_missing_from_the_run_fails_closed() -> None:
    base = scores_run(_accuracy(50, 0.7, 9)) + scores_run(_accuracy(50, 0.7, 9), dataset="docvqa")
    cand = scores_run(_accuracy(50, 0.7, 9))
    report = compare(baseline_of(base), cand, run_info(), FAST)
    row = row_for(report, "coverage", dataset="docvqa")
    assert row.verdict == FAIL and "'docvqa' is in the baseline but not in this run" in row.reason
    assert row_for(report, "paired", dataset="textvqa").verdict == PASS


def test_empty_run_fails_closed() -> None:
    base = baseline_of(scores_run(_accuracy(20, 0.7, 10)))
    report = compare(base, [], run_info(), FAST)
    assert report.failed and "no records" in report.reasons[0]


def test_duplicate_ids_and_missing_metric_fail_closed() -> None:
    base = scores_run(_accuracy(30, 0.7, 11))
    report = compare(baseline_of(base), [*base, base[0]], run_info(), FAST)
    assert "1 sample id duplicated in this run, e.g. 's0000'" in report.reasons[0]
    other = scores_run(_accuracy(30, 0.7, 11), metric="anls")
    report = compare(baseline_of(base), other, run_info(), FAST)
    assert "this run has no 'exact_match' scores (its metric is anls)" in report.reasons[0]


def test_candidate_errors_count_as_wrong_and_are_listed() -> None:
    base = scores_run([1.0] * 100)
    cand = [rec(r.sample_id, None, error="CUDA out of memory") if i < 10 else r for i, r in enumerate(base)]
    row = row_for(compare(baseline_of(base), cand, run_info(), FAST), "paired")
    assert row.verdict == FAIL and row.candidate == pytest.approx(0.9)
    assert row.n_errors == 10 and row.error_ids[0] == "s0000"
    assert "10 samples errored (counted as wrong), e.g. 's0000'" in row.reason
    assert row.flips[0].candidate_error == "CUDA out of memory"
    assert "error: 'CUDA out of memory'" in "\n".join(
        render_gate_table(compare(baseline_of(base), cand, run_info(), FAST))
    )


def test_samples_undefined_in_the_baseline_are_left_out_not_counted() -> None:
    base = [rec(r.sample_id, None) if i < 5 else r for i, r in enumerate(scores_run([1.0] * 50))]
    row = row_for(compare(baseline_of(base), base, run_info(), FAST), "paired")
    assert row.n == 45 and row.verdict == PASS
    assert "5 samples without a exact_match score in the baseline left out" in row.reason


def test_a_loss_cannot_hide_as_a_missing_score() -> None:
    """Scored 1.0 in the baseline, NaN / no score now (no error either): the row fails, it is not skipped."""
    base = scores_run([1.0] * 200)
    cand = [rec(r.sample_id, None) if i < 60 else r for i, r in enumerate(base)]
    row = row_for(compare(baseline_of(base), cand, run_info(), FAST), "paired")
    assert row.verdict == FAIL
    assert "60 samples scored in the baseline without a exact_match score in this run" in row.reason


def test_a_missing_baseline_sample_fails_with_the_coverage() -> None:
    base = scores_run(_accuracy(100, 0.7, 12))
    report = compare(baseline_of(base), base[1:], run_info(), FAST)
    row = row_for(report, "paired")
    assert row.verdict == FAIL and report.failed and row.coverage == "99/100"
    assert "99/100 baseline samples present (missing e.g. 's0000')" in row.reason
    assert "99/100" in "\n".join(render_gate_table(report))


def test_a_partial_run_is_gated_on_the_intersection_only_when_asked() -> None:
    base = scores_run(_accuracy(100, 0.7, 12))
    settings = GateSettings(allow_partial=True, max_drop=0.3)
    row = row_for(compare(baseline_of(base), base[:40], run_info(), settings), "paired")
    assert row.verdict == PASS and row.n == 40 and row.coverage == "40/100 (partial)"
    assert "gated on the 40/100 baseline samples present only (--gate-allow-partial)" in row.reason


def test_a_drop_hidden_by_missing_samples_fails() -> None:
    """10 points lost, and the lost samples left out of the run: the 'clean' rest must not pass."""
    base = scores_run([1.0] * 200)
    cand = base[20:]  # the 20 samples it got wrong are simply missing
    assert compare(baseline_of(base), cand, run_info(), FAST).failed


def test_errored_samples_count_as_wrong_not_as_missing() -> None:
    base = scores_run([1.0] * 50)
    cand = [rec(r.sample_id, None, error="boom") if i < 2 else r for i, r in enumerate(base)]
    row = row_for(compare(baseline_of(base), cand, run_info(), FAST), "paired")
    assert row.coverage == "50/50" and row.n == 50 and row.candidate == pytest.approx(0.96)


def test_continuous_clustered_scores_use_the_bootstrap() -> None:
    rnd = random.Random(13)
    base = [
        rec(
            f"s{i:03d}",
            rnd.choice([0.0, 1 / 3, 2 / 3, 1.0]),
            group=f"img{i // 3}",
            category=["ocr", "count"][i % 2],
            metric="vqa_accuracy",
        )
        for i in range(300)
    ]
    cand = [
        dataclasses.replace(r, scores={"vqa_accuracy": 0.0}) if i % 2 == 1 and i < 120 else r
        for i, r in enumerate(base)
    ]
    row = row_for(compare(baseline_of(base), cand, run_info(), FAST), "paired")
    assert row.test == "sign-flip" and row.verdict == FAIL and row.n_clusters == 100
    by_cat = {c.category: c for c in row.categories}
    assert by_cat["ocr"].delta == 0.0 and by_cat["count"].delta < 0 and by_cat["count"].n == 150


def test_inconclusive_fails_by_default_and_passes_when_asked() -> None:
    base = scores_run([1.0] * 40)
    cand = scores_run([1.0] * 37 + [0.0] * 3)
    report = compare(baseline_of(base), cand, run_info(), FAST)
    row = row_for(report, "paired")
    assert row.verdict == INCONCLUSIVE and report.failed
    assert "paired samples (have 40)" in report.reasons[0] and "(fails the gate)" in render_markdown(report)
    lenient = compare(baseline_of(base), cand, run_info(), GateSettings(inconclusive="pass"))
    assert not lenient.failed and lenient.warnings and "paired samples (have 40)" in lenient.warnings[0]


# ------------------------------------------------------------------------------------------- floors


def test_floors_work_without_a_baseline() -> None:
    records = scores_run([1.0] * 55 + [0.0] * 45) + scores_run(
        [1.0] * 9 + [0.0], dataset="docvqa", metric="anls"
    )
    report = compare(None, records, run_info(), GateSettings(min_scores={"textvqa": 0.6, "anls": 0.8}))
    low = row_for(report, "floor", dataset="textvqa")
    assert low.verdict == FAIL and low.reason == "mean 0.5500 is below the floor 0.6 (--min-score)"
    assert row_for(report, "floor", dataset="docvqa").verdict == PASS  # matched by metric name
    assert report.failed and len(report.reasons) == 1


def test_floor_counts_errors_and_rejects_unknown_names() -> None:
    records = [*scores_run([1.0] * 7), rec("e1", None, error="boom"), rec("e2", None, error="boom")]
    report = compare(
        None, records, run_info(), GateSettings(min_scores={"textvqa": 0.75, "textvqa_typo": 0.5})
    )
    row = row_for(report, "floor", dataset="textvqa")
    assert row.candidate == pytest.approx(7 / 9) and row.verdict == PASS and row.n_errors == 2
    typo = row_for(report, "floor", dataset="textvqa_typo")
    assert typo.verdict == FAIL and "no dataset or metric named 'textvqa_typo'" in typo.reason


# ------------------------------------------------------------------------------------------ latency


def _latency_report(p50: float, rate: float, hardware: dict[str, str]) -> Any:
    records = scores_run([1.0] * 20)
    base = baseline_of(records)
    info = run_info(perf={"ckpt0": {"p50_latency_s": p50, "samples_per_s": rate}}, hardware=hardware)
    return compare(base, records, info, GateSettings(max_slowdown=0.10))


def test_latency_gate_on_matching_hardware() -> None:
    same = {"device": "cpu", "device_name": "x86_64"}
    report = _latency_report(0.13, 80.0, same)  # 30 % slower p50
    row = row_for(report, "latency", metric="p50_latency_s")
    assert row.verdict == FAIL and row.delta == pytest.approx(0.3) and "30.0% slower" in row.reason
    assert row_for(report, "latency", metric="samples_per_s").verdict == PASS
    report = _latency_report(0.105, 64.0, same)  # throughput 80 -> 64: each sample takes 25 % longer
    assert row_for(report, "latency", metric="p50_latency_s").verdict == PASS
    assert row_for(report, "latency", metric="samples_per_s").delta == pytest.approx(0.25)
    assert report.failed


def test_latency_is_reported_not_gated_on_other_hardware() -> None:
    report = _latency_report(0.5, 10.0, {"device": "cuda", "device_name": "NVIDIA H200"})
    rows = [r for r in report.rows if r.check == "latency"]
    assert [r.verdict for r in rows] == [NOT_GATED, NOT_GATED] and not report.failed
    assert "hardware differs (baseline cpu 'x86_64', this run cuda 'NVIDIA H200')" in rows[0].reason
    assert "+400.0% reported, not gated" in rows[0].reason


# ---------------------------------------------------------------------------------------- rendering


def test_render_without_rows_and_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = compare(None, scores_run([1.0]), run_info(), FAST)
    assert render_gate_table(empty) == ["regression gate: nothing to gate (no baseline and no --min-score)"]
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert append_step_summary("# hi") is False
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert append_step_summary(render_markdown(empty)) is True
    assert summary.read_text().startswith("earlier step\n# pytest-omnilmm report")


def test_natural_checkpoint_order() -> None:
    assert sorted(["ckpt10", "ckpt2", "base", "ckpt1"], key=natural_key) == [
        "base",
        "ckpt1",
        "ckpt2",
        "ckpt10",
    ]


def test_report_serialises_to_plain_json() -> None:
    import json

    base = scores_run(_accuracy(50, 0.7, 14))
    data = compare(baseline_of(base), base, run_info(), FAST).to_json()
    assert json.loads(json.dumps(data))["failed"] is False


# -------------------------------------------------------------------------------------------- plots

PNG = b"\x89PNG\r\n\x1a\n"


def test_plots_for_a_three_checkpoint_sweep(tmp_path: Path) -> None:
    base_scores = _accuracy(60, 0.7, 15)
    base = [rec(f"s{i:03d}", s, category=["ocr", "count", "color"][i % 3]) for i, s in enumerate(base_scores)]
    cand, summary = [], []
    for k, label in enumerate(["ckpt0", "ckpt1", "ckpt2"]):
        run = [
            dataclasses.replace(
                r,
                checkpoint=label,
                scores={"exact_match": 0.0 if i < 5 * k else r.scores["exact_match"]},
                latency_s=0.05 * (k + 1) + 0.001 * i,
                batch_id=f"b{i // 4}",
                batch_size=4,
            )
            for i, r in enumerate(base)
        ]
        cand += run
        mean = sum(r.scores["exact_match"] for r in run) / len(run)
        summary.append(
            {
                "checkpoint": label,
                "dataset": "textvqa",
                "metric": "exact_match",
                "n": 60,
                "errors": 0,
                "mean": mean,
                "ci_low": mean - 0.1,
                "ci_high": mean + 0.1,
            }
        )
    report = compare(baseline_of(base), cand, run_info(["ckpt0", "ckpt1", "ckpt2"]), FAST)
    paths = plots.write_plots(tmp_path / "plots", summary, cand, report)
    assert [p.name for p in paths] == [plots.METRIC_VS_CHECKPOINT, plots.LATENCY, plots.CATEGORY_DELTAS]
    for path in paths:
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000


def test_single_checkpoint_draws_no_sweep_plot(tmp_path: Path) -> None:
    records = scores_run([1.0, 0.0] * 5, latency_s=0.1)
    summary = [{"checkpoint": "ckpt0", "dataset": "textvqa", "metric": "exact_match", "mean": 0.5}]
    paths = plots.write_plots(tmp_path, summary, records, None)
    assert [p.name for p in paths] == [plots.LATENCY]


def test_plots_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # what an absent package looks like
    assert plots.matplotlib_available() is False
    assert plots.write_plots(tmp_path, [], scores_run([1.0]), None) == []
    assert "pytest-omnilmm[plots]" in plots.INSTALL_HINT


# ------------------------------------------------------------------------------- run-level decisions


def test_holm_by_hand() -> None:
    # sorted p: 0.01 (x3 = 0.03), 0.02 (x2 = 0.04), 0.04 (x1 = 0.04); back in the given order
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm([]) == []


def test_minimal_detectable_drop_is_the_power_formula() -> None:
    # (z_0.95 + z_0.80) * SE = (1.6449 + 0.8416) * 0.01
    assert minimal_detectable_drop(0.01, 0.05) == pytest.approx(0.024865, abs=1e-5)


def test_six_datasets_aa_false_alarms_stay_within_alpha() -> None:
    """Six A/A datasets per run, 300 runs: Holm keeps the run-level false-alarm rate near 5 %, where six
    uncorrected tests would fail about 26 % of runs."""
    rng = np.random.default_rng(99)
    fails = raw = 0
    for _ in range(300):
        stats = []
        for _ in range(6):
            p = _latent_accuracy(rng, 800)
            stats.append(paired_stats(rng.random(800) < p, rng.random(800) < p))
        verdicts = [d.verdict for d in decide_all(stats, [0.0] * 6, mode="significant", alpha=0.05)]
        fails += FAIL in verdicts
        raw += any(s.p_value is not None and s.p_value < 0.05 for s in stats)
    assert fails <= 27, fails  # 5 % of 300 is 15; 27 is above its 99.9 % binomial quantile
    assert raw > fails


def test_questions_on_one_image_cluster_by_image_hash() -> None:
    """Without a group label, samples that share an image are one cluster (the test counts images)."""
    base = [rec(f"s{i:03d}", 1.0, image_hash=f"img{i // 4}") for i in range(200)]
    cand = [rec(f"s{i:03d}", 0.0 if i < 8 else 1.0, image_hash=f"img{i // 4}") for i in range(200)]
    row = row_for(compare(baseline_of(base), cand, run_info(), FAST), "paired")
    assert row.test == "clustered-mcnemar" and row.n_clusters == 50 and row.n == 200
    grouped = [dataclasses.replace(r, group=f"pair{i // 2}") for i, r in enumerate(cand)]
    row = row_for(compare(baseline_of(base), grouped, run_info(), FAST), "paired")
    assert row.n_clusters == 100  # the benchmark's own groups win over the image


def test_noninferiority_holds_its_level_on_a_true_drop_of_three_margins() -> None:
    """The reviewer's case: true Δ = -0.03, margin 0.01, n = 100 passed 19 % with the conditional bound."""
    rng = np.random.default_rng(5)
    passes = 0
    for _ in range(400):
        loss = rng.random(100) < 0.03
        stats = paired_stats(np.ones(100), np.where(loss, 0.0, 1.0))
        passes += decide(stats, margin=0.01, mode="noninferiority").verdict == PASS
    assert passes / 400 <= 0.05, passes


def test_single_sample_and_nan_scores() -> None:
    one = paired_stats([1.0], [1.0])
    assert one.p_value is None and decide(one, margin=0.01, mode="significant").verdict == INCONCLUSIVE
    with pytest.raises(ValueError, match="finite"):
        paired_stats([1.0, float("nan")], [1.0, 0.0])


def test_noninferiority_fails_an_underpowered_run_and_passes_a_large_equal_one() -> None:
    small = scores_run(_accuracy(30, 0.7, 21))
    big = scores_run(_accuracy(3000, 0.7, 22))
    settings = GateSettings(mode="noninferiority", max_drop=0.02)
    one_flip = [rec(r.sample_id, 0.0) if i == 0 else r for i, r in enumerate(small) if True]
    assert compare(baseline_of(small), one_flip, run_info(), settings).failed
    assert not compare(baseline_of(big), big, run_info(), settings).failed


def test_equal_losses_in_every_cluster_are_not_a_confident_pass() -> None:
    """MMBench-style groups of 3 rows, each group losing exactly one: the centred SE is 0, but 4 groups
    cannot show a 1-point margin holds (found on the demo's 12-row MMBench sample)."""
    base = [rec(f"{i}", 1.0, group=f"q{i % 4}") for i in range(12)]
    cand = [rec(f"{i}", 0.0 if i < 4 else 1.0, group=f"q{i % 4}") for i in range(12)]
    row = row_for(compare(baseline_of(base), cand, run_info(), FAST), "paired")
    assert row.n_clusters == 4 and row.ci_low == row.ci_high  # every cluster lost the same
    assert row.verdict != PASS and row.mdd is not None and row.mdd > 0.3


def _run_dir(path: Path, records: list[Record], info: dict[str, Any]) -> Path:
    import json

    path.mkdir(parents=True)
    (path / "summary.json").write_text(json.dumps({"run_info": info, "results": []}))
    (path / "records.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))
    return path


def test_gate_results_reads_folders_refuses_overlapping_shards_and_gates_latency(tmp_path: Path) -> None:
    from pytest_omnilmm.gate import GateInputError, gate_results

    base = scores_run([1.0] * 40)
    info = {k: v for k, v in run_info().items() if k not in ("perf", "hardware")}
    baseline = baseline_of(base)
    a = _run_dir(tmp_path / "a", base[:30], info)
    b = _run_dir(tmp_path / "b", [dataclasses.replace(r, prediction="other") for r in base[20:]], info)
    with pytest.raises(GateInputError, match="appears twice with different results"):
        gate_results(baseline, [a, b])
    c = _run_dir(tmp_path / "c", base[30:], info)
    assert not gate_results(baseline, [a, c]).failed  # disjoint shards: one complete run
    assert gate_results(baseline, [a]).failed  # one shard alone: 30/40 present
    # perf comes back from the records, so --max-slowdown gates folders too (baseline p50 0.1 s)
    hw = {"device": "cpu", "device_name": "x86_64"}
    slow = [dataclasses.replace(r, latency_s=1.0, batch_id=r.sample_id, extra=hw) for r in base]
    report = gate_results(baseline, [_run_dir(tmp_path / "slow", slow, info)], max_slowdown=0.1)
    rows = [r for r in report.rows if r.check == "latency"]
    assert [r.verdict for r in rows] == [FAIL, FAIL] and report.failed
