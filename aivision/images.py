"""Fitting decoded images to a fixed square: short side resized, then centre-cropped."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def resize_center_crop(image: Tensor, size: int) -> Tensor:
    """``(3, H, W)`` uint8 or float -> ``(3, size, size)`` of the same dtype.

    The short side is resized to ``size`` (bilinear with antialiasing when shrinking), then
    the centre ``size x size`` square is cut out, as torchvision's ``Resize(size)`` +
    ``CenterCrop(size)``.

    Raises:
        ValueError: not a ``(3, H, W)`` tensor or ``size < 1``.
    """
    if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"resize_center_crop: expected an image of shape (3, H, W), got {got}")
    if size < 1:
        raise ValueError(f"resize_center_crop: size must be >= 1, got {size}")
    _, h, w = image.shape
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    out = image
    if (new_h, new_w) != (h, w):
        x = image.unsqueeze(0).float()
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=scale < 1)
        out = x.round().clamp(0, 255).to(torch.uint8)[0] if image.dtype == torch.uint8 else x[0].to(image.dtype)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return out[:, top:top + size, left:left + size].contiguous()
