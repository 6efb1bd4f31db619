"""Per-image random parameters of the six vision augmentations, from an explicit generator.

Both backends consume exactly these parameters, so the same generator seed gives the same
views whichever backend applies them, and the AugSelf / LooC baselines can read them back
or re-apply them. Every tensor has shape ``(B,)`` and lives on the generator's device
(normally a CPU generator: parameters are tiny and CPU draws are identical everywhere).

Parameter names per augmentation:

============  ===============================================================================
crop          ``top``, ``left``, ``height``, ``width``: the box as fractions of the input's
              height / width. With a known ``image_size`` the box is whole pixels (as
              torchvision's ``RandomResizedCrop``), so ``top * H`` etc. are integers.
flip          (only ``applied``)
color_jitter  ``brightness``, ``contrast``, ``saturation`` (multiplicative factors),
              ``hue`` (shift, fraction of the colour wheel), ``order`` (int64 index into
              ``JITTER_ORDERS``: the order the four operations are applied in)
grayscale     (only ``applied``)
blur          ``sigma`` (pixels of the output view)
solarize      (only ``applied``)
============  ===============================================================================

Each augmentation's dict also has ``applied`` (bool): the descriptor bit is 1 for that
image and the probability draw succeeded. Where ``applied`` is False the values are still
the sampled ones but are not used.

Draw order (fixed, so a seed reproduces everything): for each augmentation in
``VISION_AUGMENTATIONS`` order, first the ``(B,)`` probability draw, then its values:
crop ``(B, attempts)`` areas, ``(B, attempts)`` log-ratios, ``(B,)`` top and ``(B,)`` left
positions; color_jitter brightness, contrast, saturation, hue ``(B,)`` each then ``(B, 4)``
order keys; blur sigma ``(B,)``.
"""
from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from aivision.augment.config import VISION_AUGMENTATIONS, CropConfig, VisionAugmentConfig

Params = dict[str, dict[str, Tensor]]

JITTER_OPS: tuple[str, ...] = ("brightness", "contrast", "saturation", "hue")
# All 24 orders of the four jitter operations, lexicographic; index 0 is the fixed order.
JITTER_ORDERS: tuple[tuple[int, ...], ...] = tuple(itertools.permutations(range(4)))


def _uniform(shape: tuple[int, ...], low: float, high: float, g: torch.Generator) -> Tensor:
    """float64 uniform draws in ``[low, high)``."""
    return low + (high - low) * torch.rand(shape, generator=g, device=g.device, dtype=torch.float64)


def order_codes(perms: Tensor) -> Tensor:
    """``(B, 4)`` permutations of 0..3 -> ``(B,)`` int64 indices into ``JITTER_ORDERS``."""
    table = torch.full((256,), -1, dtype=torch.int64)
    for code, perm in enumerate(JITTER_ORDERS):
        table[sum(v * 4 ** i for i, v in enumerate(perm))] = code
    keys = (perms.long().cpu() * (4 ** torch.arange(4))).sum(1)
    return table[keys].to(perms.device)


def order_table(device: torch.device | str = "cpu") -> Tensor:
    """``(24, 4)`` int64: row ``code`` lists the jitter operations in application order."""
    return torch.tensor(JITTER_ORDERS, dtype=torch.int64, device=device)


