"""``comparison.png`` of ``aiaudio compare``: one heat map per evaluation (models x tasks).

Each cell shows the accuracy and its 95 % interval; its colour is the accuracy minus the
mean of the models on that task (percentage points; red above, blue below; the scale spans
at least ±5 points), so the best model of a task stands out whatever the task's
difficulty. A last column holds the average over the tasks, coloured the same way.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from aiaudio.compare_report import summarise  # noqa: E402

TITLES = {"fewshot": "few-shot accuracy (%)", "probe": "linear-probe accuracy (%)"}


def _panel(ax: Any, scores: Mapping[str, Mapping[str, Mapping[str, Any]]], models: list[str],
           labels: Mapping[str, str] | None, tasks: list[str], title: str) -> Any:
    """Draw one heat map on ``ax`` (model names on the y axis unless ``labels`` is None);
    returns the image (for the colour bar)."""
    summary = summarise(scores, models, tasks)
    columns = tasks + ["avg"]
    values = [[100 * float(scores[m][t]["accuracy"]) if t in scores[m] else math.nan for t in tasks]
              + [100 * summary[m]["avg"]] for m in models]
    centred: list[list[float]] = [[] for _ in values]
    for j in range(len(columns)):
        column = [row[j] for row in values if not math.isnan(row[j])]
        mean = sum(column) / len(column) if column else 0.0
        for i, row in enumerate(values):
            centred[i].append(row[j] - mean)
    spread = max([abs(v) for row in centred for v in row if not math.isnan(v)] + [5.0])
    image = ax.imshow(centred, cmap="RdBu_r", vmin=-spread, vmax=spread, aspect="auto")
    for i, model in enumerate(models):
        for j, task in enumerate(columns):
            if math.isnan(values[i][j]):
                text = "-"
            elif task == "avg":
                text = f"{values[i][j]:.1f}"
            else:
                text = f"{values[i][j]:.1f}\n±{100 * float(scores[model][task]['ci95']):.1f}"
            dark = not math.isnan(centred[i][j]) and abs(centred[i][j]) > 0.6 * spread
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    ax.set_yticks(range(len(models)), [labels.get(m, m) for m in models] if labels is not None else [])
    ax.set_title(title, fontsize=10)
    return image


def comparison_figure(report: Mapping[str, Any], path: str | Path) -> Path:
    """Heat maps of every evaluation in ``report["results"]``, side by side; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    models = list(report["models"])
    labels = {m: report["models"][m].get("label", m) for m in models}
    tasks = [t["name"] for t in report["tasks"]]
    evaluations = list(report["results"])
    width = 1.2 + 0.85 * (len(tasks) + 1)
    fig, axes = plt.subplots(1, len(evaluations), figsize=(width * len(evaluations) + 1.5, 1.2 + 0.5 * len(models)),
                             squeeze=False)
    image = None
    for k, (ax, evaluation) in enumerate(zip(axes[0], evaluations)):
        image = _panel(ax, report["results"][evaluation], models, labels if k == 0 else None, tasks,
                       TITLES.get(evaluation, evaluation))
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes[0]), fraction=0.025, pad=0.02)
        bar.set_label("points above (+) / below (-) the task's mean", fontsize=8)
    fig.savefig(path, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
