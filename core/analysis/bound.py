"""The generalisation bound of Theorem 5.1 (amortised invariance learning).

For a 1-Lipschitz loss with values in ``[0, M]``, a linear readout ``phi`` with
``||phi|| <= B`` on features with ``||f(x)|| <= X``, ``c`` classes, ``n`` training examples
and a finite descriptor space ``I`` (the theorem's ``I = {0,1}^K``, so ``|I| = 2**K``),
with probability at least ``1 - delta``::

    risk <= empirical risk + 2 * sqrt(2c) * X * B / sqrt(n) + 3 * M * sqrt(ln(|I| / delta) / (2n))

A linear readout on one fixed feature extractor has the same bound with ``|I|`` replaced by 2
(``ln(2 / delta)``): pass ``num_descriptors=2``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def _number(value: float, name: str, low: float | None = None, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"generalisation bound: {name} must be a finite number, got {value!r}")
    if low is not None and (value <= low if strict else value < low):
        raise ValueError(f"generalisation bound: {name} must be {'>' if strict else '>='} {low}, got {value!r}")
    return float(value)


def _count(value: int, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"generalisation bound: {name} must be an integer >= {low}, got {value!r}")
    return value


def bound_terms(empirical_risk: float, n: int, num_classes: int, feature_norm: float, weight_norm: float,
                loss_max: float, num_descriptors: int, delta: float = 0.05) -> dict[str, float]:
    """The parts of Theorem 5.1's bound.

    Args:
        empirical_risk: training loss, in ``[0, loss_max]``.
        n: training examples (>= 1).
        num_classes: c (>= 1).
        feature_norm: X, a bound on ``||f(x)||`` (>= 0).
        weight_norm: B, a bound on the readout's norm (>= 0).
        loss_max: M, the loss's upper bound (> 0).
        num_descriptors: |I| (>= 1): ``2**K`` for the amortised model, 2 for a linear readout.
        delta: failure probability, ``0 < delta < 1``.

    Returns:
        ``empirical_risk``, ``complexity`` (the Rademacher term), ``confidence`` (the
        ``ln(|I| / delta)`` term) and ``bound`` (their sum).
    """
    n = _count(n, "n", 1)
    c = _count(num_classes, "num_classes", 1)
    size = _count(num_descriptors, "num_descriptors", 1)
    x = _number(feature_norm, "feature_norm", 0.0)
    b = _number(weight_norm, "weight_norm", 0.0)
    m = _number(loss_max, "loss_max", 0.0, strict=True)
    risk = _number(empirical_risk, "empirical_risk", 0.0)
    if risk > m:
        raise ValueError(f"generalisation bound: empirical_risk {risk} exceeds loss_max {m}")
    d = _number(delta, "delta", 0.0, strict=True)
    if d >= 1:
        raise ValueError(f"generalisation bound: delta must be < 1, got {delta!r}")
    complexity = 2 * math.sqrt(2 * c) * x * b / math.sqrt(n)
    confidence = 3 * m * math.sqrt(math.log(size / d) / (2 * n))
    return {"empirical_risk": risk, "complexity": complexity, "confidence": confidence,
            "bound": risk + complexity + confidence}


def generalisation_bound(empirical_risk: float, n: int, num_classes: int, feature_norm: float,
                         weight_norm: float, loss_max: float, num_descriptors: int, delta: float = 0.05) -> float:
    """Theorem 5.1's upper bound on the risk (arguments as :func:`bound_terms`)."""
    return bound_terms(empirical_risk, n, num_classes, feature_norm, weight_norm, loss_max,
                       num_descriptors, delta)["bound"]


def bound_from_readout(features: Tensor, weight: Tensor, empirical_risk: float, num_descriptors: int,
                       loss_max: float = 1.0, delta: float = 0.05) -> dict[str, float]:
    """Theorem 5.1 for a fitted linear readout on its training features.

    ``X = max_i ||f(x_i)||_2`` over the training features and ``B = ||W||_F`` (the Frobenius
    norm, which bounds the readout's operator norm, so the bound stays valid); ``n`` is the
    number of feature rows and ``c`` the number of readout rows.

    Args:
        features: ``(n, D)`` training features the readout was fitted on.
        weight: ``(c, D)`` readout weight (the bias is not part of the theorem's ``phi``).
        empirical_risk: the readout's training loss, in ``[0, loss_max]`` (e.g. 0-1 error).
        num_descriptors: |I|: ``2**K`` with a learned descriptor, 2 for a plain linear readout.
        loss_max: M. delta: failure probability.

    Returns:
        :func:`bound_terms` plus ``feature_norm``, ``weight_norm``, ``n``, ``num_classes``,
        ``num_descriptors`` and ``delta``.
    """
    if not isinstance(features, Tensor) or features.dim() != 2 or features.shape[0] < 1:
        raise ValueError(f"bound_from_readout: features must be (n >= 1, D), got {getattr(features, 'shape', features)!r}")
    if not isinstance(weight, Tensor) or weight.dim() != 2 or weight.shape[1] != features.shape[1]:
        raise ValueError(f"bound_from_readout: weight must be (c, D) with D = {features.shape[1]}, "
                         f"got {getattr(weight, 'shape', weight)!r}")
    x = float(features.detach().double().norm(dim=1).max())
    b = float(torch.linalg.matrix_norm(weight.detach().double(), ord="fro"))
    n, c = int(features.shape[0]), int(weight.shape[0])
    terms = bound_terms(float(empirical_risk), n, c, x, b, float(loss_max), num_descriptors, delta)
    return {**terms, "feature_norm": x, "weight_norm": b, "n": n, "num_classes": c,
            "num_descriptors": num_descriptors, "delta": float(delta)}


__all__ = ["bound_from_readout", "bound_terms", "generalisation_bound"]
