"""The Pareto table of downstream fits: score against cost, from the ``--json`` reports of
``probe`` and ``finetune`` (or any mapping with the same keys). No matplotlib here:
:func:`core.analysis.plots.pareto_plot` draws what :func:`pareto_front` finds.

A report holds its costs at the top level (``trainable_params``, ``wall_s``, ``peak_mb``)
and its test scores under ``metrics`` (``accuracy``, ``mean_class_accuracy`` or ``r2``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

COSTS = ("trainable_params", "wall_s", "peak_mb")


def finite(value, where: str) -> float:
    """``float(value)`` for a finite number (int, float, 0-d tensor or array); else ValueError."""
    try:
        number = float(value) if not isinstance(value, (bool, str, bytes)) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    return number


def pareto_front(rows: Sequence[Mapping], x_key: str, y_key: str) -> list[int]:
    """Indices of the rows no other row beats (lower or equal ``x_key`` cost and higher or equal
    ``y_key`` score, one strictly), sorted by cost."""
    pts = [(finite(r[x_key], f"pareto {x_key}"), finite(r[y_key], f"pareto {y_key}")) for r in rows]
    front = [i for i, (x, y) in enumerate(pts)
             if not any(x2 <= x and y2 >= y and (x2 < x or y2 > y) for x2, y2 in pts)]
    return sorted(front, key=lambda i: pts[i])


def default_label(report: Mapping[str, Any]) -> str:
    """``probe (learned)``, ``finetune (last:1)``, ... from a report's command and mode."""
    command = str(report.get("command", "fit"))
    mode = report.get("descriptor_mode") if command != "finetune" else report.get("blocks")
    return f"{command} ({mode})" if mode else command


def pareto_rows(reports: Sequence[tuple[str, Mapping[str, Any]]], cost: str, score: str,
                labels: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One row per report: ``label``, ``cost``, ``score``, ``front`` (on the Pareto front), ``source``.

    Args:
        reports: ``(source, report)`` pairs; ``source`` (a file name) is named in errors.
        cost: a top-level cost key, one of :data:`COSTS`.
        score: a key of ``report["metrics"]`` (higher is better).
        labels: one label per report; default :func:`default_label`, made unique with the source.

    Raises:
        ValueError: an unknown cost, a report without the cost or score (naming the source and
            the keys it has), non-finite values, or a wrong number of labels.
    """
    if cost not in COSTS:
        raise ValueError(f"pareto: cost {cost!r} is not one of {list(COSTS)}")
    if labels is not None and len(labels) != len(reports):
        raise ValueError(f"pareto: {len(labels)} labels for {len(reports)} reports")
    if not reports:
        raise ValueError("pareto: no reports")
    rows = []
    for k, (source, report) in enumerate(reports):
        metrics = report.get("metrics")
        if not isinstance(metrics, Mapping) or score not in metrics:
            have = sorted(metrics) if isinstance(metrics, Mapping) else "no 'metrics' section"
            raise ValueError(f"pareto: {source}: no test score {score!r} (metrics: {have}); "
                             f"write reports with --json from probe or finetune, with a test split")
        if cost not in report:
            raise ValueError(f"pareto: {source}: no cost {cost!r} (keys: {sorted(report)})")
        label = labels[k] if labels is not None else default_label(report)
        rows.append({"label": label, "cost": finite(report[cost], f"pareto: {source}: {cost}"),
                     "score": finite(metrics[score], f"pareto: {source}: {score}"), "source": source})
    if labels is None:  # the same command and mode twice: tell them apart by file
        seen = [r["label"] for r in rows]
        for r in rows:
            if seen.count(r["label"]) > 1:
                r["label"] = f"{r['label']} [{Path(r['source']).stem}]"
    front = set(pareto_front(rows, "cost", "score"))
    for i, r in enumerate(rows):
        r["front"] = i in front
    return sorted(rows, key=lambda r: (r["cost"], -r["score"]))


def read_reports(paths: Sequence[str | Path]) -> list[tuple[str, dict[str, Any]]]:
    """``(path, report)`` for JSON files; a missing or unparsable file is a ValueError naming it."""
    out = []
    for path in paths:
        try:
            report = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ValueError(f"pareto: report {path} not found") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"pareto: report {path} is not JSON ({err})") from None
        if not isinstance(report, dict):
            raise ValueError(f"pareto: report {path} holds {type(report).__name__}, expected an object")
        out.append((str(path), report))
    return out


__all__ = ["COSTS", "default_label", "finite", "pareto_front", "pareto_rows", "read_reports"]
