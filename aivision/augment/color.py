"""Batched colour operations with one factor per image (any device, no loop over images).

All functions take float RGB images ``(B, 3, H, W)`` in ``[0, 1]`` and factors ``(B,)``,
and follow the definitions of ``torchvision.transforms.v2.functional`` (luma weights
0.2989 / 0.587 / 0.114, blends clamped to ``[0, 1]``, hue shifted in HSV space) so the
per-image reference backend agrees with them to float rounding.
"""
from __future__ import annotations

import torch
from torch import Tensor

from aivision.augment.sampling import order_table

LUMA = (0.2989, 0.587, 0.114)


def luma(x: Tensor) -> Tensor:
    """``(B, 3, H, W)`` -> ``(B, 1, H, W)`` weighted channel sum."""
    r, g, b = x.unbind(dim=-3)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(-3)


def grayscale(x: Tensor) -> Tensor:
    """``(B, 3, H, W)`` -> ``(B, 3, H, W)`` with every channel equal to the luma."""
    return luma(x).expand_as(x).contiguous()


def blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """``factor * x + (1 - factor) * other`` clamped to ``[0, 1]``; ``factor`` ``(B,)``.

    Computed with ``torch.lerp``, which returns ``x`` exactly where the factor is 1."""
    f = factor.to(x.dtype).view(-1, 1, 1, 1)
    return torch.lerp(other.expand_as(x), x, f).clamp_(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    """Scale all values by ``factor`` ``(B,)``."""
    return blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Blend with the image's mean luma (one grey level per image)."""
    return blend(x, luma(x).mean(dim=(-3, -2, -1), keepdim=True), factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Blend with the per-pixel luma (0 gives grey, > 1 over-saturates)."""
    return blend(x, luma(x), factor)


def rgb_to_hsv(x: Tensor) -> Tensor:
    """``(B, 3, H, W)`` RGB -> HSV stacked in channels, each in ``[0, 1]`` (grey: hue 0)."""
    r, g, b = x.unbind(dim=-3)
    maxc, _ = x.max(dim=-3)
    minc, _ = x.min(dim=-3)
    delta = maxc - minc
    chroma = delta > 0
    sat = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    d = torch.where(chroma, delta, torch.ones_like(delta))
    hue = torch.where(maxc == r, (g - b) / d,
                      torch.where(maxc == g, (b - r) / d + 2.0, (r - g) / d + 4.0))
    hue = torch.where(chroma, torch.remainder(hue / 6.0, 1.0), torch.zeros_like(hue))
    return torch.stack((hue, sat, maxc), dim=-3)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_hsv`: ``(B, 3, H, W)`` HSV -> RGB.

    Channel ``c`` is ``v - v * s * clamp(min(k, 4 - k), 0, 1)`` with
    ``k = (n_c + 6 h) mod 6`` and ``n = (5, 3, 1)`` for (R, G, B): a piecewise-linear
    triangle wave per channel, so no per-sector branching is needed.
    """
    h, s, v = hsv.unbind(dim=-3)
    offsets = torch.tensor([5.0, 3.0, 1.0], dtype=hsv.dtype, device=hsv.device).view(3, 1, 1)
    k = torch.remainder(offsets + 6.0 * h.unsqueeze(-3), 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
    return v.unsqueeze(-3) - (v * s).unsqueeze(-3) * ramp


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue by ``shift`` ``(B,)`` (fraction of the colour wheel, in [-0.5, 0.5]).

    Same result as ``hsv_to_rgb`` of the shifted ``rgb_to_hsv``, computed in fewer passes:
    the hue is kept in sextants (``6 h``) and ``v * s`` is the chroma ``max - min``.
    """
    r, g, b = x.unbind(dim=-3)
    maxc = torch.maximum(torch.maximum(r, g), b)
    chroma = maxc - torch.minimum(torch.minimum(r, g), b)
    inv = chroma.clamp_min(1e-12).reciprocal()          # grey pixels: numerators are exactly 0
    h6 = torch.where(r == maxc, (g - b) * inv, torch.where(g == maxc, (b - r) * inv + 2.0, (r - g) * inv + 4.0))
    h6 = h6 + 6.0 * shift.to(x.dtype).view(-1, 1, 1)
    h6 = h6 - 6.0 * torch.floor(h6 / 6.0)
    offsets = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    k = h6.unsqueeze(1) + offsets
    k = torch.where(k >= 6.0, k - 6.0, k)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return (maxc.unsqueeze(1) - chroma.unsqueeze(1) * ramp).clamp_(0.0, 1.0)


def color_jitter(x: Tensor, brightness: Tensor, contrast: Tensor, saturation: Tensor,
                 hue: Tensor, order: Tensor) -> Tensor:
    """Brightness, contrast, saturation and hue with per-image factors and order.

    Four steps; at each step every image gets the operation its order names. Brightness,
    contrast and saturation are all ``blend(x, target, factor)`` (target 0, mean luma, luma),
    so one blend per step serves all images at once; the hue step runs on the images whose
    operation it is.

    Args:
        x: ``(B, 3, H, W)`` in ``[0, 1]``.
        brightness, contrast, saturation: ``(B,)`` factors (1 = identity).
        hue: ``(B,)`` shift.
        order: ``(B,)`` int64 indices into ``sampling.JITTER_ORDERS``.

    Returns:
        ``(B, 3, H, W)`` jittered copy.
    """
    dev = x.device
    ops_host = order_table()[order.cpu()]                  # (B, 4); hue rows found without a device sync
    ops = ops_host.to(dev)
    factors = torch.stack((brightness, contrast, saturation, torch.ones_like(brightness)), 1).to(dev, x.dtype)
    for step in range(4):
        op = ops[:, step]
        lum = luma(x)
        mean = lum.mean(dim=(-2, -1), keepdim=True)
        # target: 0 (brightness), mean luma (contrast), luma (saturation; hue rows: unused)
        use_mean = (op == 1).to(x.dtype).view(-1, 1, 1, 1)
        use_lum = (op >= 2).to(x.dtype).view(-1, 1, 1, 1)
        x = blend(x, lum * use_lum + mean * use_mean, factors.gather(1, op.view(-1, 1)).squeeze(1))
        rows = (ops_host[:, step] == 3).nonzero().squeeze(1)
        if rows.numel():
            rows = rows.to(dev)
            x = x.index_copy(0, rows, adjust_hue(x.index_select(0, rows), hue.to(dev)[rows]))
    return x
