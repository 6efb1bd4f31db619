"""Tables of ``aiaudio compare``: ranks, averages and markdown tables (no torch, no I/O).

Scores are held as ``{model: {task: {"accuracy": a, "ci95": c, ...}}}`` with fractions in
[0, 1]. A table has one row per model and one column per task, cells ``mean ± ci`` in
percent, then ``avg`` (mean accuracy over the tasks) and ``rank`` (mean over tasks of the
model's rank within the task: 1 = best, tied models share the mean of their places), as in
the paper's tables. The best cell of every column is bold (every tied best one).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

Scores = Mapping[str, Mapping[str, Mapping[str, Any]]]


def task_ranks(values: Mapping[str, float]) -> dict[str, float]:
    """Rank of each model within one task (1 = highest value; ties get their mean place).

    Args:
        values: model -> score (higher is better); NaN scores are left out.
    """
    finite = {m: v for m, v in values.items() if not math.isnan(v)}
    ordered = sorted(finite.values(), reverse=True)
    ranks = {}
    for model, value in finite.items():
        first = ordered.index(value) + 1               # first place this value occupies
        count = ordered.count(value)
        ranks[model] = first + (count - 1) / 2.0
    return ranks


def summarise(scores: Scores, models: Sequence[str], tasks: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{model: {"avg": mean accuracy, "rank": mean rank}}`` over the tasks a model has.

    Tasks missing for a model are skipped for its average and rank; a model with no task gets
    NaN for both.
    """
    ranks: dict[str, list[float]] = {m: [] for m in models}
    for task in tasks:
        values = {m: float(scores[m][task]["accuracy"]) for m in models if task in scores.get(m, {})}
        for model, rank in task_ranks(values).items():
            ranks[model].append(rank)
    out = {}
    for model in models:
        accs = [float(scores[model][t]["accuracy"]) for t in tasks if t in scores.get(model, {})]
        out[model] = {"avg": sum(accs) / len(accs) if accs else math.nan,
                      "rank": sum(ranks[model]) / len(ranks[model]) if ranks[model] else math.nan}
    return out


def _best(values: Mapping[str, float], lowest: bool = False) -> set[str]:
    """Models holding the best finite value (all of them on a tie)."""
    finite = {m: v for m, v in values.items() if not math.isnan(v)}
    if not finite:
        return set()
    target = min(finite.values()) if lowest else max(finite.values())
    return {m for m, v in finite.items() if v == target}


def _bold(text: str, on: bool) -> str:
    return f"**{text}**" if on else text


def cell(accuracy: float, ci95: float) -> str:
    """``"62.1 ± 1.3"`` from fractions."""
    return f"{100 * accuracy:.1f} ± {100 * ci95:.1f}"


def markdown_table(scores: Scores, models: Sequence[str], tasks: Sequence[str],
                   labels: Mapping[str, str] | None = None) -> str:
    """Markdown table: models x tasks (``mean ± ci`` %), then ``avg`` and ``rank``; best in bold.

    Args:
        scores: ``{model: {task: {"accuracy", "ci95"}}}`` (fractions).
        models: row order.
        tasks: column order.
        labels: optional display names of the models.
    """
    labels = labels or {}
    summary = summarise(scores, models, tasks)
    best = {t: _best({m: float(scores[m][t]["accuracy"]) for m in models if t in scores.get(m, {})})
            for t in tasks}
    best_avg = _best({m: summary[m]["avg"] for m in models})
    best_rank = _best({m: summary[m]["rank"] for m in models}, lowest=True)
    lines = ["| model | " + " | ".join(tasks) + " | avg | rank |",
             "|---|" + "---:|" * (len(tasks) + 2)]
    for model in models:
        cells = [labels.get(model, model)]
        for task in tasks:
            entry = scores.get(model, {}).get(task)
            cells.append("-" if entry is None else
                         _bold(cell(float(entry["accuracy"]), float(entry["ci95"])), model in best[task]))
        avg, rank = summary[model]["avg"], summary[model]["rank"]
        cells.append("-" if math.isnan(avg) else _bold(f"{100 * avg:.1f}", model in best_avg))
        cells.append("-" if math.isnan(rank) else _bold(f"{rank:.2f}", model in best_rank))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def descriptor_rows(results: Mapping[str, Scores], learners: Sequence[str], tasks: Sequence[str]
                    ) -> list[tuple[str, str, str, list[float]]]:
    """``(model, evaluation, task, descriptor)`` for every learned descriptor, in table order.

    Args:
        results: ``{evaluation: {model: {task: {"descriptor": [...]}}}}``.
        learners: the models whose descriptor was learned per task (the others are left out).
        tasks: task order.
    """
    rows = []
    for model in learners:
        for evaluation, scores in results.items():
            for task in tasks:
                entry = scores.get(model, {}).get(task)
                if entry is not None and entry.get("descriptor") is not None:
                    rows.append((model, evaluation, task, [float(v) for v in entry["descriptor"]]))
    return rows


def descriptor_table(rows: Sequence[tuple[str, str, str, Sequence[float]]], names: Sequence[str]) -> str:
    """Markdown table of learned descriptors: one row per (model, evaluation, task), one column
    per augmentation (1 = invariant, 0 = sensitive)."""
    lines = ["| model | evaluation | task | " + " | ".join(names) + " |",
             "|---|---|---|" + "---:|" * len(names)]
    for model, evaluation, task, values in rows:
        if len(values) != len(names):
            raise ValueError(f"descriptor of {model}/{evaluation}/{task} has {len(values)} entries, "
                             f"expected {len(names)} ({', '.join(names)})")
        lines.append(f"| {model} | {evaluation} | {task} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    return "\n".join(lines)
