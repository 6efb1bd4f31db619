"""Figures of the downstream analysis, written as PNG files with matplotlib's Agg backend.

* :func:`radar_plot`: descriptors as polygons over the K augmentation names.
* :func:`pareto_plot`: score against cost (parameters, time, memory), Pareto front drawn.
* :func:`interpolation_plot`: curves along a path between two descriptors.
* :func:`invariance_plot`: cosine similarity (and Mahalanobis distance) per transform.
* :func:`grouped_bars`: one group of bars per row (task), one bar per series (model), with
  optional error bars (95 % intervals).

Every function validates its rows, creates the parent folder and returns the path written.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from core.analysis.pareto import finite as _finite, pareto_front  # noqa: E402


def _png_path(path: str | Path, where: str) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{where}: path must end in .png, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)
    return path


def radar_plot(values: Mapping[str, Sequence[float]], names: Sequence[str], path: str | Path,
               title: str | None = None) -> Path:
    """One polygon per descriptor over the axes ``names`` (values usually in [0, 1]).

    Args:
        values: label -> K numbers (e.g. learned descriptors per dataset).
        names: the K axis names (augmentations), K >= 2.
        path: output ``.png``.
        title: optional figure title.
    """
    path = _png_path(path, "radar_plot")
    if len(names) < 2:
        raise ValueError(f"radar_plot: need at least 2 axis names, got {list(names)}")
    if not values:
        raise ValueError("radar_plot: no values to plot")
    for label, v in values.items():
        if len(v) != len(names):
            raise ValueError(f"radar_plot: {label!r} has {len(v)} values for {len(names)} names")
    angles = [2 * math.pi * k / len(names) for k in range(len(names))]
    top = max(1.0, *(_finite(x, f"radar_plot[{label!r}]") for label, v in values.items() for x in v))
    fig = plt.figure(figsize=(7.5, 5.5))
    ax = fig.add_subplot(projection="polar")
    for label, v in values.items():
        pts = [float(x) for x in v]
        ax.plot(angles + angles[:1], pts + pts[:1], marker="o", label=label)
        ax.fill(angles + angles[:1], pts + pts[:1], alpha=0.1)
    ax.set_xticks(angles)
    ax.set_xticklabels(list(names))
    ax.set_ylim(0, top)
    ax.set_rlabel_position(180.0 / len(names))  # radial labels between the first two axes, not on one
    ax.tick_params(axis="y", labelsize="small", labelcolor="grey")
    ax.tick_params(axis="x", pad=10)  # axis names clear of points at the rim
    for label, angle in zip(ax.get_xticklabels(), angles):  # names grow outwards from the circle
        c = math.cos(angle)
        label.set_horizontalalignment("left" if c > 0.1 else "right" if c < -0.1 else "center")
    ax.legend(loc="upper left", bbox_to_anchor=(1.12, 1.0), fontsize="small")  # right of the circle
    if title:
        ax.set_title(title, pad=24)
    return _save(fig, path)


def pareto_plot(rows: Sequence[Mapping], x_key: str, y_key: str, label_key: str, path: str | Path,
                log_x: bool = False, title: str | None = None) -> Path:
    """Score ``y_key`` against cost ``x_key`` (e.g. ``trainable_params``, ``wall_s``), each point
    labelled with ``row[label_key]``, the Pareto front (cheaper and better) drawn as a step line.

    Args:
        rows: one mapping per method/fit.
        x_key, y_key, label_key: keys of the cost, the score and the label.
        path: output ``.png``.
        log_x: logarithmic cost axis (costs must then be positive).
        title: optional figure title.
    """
    path = _png_path(path, "pareto_plot")
    if not rows:
        raise ValueError("pareto_plot: no rows")
    for i, row in enumerate(rows):
        missing = [k for k in (x_key, y_key, label_key) if k not in row]
        if missing:
            raise ValueError(f"pareto_plot: row {i} lacks {missing}")
    front = pareto_front(rows, x_key, y_key)
    xs, ys = [float(r[x_key]) for r in rows], [float(r[y_key]) for r in rows]
    if log_x and min(xs) <= 0:
        raise ValueError(f"pareto_plot: log_x needs positive {x_key!r}, got {min(xs)}")
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter(xs, ys, zorder=3)
    for r, x, y in zip(rows, xs, ys):
        ax.annotate(str(r[label_key]), (x, y), textcoords="offset points", xytext=(4, 4), fontsize="small")
    ax.step([xs[i] for i in front], [ys[i] for i in front], where="post", color="tab:red", label="Pareto front")
    if log_x:
        ax.set_xscale("log")
    ax.margins(x=0.12, y=0.08)  # room for the point labels
    ax.set_xlabel(x_key)
    ax.set_ylabel(y_key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def interpolation_plot(rows: Sequence[Mapping], path: str | Path, title: str | None = None) -> Path:
    """Every numeric column (other than ``t``) of interpolation rows against ``t``.

    Args:
        rows: from :func:`core.analysis.interpolation.interpolation_curve` (``cosine_to_start``,
            ``cosine_to_end``) or :func:`~core.analysis.interpolation.score_curve` (``score``).
        path: output ``.png``.
    """
    path = _png_path(path, "interpolation_plot")
    if not rows or any("t" not in r for r in rows):
        raise ValueError("interpolation_plot: need rows, each with a 't' key")
    keys = [k for k, v in rows[0].items() if k != "t" and isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not keys:
        raise ValueError(f"interpolation_plot: rows have no numeric column besides 't' (keys {list(rows[0])})")
    ts = [_finite(r["t"], "interpolation_plot t") for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in keys:
        ax.plot(ts, [_finite(r[key], f"interpolation_plot {key}") for r in rows], marker="o", label=key)
    ax.set_xlabel("t  (0 = start descriptor, 1 = end descriptor)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def invariance_plot(summary_rows: Sequence[Mapping], path: str | Path, title: str | None = None) -> Path:
    """Invariance per transform, one line (or bar) per descriptor.

    Args:
        summary_rows: rows of :func:`core.analysis.invariance.measure_invariance` (with
            ``strength``: one panel per transform, cosine and Mahalanobis against strength) or
            of :func:`~core.analysis.invariance.summarise_invariance` (grouped bars per transform).
        path: output ``.png``.
    """
    path = _png_path(path, "invariance_plot")
    rows = list(summary_rows)
    need = {"descriptor", "transform", "cosine", "mahalanobis"}
    if not rows or any(need - set(r) for r in rows):
        raise ValueError(f"invariance_plot: need rows with keys {sorted(need)}")
    transforms = list(dict.fromkeys(r["transform"] for r in rows))
    labels = list(dict.fromkeys(r["descriptor"] for r in rows))
    if all("strength" in r for r in rows):
        fig, axes = plt.subplots(2, len(transforms), figsize=(3.6 * len(transforms), 6), squeeze=False)
        for j, name in enumerate(transforms):
            for label in labels:
                pts = sorted((_finite(r["strength"], "strength"), r["cosine"], r["mahalanobis"])
                             for r in rows if r["transform"] == name and r["descriptor"] == label)
                for i, key in ((0, 1), (1, 2)):
                    axes[i][j].plot([p[0] for p in pts], [p[key] for p in pts], marker="o", label=label)
            axes[0][j].set_title(name)
            axes[1][j].set_xlabel("strength")
        axes[0][0].set_ylabel("cosine similarity")
        axes[1][0].set_ylabel("Mahalanobis distance")
        axes[0][-1].legend(fontsize="small")
    else:
        fig, axes = plt.subplots(1, 2, figsize=(max(6, 1.2 * len(transforms) * 2), 4), squeeze=False)
        width = 0.8 / len(labels)
        for k, label in enumerate(labels):
            by_t = {r["transform"]: r for r in rows if r["descriptor"] == label}
            xs = [j + k * width for j in range(len(transforms))]
            for i, key in enumerate(("cosine", "mahalanobis")):
                axes[0][i].bar(xs, [_finite(by_t[t][key], key) if t in by_t else 0.0 for t in transforms],
                               width=width, label=label)
        for i, key in enumerate(("cosine similarity", "Mahalanobis distance")):
            axes[0][i].set_xticks([j + 0.4 - width / 2 for j in range(len(transforms))])
            axes[0][i].set_xticklabels(transforms, rotation=30, ha="right")
            axes[0][i].set_ylabel(key)
        low = min(_finite(r["cosine"], "cosine") for r in rows)
        if low > 0:  # zoom in on the band of similarities, so differences near 1 stay visible
            axes[0][0].set_ylim(max(0.0, low - 0.2 * (1.0 - low) - 0.01), 1.0)
        axes[0][0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


__all__ = ["interpolation_plot", "invariance_plot", "pareto_front", "pareto_plot", "radar_plot"]


def grouped_bars(groups: Sequence[str], series: Mapping[str, Sequence[float]], path: str | Path,
                 errors: Mapping[str, Sequence[float]] | None = None, ylabel: str = "",
                 ylim: tuple[float, float] | None = None, title: str | None = None) -> Path:
    """Grouped bar chart: ``len(groups)`` groups, one bar per series in each.

    Args:
        groups: group labels (x axis), e.g. tasks.
        series: series label -> one value per group (e.g. accuracy per task of a model).
        path: output ``.png``.
        errors: optional series label -> one half-width per group (drawn as error bars).
        ylabel, ylim, title: axis label, y range and figure title.
    """
    path = _png_path(path, "grouped_bars")
    if not groups or not series:
        raise ValueError("grouped_bars: need at least one group and one series")
    for label, values in {**series, **(errors or {})}.items():
        if len(values) != len(groups):
            raise ValueError(f"grouped_bars: {label!r} has {len(values)} values for {len(groups)} groups")
        for v in values:
            _finite(v, f"grouped_bars[{label!r}]")
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(groups) + 2), 4))
    width = 0.8 / len(series)
    for k, (label, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))]
        ax.bar(xs, list(values), width, yerr=None if errors is None else errors.get(label), label=label, capsize=2)
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    return _save(fig, path)
