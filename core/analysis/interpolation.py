"""Walking the descriptor manifold: paths between two descriptors and curves along them.

``interpolation_curve`` compares features along the path with the end points' features;
``score_curve`` evaluates any callback (a fitted readout's validation score, a probe's
accuracy, ...) along the same path; both feed :func:`core.analysis.plots.interpolation_plot`.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from core.encoders.base import InvarianceEncoder


def _as_descriptor(d: Tensor | list[float], what: str) -> Tensor:
    d = torch.as_tensor(d, dtype=torch.float32)
    if d.dim() != 1 or d.numel() == 0:
        raise ValueError(f"interpolation: {what} must be a non-empty descriptor of shape (K,), got {tuple(d.shape)}")
    if not torch.isfinite(d).all() or (d < 0).any() or (d > 1).any():
        raise ValueError(f"interpolation: {what} must have entries in [0, 1], got {d.tolist()}")
    return d


def descriptor_path(start: Tensor | list[float], end: Tensor | list[float], steps: int = 5) -> Tensor:
    """Evenly spaced descriptors ``(1 - t) * start + t * end`` for ``t`` in ``linspace(0, 1, steps)``.

    Args:
        start, end: descriptors ``(K,)`` with entries in [0, 1].
        steps: number of points, at least 2 (both end points included).

    Returns:
        ``(steps, K)``; row 0 equals ``start`` and the last row equals ``end`` exactly.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"interpolation: steps must be an integer >= 2, got {steps!r}")
    a, b = _as_descriptor(start, "start"), _as_descriptor(end, "end")
    if a.shape != b.shape:
        raise ValueError(f"interpolation: start {tuple(a.shape)} and end {tuple(b.shape)} differ in length")
    t = torch.linspace(0, 1, steps).unsqueeze(1)
    path = (1 - t) * a + t * b
    path[0], path[-1] = a, b  # exact end points, no rounding
    return path.clamp(0, 1)


@torch.no_grad()
def interpolation_curve(encoder: InvarianceEncoder, x: Tensor, start: Tensor, end: Tensor, steps: int = 5) -> list[dict]:
    """Features along ``(1 - t) * start + t * end``: cosine to each end point per step.

    Args:
        encoder: any encoder (put in eval mode here).
        x: input batch ``(B, C, H, W)``.
        start, end: descriptors ``(K,)``.
        steps: points on the path (>= 2).

    Returns:
        One dict per step: ``t``, ``cosine_to_start``, ``cosine_to_end`` (mean over the batch).
    """
    path = descriptor_path(start, end, steps).to(x.device)
    encoder.eval()
    z0, z1 = encoder(x, path[0]), encoder(x, path[-1])
    rows = []
    for t, d in zip(torch.linspace(0, 1, steps).tolist(), path):
        z = encoder(x, d)
        rows.append(
            {
                "t": t,
                "cosine_to_start": float(F.cosine_similarity(z, z0, dim=1).mean()),
                "cosine_to_end": float(F.cosine_similarity(z, z1, dim=1).mean()),
            }
        )
    return rows


def score_curve(fn: Callable[[Tensor], float], start: Tensor | list[float], end: Tensor | list[float],
                steps: int = 5) -> list[dict]:
    """Evaluate ``fn`` at each descriptor of :func:`descriptor_path`.

    Args:
        fn: maps a descriptor ``(K,)`` to a number, e.g. the validation accuracy of a probe
            refitted (or a fitted readout evaluated) with that descriptor fixed.
        start, end: descriptors ``(K,)``.
        steps: points on the path (>= 2).

    Returns:
        One dict per step: ``t``, ``descriptor`` (list of K floats), ``score``.
    """
    if not callable(fn):
        raise TypeError(f"score_curve: fn must be callable, got {type(fn).__name__}")
    path = descriptor_path(start, end, steps)
    rows = []
    for t, d in zip(torch.linspace(0, 1, steps).tolist(), path):
        score = float(fn(d.clone()))
        rows.append({"t": t, "descriptor": [float(v) for v in d], "score": score})
    return rows


__all__ = ["descriptor_path", "interpolation_curve", "score_curve"]
