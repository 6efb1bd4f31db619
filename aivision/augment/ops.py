"""Batched geometric and filtering operations with per-image parameters (any device).

Crop, flip and resize are one affine ``grid_sample`` per batch (bilinear, half-pixel
centres, border clamping: the same sampling positions as torchvision's bilinear resize of
the cropped box). There is no antialiasing: shrinking a box by more than about 2x aliases
(the per-image torchvision backend antialiases), so feed images whose side is close to
the output size (e.g. 256 px for 224 px views, as the usual ImageNet pipelines do).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def crop_flip_resize(x: Tensor, top: Tensor, left: Tensor, height: Tensor, width: Tensor,
                     flip: Tensor, size: int) -> Tensor:
    """Cut a box out of each image, mirror it if asked, and resize it to ``size x size``.

    Output pixel centre ``u`` (fraction ``(u + 0.5) / size`` of the view) samples the input
    at fraction ``left + width * f`` (``f`` mirrored to ``1 - f`` when flipped), likewise
    for rows; see :func:`aivision.augment.targets.transform_points`.

    Args:
        x: ``(B, C, H, W)`` float.
        top, left, height, width: ``(B,)`` box as fractions of the input height / width.
        flip: ``(B,)`` bool, mirror horizontally.
        size: output side.

    Returns:
        ``(B, C, size, size)``.
    """
    n = x.shape[0]
    dt, dev = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32, x.device
    top, left, height, width = (v.to(dev, dt) for v in (top, left, height, width))
    sign = 1.0 - 2.0 * flip.to(dev, dt)
    theta = torch.zeros(n, 2, 3, dtype=dt, device=dev)
    theta[:, 0, 0] = sign * width
    theta[:, 0, 2] = 2.0 * left + width - 1.0
    theta[:, 1, 1] = height
    theta[:, 1, 2] = 2.0 * top + height - 1.0
    grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def gaussian_kernels(sigma: Tensor, kernel_size: int) -> Tensor:
    """``(B,)`` sigmas -> ``(B, kernel_size)`` normalised 1-D Gaussian kernels (odd size)."""
    t = torch.arange(kernel_size, dtype=sigma.dtype, device=sigma.device) - (kernel_size - 1) / 2
    k = torch.exp(-0.5 * (t.unsqueeze(0) / sigma.unsqueeze(1)) ** 2)
    return k / k.sum(dim=1, keepdim=True)


def gaussian_blur(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Separable Gaussian blur with one sigma per image, reflect padding.

    Both passes are a grouped convolution with one group per (image, channel), so the
    whole batch is two convolution calls.

    Args:
        x: ``(B, C, H, W)`` float; ``kernel_size // 2`` must be below H and W.
        sigma: ``(B,)`` standard deviations in pixels.
        kernel_size: odd.

    Returns:
        ``(B, C, H, W)`` blurred copy.
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"gaussian_blur: kernel_size must be odd, got {kernel_size}")
    n, c, h, w = x.shape
    if kernel_size == 1 or n == 0:
        return x.clone()
    k = gaussian_kernels(sigma.to(x.device, torch.float32), kernel_size).to(x.dtype)
    weight = k.repeat_interleave(c, dim=0)                                # (B*C, k)
    pad = kernel_size // 2
    y = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, weight.view(n * c, 1, kernel_size, 1), groups=n * c)
    y = F.conv2d(y, weight.view(n * c, 1, 1, kernel_size), groups=n * c)
    return y.view(n, c, h, w)


def solarize(x: Tensor, threshold: float) -> Tensor:
    """``x -> 1 - x`` wherever ``x >= threshold`` (values in ``[0, 1]``)."""
    return torch.where(x >= threshold, 1.0 - x, x)


def normalize(x: Tensor, mean: list[float] | tuple[float, ...], std: list[float] | tuple[float, ...]) -> Tensor:
    """Per-channel ``(x - mean) / std`` of ``(B, 3, H, W)``."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def to_unit_float(x: Tensor) -> Tensor:
    """uint8 ``[0, 255]`` -> float32 ``[0, 1]``; float tensors are returned as they are."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if not x.is_floating_point():
        raise ValueError(f"images must be float in [0, 1] or uint8, got dtype {x.dtype}")
    return x


def check_images(x: Tensor, where: str) -> None:
    """Raise ValueError unless ``x`` is a ``(B, 3, H, W)`` float or uint8 tensor."""
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{where}: images must be a (B, 3, H, W) tensor, got {shape}")
    if not (x.is_floating_point() or x.dtype == torch.uint8):
        raise ValueError(f"{where}: images must be float in [0, 1] or uint8, got dtype {x.dtype}")
