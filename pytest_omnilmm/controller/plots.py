"""PNG plots for the results dir: metric vs checkpoint, latency per checkpoint, per-category deltas.

matplotlib is the optional ``plots`` extra. It is imported only here, only when plots are asked for,
and through ``matplotlib.figure.Figure`` (no pyplot): no global backend or figure state is touched,
so it works headless and inside a pytest run that may use matplotlib itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_omnilmm.gate import GateReport, natural_key

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pytest_omnilmm.records import Record

INSTALL_HINT = (
    "plots skipped: matplotlib is not installed; install it with: pip install 'pytest-omnilmm[plots]'"
)
METRIC_VS_CHECKPOINT = "metric_vs_checkpoint.png"
LATENCY = "latency_by_checkpoint.png"
CATEGORY_DELTAS = "category_deltas.png"
_MAX_PANELS = 12  # beyond this a figure is unreadable; the tables have the rest


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_plots(
    out_dir: Path,
    summary_rows: Sequence[Mapping[str, Any]],
    records: Sequence[Record],
    gate_report: GateReport | None = None,
) -> list[Path]:
    """Write the plots that the data supports; return their paths ([] when matplotlib is missing).

    - metric vs checkpoint (one panel per dataset, CI band, baseline as a dashed line): >= 2 checkpoints;
    - generation time per sample, one box per checkpoint: when any record was timed in this run;
    - per-category Δ vs the baseline: when the gate compared samples that carry a category.
    """
    if not matplotlib_available():
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (
        (METRIC_VS_CHECKPOINT, lambda: _metric_vs_checkpoint(summary_rows, gate_report)),
        (LATENCY, lambda: _latency(records)),
        (CATEGORY_DELTAS, lambda: _category_deltas(gate_report)),
    ):
        fig = draw()
        if fig is not None:
            path = out_dir / name
            fig.savefig(path, format="png", dpi=100)
            written.append(path)
    return written


def _grid(n_panels: int, width: float = 4.2, height: float = 3.2) -> tuple[Figure, list[Any]]:
    from matplotlib.figure import Figure

    cols = min(3, n_panels)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n_panels)]
    return fig, axes


def _metric_vs_checkpoint(rows: Sequence[Mapping[str, Any]], report: GateReport | None) -> Figure | None:
    labels = sorted({str(r["checkpoint"]) for r in rows if r.get("mean") is not None}, key=natural_key)
    if len(labels) < 2:
        return None
    series: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for r in rows:
        if r.get("mean") is not None:
            series.setdefault((str(r["dataset"]), str(r.get("metric", ""))), {})[str(r["checkpoint"])] = r
    baselines = {}
    if report is not None:
        for row in report.rows:
            if row.check == "paired" and row.baseline is not None:
                baselines.setdefault((row.dataset, row.metric), row.baseline)
    keys = sorted(series)[:_MAX_PANELS]
    fig, axes = _grid(len(keys))
    nan = float("nan")
    for ax, key in zip(axes, keys, strict=True):
        points = series[key]
        xs = list(range(len(labels)))
        mean = [float(points[lab]["mean"]) if lab in points else nan for lab in labels]
        low = [_float(points[lab].get("ci_low")) if lab in points else nan for lab in labels]
        high = [_float(points[lab].get("ci_high")) if lab in points else nan for lab in labels]
        ax.fill_between(xs, low, high, alpha=0.25, label="95 % CI")
        ax.plot(xs, mean, marker="o", label="mean")
        if key in baselines:
            ax.axhline(baselines[key], linestyle="--", color="grey", label="baseline")
        ax.set_xticks(xs, labels, rotation=30 if len(labels) > 4 else 0)
        ax.set_title(f"{key[0]} ({key[1]})" if key[1] else key[0])
        ax.set_xlabel("checkpoint")
        ax.set_ylabel(key[1] or "score")
        ax.legend(fontsize="small")
    return fig


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _latency(records: Sequence[Record]) -> Figure | None:
    # Every sample of a batch carries the whole batch's time: count each batch once, per sample.
    per_ckpt: dict[str, dict[str, float]] = {}
    for rec in records:
        if rec.resumed or rec.latency_s <= 0:
            continue
        batch = rec.batch_id or f"{rec.dataset}\0{rec.sample_id}"
        per_ckpt.setdefault(rec.checkpoint, {})[batch] = rec.latency_s / max(rec.batch_size, 1)
    if not per_ckpt:
        return None
    labels = sorted(per_ckpt, key=natural_key)
    fig, (ax,) = _grid(1, width=max(4.2, 1.2 * len(labels) + 2))
    ax.boxplot([sorted(per_ckpt[lab].values()) for lab in labels])
    ax.set_xticks(range(1, len(labels) + 1), labels)  # set apart: boxplot's label keyword was renamed in 3.9
    ax.set_title("per-sample time: batch latency / batch size (one point per batch)")
    ax.set_xlabel("checkpoint")
    ax.set_ylabel("per-sample time (s)")
    return fig


def _category_deltas(report: GateReport | None) -> Figure | None:
    if report is None:
        return None
    rows = [r for r in report.rows if r.check == "paired" and r.categories][:_MAX_PANELS]
    if not rows:
        return None
    fig, axes = _grid(len(rows), height=max(3.2, 0.35 * max(len(r.categories) for r in rows) + 1.5))
    for ax, row in zip(axes, rows, strict=True):
        names = [f"{c.category} (n={c.n})" for c in row.categories]
        deltas = [c.delta for c in row.categories]
        colours = ["tab:red" if d < 0 else "tab:green" for d in deltas]
        ax.barh(range(len(names)), deltas, color=colours)
        ax.set_yticks(range(len(names)), names)
        ax.axvline(0, color="black", linewidth=0.8)
        if row.limit:
            ax.axvline(
                -row.limit, color="grey", linestyle="--", linewidth=0.8, label=f"margin -{row.limit:g}"
            )
            ax.legend(fontsize="small")
        ax.set_title(f"{row.checkpoint} / {row.dataset}: Δ vs baseline")
        ax.set_xlabel(f"Δ {row.metric}")
    return fig
