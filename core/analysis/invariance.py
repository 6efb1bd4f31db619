"""How invariant is an encoder, under a given descriptor, to each transform of its input?

Following Ericsson et al. ("Why do self-supervised models transfer?"): for every transform
and strength, compare the features of the clean inputs with those of their transformed
copies by the mean cosine similarity and the mean Mahalanobis distance, the covariance
coming from the clean features. An invariant encoder gives cosine 1 and distance 0.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from core.downstream.checks import check_finite_features
from core.encoders.base import InvarianceEncoder
from core.errors import RunError

Transform = Callable[[Tensor, float, torch.Generator], Tensor]

RIDGE = 1e-3
"""Default relative ridge: the covariance used is ``cov + RIDGE * (trace(cov) / D) * I``."""


def transform_generator(seed: int, transform_index: int, strength_index: int) -> torch.Generator:
    """The CPU generator for one (transform, strength): seeded from the three integers."""
    value = ((int(seed) * 1_000_003 + int(transform_index)) * 1_000_003 + int(strength_index)) % (2**63 - 1)
    return torch.Generator().manual_seed(value)


@torch.no_grad()
def _features(encoder: InvarianceEncoder, raw: Tensor, prepare: Callable[[Tensor], Tensor], d: Tensor,
              batch_size: int, device: torch.device, names: Sequence[str] | None = None, context: str = "") -> Tensor:
    """``(N, D)`` float64 CPU features of raw inputs ``(N, ...)``.

    Raises:
        NonFiniteFeaturesError: NaN or infinite features; names the inputs (``names[i]``, else
            ``input i``) with ``context``.
    """
    out = []
    for i in range(0, raw.shape[0], batch_size):
        x = prepare(raw[i:i + batch_size].to(device)).to(device)
        out.append(encoder(x, d).double().cpu())
    z = torch.cat(out)
    return check_finite_features(z, (lambda r: names[r]) if names is not None else (lambda r: f"input {r}"), context)


def whitening_factor(clean: Tensor, ridge: float = RIDGE) -> Tensor:
    """Cholesky factor ``L`` of the ridge-regularised covariance of clean features ``(N, D)``.

    ``cov = (Z - mean)^T (Z - mean) / (N - 1) + ridge * (trace / D) * I``; the relative ridge
    makes the matrix invertible when N <= D or features are collinear, at a scale that
    follows the features'. Mahalanobis distances are then ``||L^{-1} (z - z')||``.

    Raises:
        RunError: no factor exists (non-finite or overflowing features).
    """
    z = clean.double()
    centred = z - z.mean(0)
    cov = centred.T @ centred / (z.shape[0] - 1)
    scale = float(cov.diagonal().mean())
    eye = torch.eye(cov.shape[0], dtype=cov.dtype)
    factor, info = torch.linalg.cholesky_ex(cov + max(ridge * scale, 1e-12) * eye)
    if int(info) != 0 or not bool(torch.isfinite(factor).all()):
        raise RunError(f"the covariance of the clean features (N={z.shape[0]}, D={z.shape[1]}, mean variance "
                       f"{scale:.3g}) has no Cholesky factor, so Mahalanobis distances cannot be computed; "
                       f"the features are degenerate or too large (measure more inputs, or check the encoder)")
    return factor


def mahalanobis(a: Tensor, b: Tensor, factor: Tensor) -> Tensor:
    """Per-row Mahalanobis distances ``(N,)`` between ``a`` and ``b`` ``(N, D)``, given the
    Cholesky factor of the covariance (:func:`whitening_factor`)."""
    diff = (a.double() - b.double()).T  # (D, N)
    return torch.linalg.solve_triangular(factor, diff, upper=False).norm(dim=0)


def _check_inputs(clean: Tensor, transforms: Mapping, strengths: Mapping, descriptors: Mapping,
                  batch_size: int, ridge: float) -> None:
    if not isinstance(clean, Tensor) or clean.dim() < 1 or clean.shape[0] < 2:
        raise ValueError("measure_invariance: clean must be a tensor (N, ...) with N >= 2 "
                         f"(the covariance needs two samples), got {getattr(clean, 'shape', clean)!r}")
    if not transforms or not descriptors:
        raise ValueError("measure_invariance: need at least one transform and one descriptor")
    if set(transforms) != set(strengths):
        raise ValueError(f"measure_invariance: strengths must name exactly the transforms: transforms "
                         f"{sorted(transforms)}, strengths {sorted(strengths)}")
    for name, grid in strengths.items():
        if len(grid) == 0:
            raise ValueError(f"measure_invariance: empty strength grid for transform {name!r}")
        if not callable(transforms[name]):
            raise TypeError(f"measure_invariance: transform {name!r} is not callable")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"measure_invariance: batch_size must be a positive integer, got {batch_size!r}")
    if not ridge > 0:
        raise ValueError(f"measure_invariance: ridge must be positive, got {ridge!r}")


def measure_invariance(
    encoder: InvarianceEncoder,
    clean: Tensor,
    prepare: Callable[[Tensor], Tensor],
    transforms: Mapping[str, Transform],
    strengths: Mapping[str, Sequence[float]],
    descriptors: Mapping[str, Tensor],
    batch_size: int = 64,
    seed: int = 0,
    device: str | torch.device = "cpu",
    ridge: float = RIDGE,
    names: Sequence[str] | None = None,
) -> list[dict]:
    """Cosine similarity and Mahalanobis distance between clean and transformed features.

    Each transform is applied once per strength to the whole of ``clean`` with the generator
    :func:`transform_generator` ``(seed, transform index, strength index)``, so results are
    deterministic given ``seed`` and every descriptor sees the same transformed inputs.

    Args:
        encoder: put in eval mode (BatchNorm statistics untouched).
        clean: raw inputs ``(N, ...)`` on the CPU (N >= 2; held-out data).
        prepare: raw batch (moved to ``device``) -> encoder input ``(B, C, H, W)``.
        transforms: name -> ``transform(raw (N, ...), strength, generator) -> raw (N, ...)``.
        strengths: name -> grid of strengths, one per transform.
        descriptors: label -> descriptor ``(K,)``.
        batch_size: encoder batch size.
        seed: seeds the transforms.
        device: where the encoder runs.
        ridge: relative ridge added to the clean covariance (see :func:`whitening_factor`).
        names: ``N`` names of the clean inputs (files), for the error below.

    Returns:
        One row per (descriptor, transform, strength): ``descriptor`` (label), ``transform``,
        ``strength``, ``cosine`` (mean over the N inputs), ``mahalanobis`` (mean).

    Raises:
        NonFiniteFeaturesError: NaN or infinite features of clean or transformed inputs (names
            the inputs, and the transform and strength).
        RunError: the clean features' covariance has no Cholesky factor (names the descriptor).
    """
    _check_inputs(clean, transforms, strengths, descriptors, batch_size, ridge)
    if names is not None and len(names) != clean.shape[0]:
        raise ValueError(f"measure_invariance: {len(names)} names for {clean.shape[0]} inputs")
    device = torch.device(device)
    encoder.eval()
    checked = {label: encoder.space.check(d).to(device) for label, d in descriptors.items()}
    base = {label: _features(encoder, clean, prepare, d, batch_size, device, names,
                             f" (clean inputs, descriptor {label!r})") for label, d in checked.items()}
    factors = {}
    for label, z in base.items():
        try:
            factors[label] = whitening_factor(z, ridge)
        except RunError as err:
            raise RunError(f"descriptor {label!r}: {err}") from None
    results: dict[tuple[str, str, int], dict] = {}
    for t, (name, transform) in enumerate(transforms.items()):
        for s, strength in enumerate(strengths[name]):
            moved = transform(clean, float(strength), transform_generator(seed, t, s))
            if not isinstance(moved, Tensor) or moved.shape != clean.shape:
                raise ValueError(f"measure_invariance: transform {name!r} must return a tensor of shape "
                                 f"{tuple(clean.shape)}, got {getattr(moved, 'shape', type(moved).__name__)}")
            for label, d in checked.items():
                z = _features(encoder, moved, prepare, d, batch_size, device, names,
                              f" after transform {name!r} at strength {float(strength):g} (descriptor {label!r}; "
                              f"their clean features are finite: try a milder strength)")
                results[(label, name, s)] = {
                    "descriptor": label, "transform": name, "strength": float(strength),
                    "cosine": float(F.cosine_similarity(z, base[label], dim=1).mean()),
                    "mahalanobis": float(mahalanobis(z, base[label], factors[label]).mean()),
                }
    return [results[(label, name, s)] for label in checked for name in transforms
            for s in range(len(strengths[name]))]


def summarise_invariance(rows: Sequence[Mapping]) -> list[dict]:
    """Average :func:`measure_invariance` rows over strengths.

    Returns:
        One row per (descriptor, transform), in first-seen order: ``descriptor``,
        ``transform``, ``cosine``, ``mahalanobis`` (means) and ``num_strengths``.
    """
    groups: dict[tuple[str, str], list[Mapping]] = {}
    for i, row in enumerate(rows):
        missing = {"descriptor", "transform", "cosine", "mahalanobis"} - set(row)
        if missing:
            raise ValueError(f"summarise_invariance: row {i} lacks {sorted(missing)}")
        groups.setdefault((row["descriptor"], row["transform"]), []).append(row)
    if not groups:
        raise ValueError("summarise_invariance: no rows")
    return [
        {"descriptor": label, "transform": name,
         "cosine": sum(float(r["cosine"]) for r in group) / len(group),
         "mahalanobis": sum(float(r["mahalanobis"]) for r in group) / len(group),
         "num_strengths": len(group)}
        for (label, name), group in groups.items()
    ]


__all__ = ["RIDGE", "mahalanobis", "measure_invariance", "summarise_invariance", "transform_generator",
           "whitening_factor"]


def parse_strength_grids(items: Sequence[str], base: Mapping[str, Sequence[float]],
                         check_name: Callable[[str], None], check_strength: Callable[[str, float], None]
                         ) -> dict[str, list[float]]:
    """Override strength grids with ``"name=v1,v2,..."`` items (the ``--strength`` flag).

    Args:
        items: the overrides, applied in order.
        base: transform name -> its default grid; only these transforms can be overridden.
        check_name: raises (``KeyError``) for a name the modality does not know.
        check_strength: raises (``ValueError``) for a value out of the transform's range.

    Raises:
        ValueError / KeyError: malformed item, unknown or unmeasured transform, a value that is
            not a number or is out of range.
    """
    out = {k: list(v) for k, v in base.items()}
    for item in items:
        name, eq, values = item.partition("=")
        name = name.strip()
        if not eq:
            raise ValueError(f"strength grid {item!r} is not name=v1,v2,...")
        check_name(name)
        if name not in out:
            raise ValueError(f"strength grid {item!r}: {name} is not among the measured transforms {list(out)}")
        try:
            grid = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"strength grid {item!r}: values must be numbers") from None
        if not grid:
            raise ValueError(f"strength grid {item!r} has no values")
        for v in grid:
            check_strength(name, v)
        out[name] = grid
    return out
