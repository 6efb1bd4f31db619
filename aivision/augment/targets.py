"""What the sampled parameters did, in forms the baselines and tests consume.

* :func:`targets`: AugSelf's regression targets, one ``(B, d)`` float block per
  augmentation, encoded so that "not applied" is the identity transformation. The AugSelf
  heads predict ``targets(p1)[name] - targets(p2)[name]``.
* :func:`transform_points`: where normalised input coordinates land in the view after the
  sampled crop and flip (landmark-aware augmentation, visual checks).
"""
from __future__ import annotations

import torch
from torch import Tensor

from aivision.augment.sampling import Params

# Width of each block of :func:`targets`.
TARGET_DIMS: dict[str, int] = {"crop": 4, "flip": 1, "color_jitter": 4, "grayscale": 1, "blur": 1, "solarize": 1}


def _mask(p: dict[str, Tensor]) -> Tensor:
    return p["applied"].bool().unsqueeze(1)


def targets(params: Params) -> dict[str, Tensor]:
    """Per-augmentation regression targets with identity values where not applied.

    ==============  =============================================  ==================
    name            columns                                        identity
    ==============  =============================================  ==================
    crop            ``(top, left, height, width)`` = (y, x, h, w)   ``(0, 0, 1, 1)``
                    as fractions of the input
    flip            1 if flipped                                   ``0``
    color_jitter    ``(brightness, contrast, saturation, hue)``    ``(1, 1, 1, 0)``
    grayscale       1 if grayscaled                                ``0``
    blur            sigma in output pixels                         ``0``
    solarize        1 if solarized                                 ``0``
    ==============  =============================================  ==================

    Args:
        params: from ``sample_params`` (any device).

    Returns:
        ``{name: (B, TARGET_DIMS[name]) float32}`` on the parameters' device.
    """
    out: dict[str, Tensor] = {}
    crop = params["crop"]
    box = torch.stack([crop[k].float() for k in ("top", "left", "height", "width")], dim=1)
    identity = torch.tensor([0.0, 0.0, 1.0, 1.0], device=box.device).expand_as(box)
    out["crop"] = torch.where(_mask(crop), box, identity)
    cj = params["color_jitter"]
    factors = torch.stack([cj[k].float() for k in ("brightness", "contrast", "saturation", "hue")], dim=1)
    identity = torch.tensor([1.0, 1.0, 1.0, 0.0], device=factors.device).expand_as(factors)
    out["color_jitter"] = torch.where(_mask(cj), factors, identity)
    for name in ("flip", "grayscale", "solarize"):
        out[name] = params[name]["applied"].float().unsqueeze(1)
    blur = params["blur"]
    out["blur"] = torch.where(_mask(blur), blur["sigma"].float().unsqueeze(1), torch.zeros_like(out["flip"]))
    return out


def transform_points(points: Tensor, params: Params) -> Tensor:
    """Map points of the input image to where the view shows them.

    Coordinates are normalised ``(x, y)`` with ``(0, 0)`` the top-left corner and
    ``(1, 1)`` the bottom-right corner of the image (pixel ``i`` of ``N`` has its centre at
    ``(i + 0.5) / N``), in both the input and the view. Results outside ``[0, 1]`` are
    points the crop cut away. Appearance augmentations do not move points.

    Args:
        points: ``(B, P, 2)`` float.
        params: from ``sample_params`` for the same batch of B images.

    Returns:
        ``(B, P, 2)`` float.
    """
    if points.dim() != 3 or points.shape[-1] != 2:
        raise ValueError(f"transform_points: points must be (B, P, 2), got {tuple(points.shape)}")
    dev, dt = points.device, points.dtype if points.is_floating_point() else torch.float32
    crop = params["crop"]
    applied = crop["applied"].bool().to(dev)
    top, left, height, width = (torch.where(applied, crop[k].to(dev, dt), default)
                                for k, default in (("top", 0.0), ("left", 0.0), ("height", 1.0), ("width", 1.0)))
    x = (points[..., 0].to(dt) - left.unsqueeze(1)) / width.unsqueeze(1)
    y = (points[..., 1].to(dt) - top.unsqueeze(1)) / height.unsqueeze(1)
    flip = params["flip"]["applied"].bool().to(dev).unsqueeze(1)
    x = torch.where(flip, 1.0 - x, x)
    return torch.stack((x, y), dim=-1)