def crop_boxes(cfg: CropConfig, n: int, g: torch.Generator,
               image_size: tuple[int, int] | None = None) -> dict[str, Tensor]:
    """Random resized crop boxes, torchvision's rule, vectorised over the batch.

    Up to ``cfg.attempts`` (area, ratio) pairs are tried per image and the first box that
    fits is kept; images where none fits get the central crop with the ratio clamped into
    range. With ``image_size = (H, W)`` sides and offsets are whole pixels; without it the
    image is taken as square and the box is continuous.

    Returns:
        ``{"top", "left", "height", "width"}``, each ``(n,)`` float32, fractions of H / W.
    """
    quantise = image_size is not None
    height, width = (float(image_size[0]), float(image_size[1])) if quantise else (1.0, 1.0)
    shape = (n, cfg.attempts)
    area = _uniform(shape, cfg.min_scale, cfg.max_scale, g) * height * width
    ratio = torch.exp(_uniform(shape, math.log(cfg.min_ratio), math.log(cfg.max_ratio), g))
    u_top = torch.rand(n, generator=g, device=g.device, dtype=torch.float64)
    u_left = torch.rand(n, generator=g, device=g.device, dtype=torch.float64)
    w, h = torch.sqrt(area * ratio), torch.sqrt(area / ratio)
    if quantise:
        w, h = torch.round(w), torch.round(h)
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.int64).argmax(dim=1, keepdim=True)
    ok = fits.any(dim=1)
    in_ratio = width / height
    if in_ratio < cfg.min_ratio:
        fw, fh = width, width / cfg.min_ratio
    elif in_ratio > cfg.max_ratio:
        fw, fh = height * cfg.max_ratio, height
    else:
        fw, fh = width, height
    if quantise:
        fw, fh = float(round(fw)), float(round(fh))
    w = torch.where(ok, w.gather(1, first).squeeze(1), torch.full_like(u_top, fw))
    h = torch.where(ok, h.gather(1, first).squeeze(1), torch.full_like(u_top, fh))
    if quantise:
        top = torch.minimum(torch.floor(u_top * (height - h + 1)), height - h)
        left = torch.minimum(torch.floor(u_left * (width - w + 1)), width - w)
        top = torch.where(ok, top, torch.floor((height - h) / 2))
        left = torch.where(ok, left, torch.floor((width - w) / 2))
    else:
        top = torch.where(ok, u_top * (height - h), (height - h) / 2)
        left = torch.where(ok, u_left * (width - w), (width - w) / 2)
    return {"top": (top / height).float(), "left": (left / width).float(),
            "height": (h / height).float(), "width": (w / width).float()}


def sample_params(config: VisionAugmentConfig, active: Tensor, generator: torch.Generator,
                  image_size: tuple[int, int] | None = None) -> Params:
    """Draw parameters for a batch.

    Args:
        config: strengths and probabilities.
        active: ``(B, 6)`` bool, which augmentations each image may use (descriptor bits
            mapped to ``VISION_AUGMENTATIONS`` columns).
        generator: source of all randomness; draws happen in the fixed order documented in
            this module, so the same seed and batch size give the same parameters.
        image_size: ``(H, W)`` of the input images, so crop boxes are whole pixels and
            respect the aspect ratio; None takes the image as square (continuous boxes).

    Returns:
        ``{augmentation name: {param name: (B,) tensor}}`` for all six augmentations.
    """
    if active.dim() != 2 or active.shape[1] != len(VISION_AUGMENTATIONS):
        raise ValueError(f"active must be (B, {len(VISION_AUGMENTATIONS)}), got {tuple(active.shape)}")
    n = active.shape[0]
    g = generator
    dev = g.device
    active = active.to(dev, torch.bool)
    out: Params = {}
    for k, name in enumerate(VISION_AUGMENTATIONS):
        cfg = config.of(name)
        fire = torch.rand(n, generator=g, device=dev) < cfg.p
        if name == "crop":
            p = crop_boxes(cfg, n, g, image_size)
        elif name == "color_jitter":
            p = {key: _uniform((n,), max(0.0, 1.0 - s), 1.0 + s, g).float()
                 for key, s in (("brightness", cfg.brightness), ("contrast", cfg.contrast),
                                ("saturation", cfg.saturation))}
            p["hue"] = _uniform((n,), -cfg.hue, cfg.hue, g).float()
            perms = torch.rand((n, 4), generator=g, device=dev).argsort(dim=1)
            p["order"] = order_codes(perms) if cfg.random_order else torch.zeros(n, dtype=torch.int64, device=dev)
        elif name == "blur":
            p = {"sigma": _uniform((n,), cfg.min_sigma, cfg.max_sigma, g).float()}
        elif name in ("flip", "grayscale", "solarize"):
            p = {}
        else:  # pragma: no cover - VISION_AUGMENTATIONS and this table are kept in step
            raise KeyError(name)
        p["applied"] = fire & active[:, k]
        out[name] = p
    return out


def check_params(params: Params, n: int, where: str) -> None:
    """Raise ValueError unless ``params`` has every augmentation with ``(n,)`` tensors."""
    for name in VISION_AUGMENTATIONS:
        if name not in params or "applied" not in params[name]:
            raise ValueError(f"{where}: params lacks {name!r} or its 'applied' mask")
        for key, value in params[name].items():
            if value.shape != (n,):
                raise ValueError(f"{where}: params[{name!r}][{key!r}] has shape "
                                 f"{tuple(value.shape)}, expected ({n},)")
