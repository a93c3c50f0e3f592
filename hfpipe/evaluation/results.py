"""One shape for final metrics, and the table (Markdown, JSON, bar chart) that compares checkpoints.

Every recipe ends by writing ``results.json`` into its output directory::

    {"model": "outputs/sft", "stage": "sft", "metrics": {"perplexity": 21.3, "hfpipe_mc/acc": 0.45}}

so ``write_results_table(read_results(d) for d in dirs)`` compares any set of outputs later.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path

from hfpipe.evaluation.metric_notes import chart_panels
from hfpipe.io import write_json_atomically

RESULTS_FILE = "results.json"
TABLE_FILES = {"markdown": "table.md", "json": "table.json", "png": "table.png"}


def make_results(model: str, metrics: dict[str, float], stage: str | None = None, **extra) -> dict:
    """The results record: ``model``, ``stage`` (defaults to the model's directory name), ``metrics``."""
    bad = {k: v for k, v in metrics.items() if not isinstance(v, (int, float)) or isinstance(v, bool)}
    if bad:
        raise ValueError(f"metrics must be numbers; these are not: {bad}")
    return {
        "model": str(model),
        "stage": stage or Path(str(model)).name,
        "metrics": {k: float(v) for k, v in metrics.items()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **extra,
    }


def write_results(
    output_dir: str | os.PathLike, model: str, metrics: dict[str, float], stage: str | None = None, **extra
) -> Path:
    """Write ``output_dir/results.json`` in the shared shape; returns its path."""
    return write_json_atomically(
        make_results(model, metrics, stage, **extra), Path(output_dir) / RESULTS_FILE
    )


def read_results(path: str | os.PathLike) -> dict:
    """Read a ``results.json`` (or the one inside a directory), checking its shape."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}; run an hfpipe recipe or evaluate_model.py first")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict) or "model" not in record:
        raise ValueError(f"{path} is not an hfpipe results file: it needs 'model' and a 'metrics' mapping")
    record.setdefault("stage", Path(record["model"]).name)
    return record


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"


def results_markdown(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table: one row per checkpoint, one column per metric."""
    lines = [
        "| stage | model | " + " | ".join(columns) + " |",
        "|---|---|" + "---:|" * len(columns),
    ]
    for r in rows:
        cells = [_fmt(r["metrics"].get(c)) for c in columns]
        lines.append(f"| {r['stage']} | `{r['model']}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_results(rows: list[dict], panels: list[list[str]], path: str | os.PathLike) -> Path:
    """One panel per group of figures (``metric_notes.chart_panels``): a point per checkpoint on an axis fitted
    to the values, so that differences are visible; accuracy panels mark chance with a dashed line."""
    from hfpipe.evaluation.metric_notes import NOTES, label
    from hfpipe.training.plot import panels as make_panels
    from hfpipe.training.plot import save_figure

    fig, axes = make_panels(len(panels), cols=2, size=(4.6, 1.4 + 0.45 * len(rows)))
    y = list(range(len(rows)))
    for ax, group in zip(axes, panels):
        drawn = []
        for k, column in enumerate(group):
            values = [r["metrics"].get(column, float("nan")) for r in rows]
            ax.plot(values, y, color="0.8", zorder=1)
            ax.scatter(values, y, s=45, zorder=2, label=label(column), color=f"C{k}", marker="os"[k % 2])
            for row, value in zip(y, values):
                ax.annotate(_fmt(value), (value, row), textcoords="offset points", xytext=(0, 7), ha="center",
                            fontsize=8, color=f"C{k}")  # fmt: skip
            drawn += values
        chance_key = f"{group[0].split('/')[0]}/chance"
        chance = next((r["metrics"][chance_key] for r in rows if chance_key in r["metrics"]), None)
        if chance is not None:
            ax.axvline(chance, color="0.4", linestyle="--", linewidth=1)
            ax.annotate("chance", (chance, len(rows) - 0.6), fontsize=7, color="0.4", ha="left")
            drawn.append(chance)
        _pad_axis(ax, [v for v in drawn if not math.isnan(v)])
        note = NOTES.get(group[0])
        better = (
            "" if note is None else (", higher is better" if note.higher_is_better else ", lower is better")
        )
        ax.set_title(f"{label(group[0])}{better}", fontsize=9)
        if len(group) > 1:
            ax.legend(
                fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=len(group), frameon=False
            )
        ax.set_yticks(y, [r["stage"] for r in rows], fontsize=8)
        ax.set_ylim(len(rows) - 0.3, -0.6)
        ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path)


def _pad_axis(ax, values: list[float]) -> None:
    if not values:
        return
    low, high = min(values), max(values)
    margin = (high - low) * 0.15 or abs(high) * 0.05 or 0.05
    ax.set_xlim(low - margin, high + margin)


def write_results_table(rows: Iterable[dict], output_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``table.md``, ``table.json`` and ``table.png`` for results records; returns their paths."""
    rows = list(rows)
    if not rows:
        raise ValueError("no results to tabulate; evaluate at least one checkpoint or pass results files")
    columns = list(dict.fromkeys(c for r in rows for c in r["metrics"]))
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": write_json_atomically({"columns": columns, "rows": rows}, out / TABLE_FILES["json"]),
        "markdown": out / TABLE_FILES["markdown"],
    }
    tmp = out / f".{TABLE_FILES['markdown']}.tmp"
    tmp.write_text(results_markdown(rows, columns), encoding="utf-8")
    os.replace(tmp, paths["markdown"])
    charted = chart_panels(columns)
    if charted:
        paths["png"] = plot_results(rows, charted, out / TABLE_FILES["png"])
    return paths
