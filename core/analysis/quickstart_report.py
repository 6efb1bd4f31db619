"""The quickstarts' shared output: the tasks x models table, the accuracy figure and the
results files. A row is one task: ``task``, ``ways``, for each model key an accuracy and its
``<key>_ci95`` (fractions), the learned ``descriptor``, ``descriptor_names`` and the entries
the task should be ``sensitive_to``."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from core.demo import format_table

# Row key -> column header: the baseline, AI-SimCLR told to be invariant to everything, and
# AI-SimCLR with the descriptor the task learned.
MODELS: dict[str, str] = {"simclr": "SimCLR", "ai_ones": "AI-SimCLR i=1", "ai_learned": "AI-SimCLR learned i"}


def fewshot_table(rows: Sequence[Mapping[str, Any]], short: Mapping[str, str] | None = None) -> str:
    """Tasks x models with 95 % intervals, the learned descriptor and the expected sensitivities.

    Args:
        short: optional abbreviations of the descriptor entries' names for the headers.
    """
    short = short or {}
    names = rows[0]["descriptor_names"]
    table = []
    for row in rows:
        cells = dict(row)
        for key in MODELS:
            cells[f"{key}_s"] = f"{100 * row[key]:.1f} ± {100 * row[f'{key}_ci95']:.1f}"
        cells["learned"] = " ".join(f"{v:.2f}" for v in row["descriptor"])
        cells["expect"] = ", ".join(short.get(n, n) for n in row["sensitive_to"]) or "-"
        table.append(cells)
    columns = ([("task", "task", "s"), ("ways", "ways", "d")] + [(f"{k}_s", h, "s") for k, h in MODELS.items()]
               + [("learned", "learned i (" + " ".join(short.get(n, n) for n in names) + ")", "s"),
                  ("expect", "should be sensitive to (i -> 0)", "s")])
    return format_table(table, columns)


def fewshot_bars(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Accuracy per task and model with 95 % intervals (``core.analysis.plots.grouped_bars``)."""
    from core.analysis.plots import grouped_bars

    labels = {"simclr": "SimCLR", "ai_ones": "AI-SimCLR, i = 1", "ai_learned": "AI-SimCLR, learned i"}
    return grouped_bars([f"{r['task']}\n({r['ways']}-way)" for r in rows],
                        {label: [100 * r[k] for r in rows] for k, label in labels.items()}, path,
                        errors={label: [100 * r[f"{k}_ci95"] for r in rows] for k, label in labels.items()},
                        ylabel="few-shot accuracy (%)", ylim=(0, 100))


def write_results(out: Path, results: dict[str, Any], table: str, figures: Sequence[Path],
                  runs: Sequence[str], start: float) -> dict[str, Any]:
    """Add the wall time to ``results``, write ``results.json`` and ``results.txt``, print where
    everything is and the total time. Returns ``results``."""
    results["wall_s"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.txt").write_text(table + "\n")
    print(f"\nwritten: {out / 'results.json'}, {out / 'results.txt'}, " + ", ".join(str(f) for f in figures)
          + f"; run dirs (metrics.csv, loss.png, tensorboard/): {', '.join(str(out / m) for m in runs)}")
    print(f"total {results['wall_s'] / 60:.1f} min")
    return results
