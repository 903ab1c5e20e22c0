"""What people read of the gate: the terminal table, report.md's section, the GitHub job summary."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .decide import FAIL, INCONCLUSIVE, NOT_GATED, PASS
from .rows import GateReport, Row


def _pct(level: float) -> str:
    return f"{level * 100:g} %"


def _num(x: float | None, fmt: str = ".4f") -> str:
    return "-" if x is None else format(x, fmt)


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _cells(row: Row, level: float) -> dict[str, str]:
    if row.check == "latency":
        unit = "s" if "latency" in row.metric else "/s"
        base = "-" if row.baseline is None else f"{row.baseline:.4g}{unit}"
        cand = "-" if row.candidate is None else f"{row.candidate:.4g}{unit}"
        return {
            "baseline": base,
            "candidate": cand,
            "delta": "-" if row.delta is None else f"{row.delta:+.1%} slower",
            "ci": "-",
            "p": "-",
            "p_holm": "-",
            "mdd": "-",
            "limit": "-" if row.limit is None else f"≤ {row.limit:.0%} slower",
        }
    ci = "-" if row.ci_low is None or row.ci_high is None else f"[{row.ci_low:+.4f}, {row.ci_high:+.4f}]"
    if row.check == "floor":
        limit = f"≥ {row.limit:.4f}" if row.limit is not None else "-"
    elif row.limit is not None and row.check == "paired":
        limit = f"Δ ≥ {-row.limit:+.4f}"
    else:
        limit = "-"
    return {
        "baseline": _num(row.baseline),
        "candidate": _num(row.candidate),
        "delta": _num(row.delta, "+.4f"),
        "ci": ci,
        "p": _p(row.p_value),
        "p_holm": _p(row.p_adjusted),
        "mdd": _num(row.mdd),
        "limit": limit,
    }


_COLUMNS = (
    "checkpoint",
    "dataset",
    "metric",
    "coverage",
    "n",
    "baseline",
    "candidate",
    "delta",
    "ci",
    "p",
    "p_holm",
    "mdd",
    "limit",
    "verdict",
)


def _headers(level: float) -> dict[str, str]:
    return {
        "checkpoint": "checkpoint",
        "dataset": "dataset",
        "metric": "metric",
        "coverage": "coverage",
        "n": "paired n",
        "baseline": "baseline",
        "candidate": "candidate",
        "delta": "Δ",
        "ci": f"{_pct(level)} CI of Δ",
        "p": "p (1-sided)",
        "p_holm": "p (Holm)",
        "mdd": "MDD 80%",
        "limit": "limit",
        "verdict": "verdict",
    }


def _table_rows(report: GateReport) -> list[dict[str, str]]:
    out = []
    for row in report.rows:
        cells = _cells(row, report.level)
        out.append(
            {
                "checkpoint": row.checkpoint,
                "dataset": row.dataset,
                "metric": row.metric,
                "coverage": row.coverage,
                "n": str(row.n) if row.n else "-",
                **cells,
                "verdict": row.verdict.upper() if report.failing(row) else row.verdict,
            }
        )
    return out


def _short(text: str | None, width: int = 60) -> str:
    if text is None:
        return "(none)"
    return repr(text if len(text) <= width else text[: width - 1] + "…")  # repr shows newlines as \n


def render_gate_table(report: GateReport) -> list[str]:
    """Terminal lines: the gate table, the reason of every row that is not a plain pass, the flips."""
    if not report.rows:
        return ["regression gate: nothing to gate (no baseline and no --min-score)"]
    headers = _headers(report.level)
    body = _table_rows(report)
    widths = {c: max(len(headers[c]), *(len(r[c]) for r in body)) for c in _COLUMNS}
    status = "FAILED" if report.failed else "passed"
    source = f" vs {report.baseline_source}" if report.baseline_source else ""
    lines = [f"regression gate ({report.mode}){source}: {status}"]
    lines.append("  ".join(headers[c].ljust(widths[c]) for c in _COLUMNS).rstrip())
    lines.append("  ".join("-" * widths[c] for c in _COLUMNS))
    lines.extend("  ".join(r[c].ljust(widths[c]) for c in _COLUMNS).rstrip() for r in body)
    explained = [r for r in report.rows if r.verdict != PASS or r.n_errors]
    if explained:
        lines.append("")
        lines.extend(f"{r.verdict.upper():>12}  {r.label}: {r.reason}" for r in explained)
    for row in report.rows:
        if report.failing(row) and row.flips:
            lines.append("")
            lines.append(
                f"worse than the baseline in {row.label}: {row.n_worse} samples "
                f"({row.n_better} better); the {len(row.flips)} worst:"
            )
            for flip in row.flips:
                got = (
                    f"error: {_short(flip.candidate_error)}"
                    if flip.candidate_error
                    else _short(flip.candidate_prediction)
                )
                lines.append(
                    f"  {flip.sample_id}  {flip.baseline_score:g} -> {flip.candidate_score:g}  "
                    f"baseline {_short(flip.baseline_prediction)}  now {got}"
                )
    for note in report.notes:
        lines.append(f"note: {note}")
    return lines


def _md(text: Any, width: int | None = None) -> str:
    flat = str(text).replace("\r", " ").replace("\n", " ")
    if width is not None and len(flat) > width:
        flat = flat[: width - 1] + "…"
    return flat.replace("|", "\\|")


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[str]], width: int | None = None) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines.extend("| " + " | ".join(_md(c, width) for c in row) + " |" for row in rows)
    return lines


_VERDICT_MD = {
    PASS: "✅ pass",
    FAIL: "❌ **fail**",
    INCONCLUSIVE: "⚠️ inconclusive",
    NOT_GATED: "➖ not gated",
}


def render_markdown(
    report: GateReport | None,
    summary_rows: Sequence[Mapping[str, Any]] | None = None,
    *,
    verdict: tuple[int, Sequence[str]] | None = None,
) -> str:
    """report.md: the run's verdict, the gate table (GitHub markdown), its reasons and flips, the summary.

    ``verdict`` is ``(exit status, reasons)``: the first line says what the process exits with, so the
    report can never say "passed" for a run that fails CI.
    """
    lines = ["# pytest-omnilmm report", ""]
    if verdict is not None:
        status, why = verdict
        word = "✅ passed" if status == 0 else "❌ FAILED"
        lines.append(f"**Verdict: {word} (exit status {status})**")
        lines.append("")
        lines.extend(f"- {_md(r)}" for r in why)
        if why:
            lines.append("")
    if report is not None and report.rows:
        status_word = "❌ FAILED" if report.failed else "✅ passed"
        lines.append(f"## Regression gate: {status_word}")
        lines.append("")
        source = f"baseline `{report.baseline_source}`, " if report.baseline_source else ""
        lines.append(f"{source}mode `{report.mode}`, {_pct(report.level)} confidence.")
        lines.append("")
        headers = _headers(report.level)
        body = _table_rows(report)
        for cells, row in zip(body, report.rows, strict=True):
            cells["verdict"] = _VERDICT_MD.get(row.verdict, row.verdict)
            if report.inconclusive_fails and row.verdict == INCONCLUSIVE:
                cells["verdict"] += " (fails the gate)"
        lines.extend(_md_table([headers[c] for c in _COLUMNS], ([r[c] for c in _COLUMNS] for r in body)))
        explained = [r for r in report.rows if r.verdict != PASS or r.n_errors]
        if explained:
            lines += ["", "### Why", ""]
            lines.extend(f"- **{r.verdict}** {_md(r.label)}: {_md(r.reason)}" for r in explained)
        for row in report.rows:
            if report.failing(row) and row.flips:
                lines += ["", f"### Worse than the baseline: {_md(row.label)}", ""]
                lines.append(f"{row.n_worse} samples scored lower ({row.n_better} higher); the worst:")
                lines.append("")
                flips = (
                    (
                        f.sample_id,
                        f"{f.baseline_score:g} → {f.candidate_score:g}",
                        f.baseline_prediction or "",
                        f"error: {f.candidate_error}"
                        if f.candidate_error
                        else (f.candidate_prediction or ""),
                    )
                    for f in row.flips
                )
                lines.extend(
                    _md_table(["sample", "score", "baseline prediction", "candidate prediction"], flips, 80)
                )
        if report.notes:
            lines += ["", "### Notes", ""]
            lines.extend(f"- {_md(n)}" for n in report.notes)
        lines.append("")
    elif report is not None:
        lines += ["Regression gate: nothing to gate (no baseline and no --min-score).", ""]
    if summary_rows:
        lines += ["## Results", ""]
        headers = [
            "checkpoint",
            "dataset",
            "metric",
            "n",
            "errors",
            "mean",
            "95 % CI",
            "p50 batch latency",
            "samples/s",
        ]
        body = []
        for r in summary_rows:
            ci = (
                "-"
                if r.get("ci_low") is None or r.get("ci_high") is None
                else f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
            )
            body.append(
                [
                    str(r.get("checkpoint", "")),
                    str(r.get("dataset", "")),
                    str(r.get("metric", "")),
                    str(r.get("n", "")),
                    str(r.get("errors", "")),
                    _num(r.get("mean")),
                    ci,
                    "-" if r.get("p50_latency_s") is None else f"{r['p50_latency_s']:.4g} s",
                    "-" if r.get("samples_per_s") is None else f"{r['samples_per_s']:.4g}",
                ]
            )
        lines.extend(_md_table(headers, body))
        lines.append("")
    return "\n".join(lines)


def append_step_summary(markdown: str) -> bool:
    """Append to the GitHub Actions job summary when ``$GITHUB_STEP_SUMMARY`` is set.

    Returns whether it was written; an unwritable summary file must not break the run itself.
    """
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(markdown.rstrip("\n") + "\n\n")
    except OSError:
        return False
    return True
