"""What people read: the terminal table, and the run's files (records, summary.json, answers, report.md,
plots). Only the controller calls this."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..records import Record


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def _ms(value: Any) -> str:
    return (
        "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value * 1000:.1f} ms"
    )


def render_terminal(summary: dict[str, Any], gate_report: Any, problems: Sequence[str]) -> list[str]:
    lines: list[str] = []
    rows = summary["results"]
    info = summary["run_info"]
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_label[row["checkpoint"]].append(row)
    w = max([14, *(len(str(row["dataset"])) for row in rows)])  # catalogue names run longer than 14
    header = (
        f"{'dataset':<{w}} {'metric':<18} {'flavour':<11} {'n':>5} {'err':>4} {'score':>7}  {'95% CI':<16}"
    )
    for label, label_rows in by_label.items():
        path = info["checkpoints"].get(label, {}).get("path") or info["model_path"] or "(base)"
        entry = info["checkpoints"].get(label, {})
        fp = entry.get("fingerprint", "")[:12]
        replaced = (
            f"  replaced {entry['replaced_tensors']}/{entry.get('total_tensors')} tensors"
            if "replaced_tensors" in entry
            else ""
        )
        lines.append(f"omnilmm [{label}] {path}  fingerprint {fp}{replaced}")
        lines.append("  " + header)
        for row in label_rows:
            ci = f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]" if row["mean"] is not None else "-"
            lines.append(
                f"  {row['dataset']:<{w}} {row['metric'] or '-':<18} {row['metric_flavor']:<11} "
                f"{row['n']:>5} {row['errors']:>4} {_fmt(row['mean']):>7}  {ci:<16}"
            )
            for note in row.get("notes", ()):
                lines.append(f"  {'':<{w}} note: {note}")
            extras = {k: v for k, v in row["aggregates"].items() if k != row.get("primary") and "/" not in k}
            for name, agg in extras.items():
                lines.append(
                    f"  {'':<{w}} {name:<18} {'':<11} {agg['n']:>5} {'':>4} {_fmt(agg['mean']):>7}  "
                    f"[{_fmt(agg['ci_low'])}, {_fmt(agg['ci_high'])}]"
                )
        p = info["perf"].get(label, {})
        lines.append(
            f"  perf: load {_fmt(p.get('load_time_s'), '.2f')} s | "
            f"batch latency p50 {_ms(p.get('p50_latency_s'))} "
            f"p90 {_ms(p.get('p90_latency_s'))} p99 {_ms(p.get('p99_latency_s'))} "
            f"ttft p50 {_ms(p.get('p50_ttft_s'))} | per-sample time p50 {_ms(p.get('p50_sample_time_s'))} | "
            f"{_fmt(p.get('samples_per_s'), '.1f')} samples/s | "
            f"{_fmt(p.get('tokens_per_s'), '.1f')} tokens/s | "
            f"batch {_fmt(p.get('mean_batch_size'), '.1f')} | "
            f"peak mem {_fmt(p.get('peak_memory_mb'), '.0f')} MB | "
            f"{p.get('device_name', '')} {p.get('dtype', '')}"
            + (f" | {p.get('resumed')} resumed" if p.get("resumed") else "")
        )
    if info.get("partial"):
        lines.append(
            f"omnilmm: PARTIAL run: {info.get('partial_reason') or 'it did not finish'} "
            f"({len(rows)} dataset rows from the samples that finished); "
            "a gate treats missing samples as failures"
        )
    for problem in problems:
        lines.append(f"omnilmm gate: FAILED: {problem}")
    if gate_report is not None:
        from ..gate import render_gate_table

        lines.extend(render_gate_table(gate_report))
    return lines


def _answers(records: Sequence[Record]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The seed's answer-file shape, for people who post-process those files."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        out[(r.checkpoint, r.dataset)].append(
            {
                "question_id": r.sample_id,
                "question": r.extra.get("question", ""),
                "answer": r.prediction,
                "gt_answers": r.references,
            }
        )
    return out


def _write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(
        json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False, default=str) + "\n",
        encoding="utf-8",
    )
    tmp.replace(path)
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def write_run_files(
    run_dir: Path,
    records: Sequence[Record],
    summary: dict[str, Any],
    gate_report: Any,
    problems: Sequence[str],
    verdict: tuple[int, Sequence[str]] | None = None,
) -> list[Path]:
    """Every file of a run; ``verdict`` (exit status, reasons) heads report.md and summary.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    merged = run_dir / "records.jsonl"
    with merged.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(_jsonable(r.to_json()), sort_keys=True, ensure_ascii=False) + "\n")
    written.append(merged)
    data = dict(summary)
    if gate_report is not None:
        data["gate"] = {"failed": bool(gate_report.failed), "reasons": list(gate_report.reasons)}
    if problems:
        data["gate"] = {"failed": True, "reasons": list(problems)}
    if verdict is not None:
        data["verdict"] = {"exit_status": verdict[0], "reasons": list(verdict[1])}
    written.append(_write_json(run_dir / "summary.json", _jsonable(data)))
    for (label, dataset), answers in _answers(records).items():
        _write_json(run_dir / "answers" / label / f"{dataset}.json", answers)
    from .predictions import write_predictions

    written.extend(write_predictions(run_dir, records))
    from ..gate import render_markdown

    summary_rows = [
        {
            k: row.get(k)
            for k in (
                "checkpoint",
                "dataset",
                "metric",
                "n",
                "errors",
                "mean",
                "ci_low",
                "ci_high",
                "p50_latency_s",
                "samples_per_s",
            )
        }
        for row in summary["results"]
    ]
    markdown = render_markdown(gate_report, summary_rows, verdict=verdict)
    if problems:
        markdown += "\n" + "\n".join(f"- **gate failed**: {p}" for p in problems) + "\n"
    report_md = run_dir / "report.md"
    report_md.write_text(markdown, encoding="utf-8")
    written.append(report_md)
    from ..gate import append_step_summary

    append_step_summary(markdown)  # an unwritable $GITHUB_STEP_SUMMARY must not break the run
    from .plots import write_plots

    try:
        written.extend(write_plots(run_dir, summary_rows, records, gate_report))
    except ImportError:
        pass
    return written
