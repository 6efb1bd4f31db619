"""Fixed-strength image transforms for ``core.analysis.invariance.measure_invariance``.

Each transform ``transform(images (N, 3, S, S), strength, generator) -> (N, 3, S, S)`` applies
one augmentation to every image at one strength. Images are float in ``[0, 1]`` (the
prepared, un-normalised inputs); ``prepare`` normalises them for the encoder. Crop, flip,
colour jitter and solarize run through the batched backend's deterministic
``BatchedAugmenter.apply`` (the code pre-training uses) with parameters built here; the
others use the same batched ops of ``aivision.augment``. Parameters that are not the
strength (crop position, jitter signs and order) are drawn from the generator.

============  ===================================  ==========================================
name          strength                             at that strength
============  ===================================  ==========================================
crop          area fraction kept (1 = identity)    square box of side ``sqrt(a)``, random
                                                   position, resized back to S x S
flip          1 (0 = identity)                     horizontal mirror of every image
color_jitter  fraction of the configured range     brightness, contrast, saturation factors
              (0 = identity, 1 = its edge)         ``1 +- s * range``, hue ``+- s * hue``,
                                                   signs and order drawn per image
grayscale     blend towards the luma (0..1)        1 = the pre-training grayscale
blur          Gaussian sigma in pixels (0 = id.)   kernel ``>= 2 ceil(3 sigma) + 1``
rotation      degrees counter-clockwise (0 = id.)  about the centre, bilinear, black corners
solarize      threshold in [0, 1]                  values ``>= threshold`` inverted
============  ===================================  ==========================================
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from aivision.augment.batched import BatchedAugmenter
from aivision.augment.color import adjust_saturation
from aivision.augment.config import VISION_AUGMENTATIONS, VisionAugmentConfig
from aivision.augment.ops import gaussian_blur, normalize
from aivision.augment.sampling import Params
from core.analysis.invariance import parse_strength_grids

MEASURE_TRANSFORMS: tuple[str, ...] = ("crop", "flip", "color_jitter", "grayscale", "blur", "rotation", "solarize")
DEFAULT_TRANSFORMS: tuple[str, ...] = ("crop", "flip", "color_jitter", "grayscale", "blur", "rotation")
STRENGTH_UNITS = {"crop": "area fraction", "flip": "flipped", "color_jitter": "jitter range fraction",
                  "grayscale": "grey blend", "blur": "sigma px", "rotation": "degrees", "solarize": "threshold"}
IDENTITY: dict[str, float | None] = {"crop": 1.0, "flip": 0.0, "color_jitter": 0.0, "grayscale": 0.0, "blur": 0.0,
                                     "rotation": 0.0, "solarize": None}
# Default grids spanning the pre-training ranges (identity strengths left out).
DEFAULT_STRENGTHS: dict[str, tuple[float, ...]] = {
    "crop": (0.9, 0.7, 0.5, 0.35, 0.2),
    "flip": (1.0,),
    "color_jitter": (0.25, 0.5, 0.75, 1.0),
    "grayscale": (0.25, 0.5, 0.75, 1.0),
    "blur": (0.5, 1.0, 1.5, 2.0),
    "rotation": (-30.0, -15.0, -5.0, 5.0, 15.0, 30.0),
    "solarize": (0.9, 0.75, 0.5),
}


def _check_name(name: str) -> None:
    if name not in MEASURE_TRANSFORMS:
        raise KeyError(f"unknown transform {name!r}; the vision transforms are {list(MEASURE_TRANSFORMS)}")


def _check_strength(name: str, s: float) -> None:
    ok = {"crop": 0.0 < s <= 1.0, "flip": s in (0.0, 1.0), "color_jitter": 0.0 <= s < math.inf,
          "grayscale": 0.0 <= s <= 1.0, "blur": 0.0 <= s < math.inf, "rotation": math.isfinite(s),
          "solarize": 0.0 <= s <= 1.0}[name]
    if not ok:
        raise ValueError(f"{name}: strength {s} ({STRENGTH_UNITS[name]}) is out of range")


def _off_params(n: int) -> Params:
    """Parameters with every augmentation off (values are identity placeholders)."""
    one, zero = torch.ones(n), torch.zeros(n)
    params: Params = {name: {"applied": torch.zeros(n, dtype=torch.bool)} for name in VISION_AUGMENTATIONS}
    params["crop"].update(top=zero.clone(), left=zero.clone(), height=one.clone(), width=one.clone())
    params["color_jitter"].update(brightness=one.clone(), contrast=one.clone(), saturation=one.clone(),
                                  hue=zero.clone(), order=torch.zeros(n, dtype=torch.long))
    params["blur"]["sigma"] = one.clone()
    return params


def strength_params(name: str, strength: float, n: int, config: VisionAugmentConfig,
                    generator: torch.Generator) -> Params:
    """Parameters for ``BatchedAugmenter.apply``: ``name`` (crop, flip, color_jitter or
    solarize) applied to all ``n`` images at ``strength``, every other augmentation off.

    Returns:
        ``{augmentation: {param: (n,) tensor}}`` on the CPU.
    """
    _check_name(name)
    _check_strength(name, float(strength))
    g = generator
    params = _off_params(n)
    p = params[name]
    if name == "crop":
        side = math.sqrt(float(strength))
        p["height"], p["width"] = torch.full((n,), side), torch.full((n,), side)
        p["top"] = torch.rand(n, generator=g, device=g.device).cpu() * (1.0 - side)
        p["left"] = torch.rand(n, generator=g, device=g.device).cpu() * (1.0 - side)
    elif name == "color_jitter":
        cfg = config.color_jitter
        signs = torch.where(torch.rand((n, 4), generator=g, device=g.device).cpu() < 0.5, -1.0, 1.0)
        for k, key in enumerate(("brightness", "contrast", "saturation")):
            p[key] = (1.0 + signs[:, k] * float(strength) * getattr(cfg, key)).clamp_min(0.0)
        p["hue"] = (signs[:, 3] * float(strength) * cfg.hue).clamp(-0.5, 0.5)
        if cfg.random_order:
            p["order"] = torch.randint(24, (n,), generator=g, device=g.device).cpu()
    p["applied"] = torch.ones(n, dtype=torch.bool)
    return params


def rotate(x: Tensor, degrees: float) -> Tensor:
    """Rotate ``(N, C, H, W)`` counter-clockwise about the centre (bilinear, zero corners)."""
    a = math.radians(degrees)
    h, w = x.shape[-2:]
    theta = torch.zeros(x.shape[0], 2, 3, dtype=torch.float32, device=x.device)
    # affine_grid maps output to input in normalised coordinates; the aspect terms keep
    # the rotation rigid on non-square images.
    theta[:, 0, 0], theta[:, 0, 1] = math.cos(a), -math.sin(a) * h / w
    theta[:, 1, 0], theta[:, 1, 1] = math.sin(a) * w / h, math.cos(a)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)


class VisionStrengthTransform:
    """One transform at a fixed strength: ``transform(images (N, 3, S, S), strength, generator)``.

    Args:
        name: one of ``MEASURE_TRANSFORMS``.
        config: augmentation settings (jitter ranges and order, solarize is given by the
            strength); probabilities are not used, size and normalisation are overridden.
    """

    def __init__(self, name: str, config: VisionAugmentConfig | None = None) -> None:
        _check_name(name)
        self.name = name
        self.config = config or VisionAugmentConfig()

    def __call__(self, images: Tensor, strength: float, generator: torch.Generator) -> Tensor:
        """The transformed float copy (same shape and device), deterministic given the
        generator's state."""
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.name}: images must be (N, 3, S, S), got {getattr(images, 'shape', images)}")
        strength = float(strength)
        _check_strength(self.name, strength)
        x = images.float()
        if strength == IDENTITY[self.name]:
            return x.clone()
        if self.name == "grayscale":
            return adjust_saturation(x, torch.full((x.shape[0],), 1.0 - strength, device=x.device))
        if self.name == "blur":
            size = min(x.shape[-2:])
            kernel = max(self.config.blur.kernel_for(size), 2 * math.ceil(3 * strength) + 1)
            kernel = min(kernel, 2 * ((size - 1) // 2) + 1)
            return gaussian_blur(x, torch.full((x.shape[0],), strength), kernel)
        if self.name == "rotation":
            return rotate(x, strength)
        cfg = dataclasses.replace(self.config, size=x.shape[-1], normalize=False)
        if self.name == "solarize":
            cfg = dataclasses.replace(cfg, solarize=dataclasses.replace(cfg.solarize, threshold=strength))
        params = strength_params(self.name, strength, x.shape[0], cfg, generator)
        return BatchedAugmenter(cfg).apply(x, params)

    def __repr__(self) -> str:
        return f"VisionStrengthTransform({self.name!r}, unit={STRENGTH_UNITS[self.name]!r})"


def invariance_transforms(names: Sequence[str] = DEFAULT_TRANSFORMS, config: VisionAugmentConfig | None = None
                          ) -> dict[str, VisionStrengthTransform]:
    """``{name: VisionStrengthTransform}`` for ``names`` (default: all but solarize)."""
    return {name: VisionStrengthTransform(name, config) for name in names}


def default_strengths(names: Sequence[str] = DEFAULT_TRANSFORMS) -> dict[str, list[float]]:
    """The default strength grid of each transform in ``names``."""
    for name in names:
        _check_name(name)
    return {name: list(DEFAULT_STRENGTHS[name]) for name in names}


def parse_strengths(items: Sequence[str], base: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """Override grids with ``"name=v1,v2,..."`` items (e.g. ``"blur=1,3"``); see
    ``core.analysis.invariance.parse_strength_grids``.

    Raises:
        ValueError / KeyError: malformed item, unknown transform or a value out of range.
    """
    return parse_strength_grids(items, base, _check_name, _check_strength)


def image_prepare(mean: Sequence[float], std: Sequence[float], normalize_input: bool = True
                  ) -> Callable[[Tensor], Tensor]:
    """``prepare(images (N, 3, S, S) in [0, 1]) -> encoder input`` on the images' device."""
    def prepare(images: Tensor) -> Tensor:
        x = images.float()
        return normalize(x, list(mean), list(std)) if normalize_input else x

    return prepare
