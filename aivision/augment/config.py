"""Strengths and application probabilities of the six vision augmentations.

Defaults follow the MoCo-v2 pipeline (random resized crop, horizontal flip, colour jitter,
random grayscale, Gaussian blur) plus MoCo-v3's solarize. Every augmentation whose
descriptor bit is 1 is applied to each image independently with probability ``p``; a bit
of 0 means never. ``VisionAugmentConfig.from_yaml(path)`` reads the same structure from
YAML (an ``augment:`` top-level section is accepted), e.g.::

    size: 224
    color_jitter: {p: 0.8, brightness: 0.4, hue: 0.1}
    solarize: {p: 0.0}
    normalize: false

Solarize defaults to ``p = 0.1``: MoCo-v3 solarizes one of its two views with probability
0.2 and the other never; our two views are drawn from the same distribution, so each gets
the average. Set it to 0.0 for the plain MoCo-v2 pipeline.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.config import from_dict, load_yaml, require, require_probability

# Application order of the batched and reference backends (MoCo-v2 order; flip moved
# next to crop: it commutes with every appearance operation, all of which are pointwise or
# use mirror-symmetric kernels and padding).
VISION_AUGMENTATIONS: tuple[str, ...] = ("crop", "flip", "color_jitter", "grayscale", "blur", "solarize")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class CropConfig:
    """Random resized crop: area fraction uniform in ``[min_scale, max_scale]``, aspect
    ratio (width / height, in pixels) log-uniform in ``[min_ratio, max_ratio]``."""
    p: float = 1.0
    min_scale: float = 0.2
    max_scale: float = 1.0
    min_ratio: float = 3.0 / 4.0
    max_ratio: float = 4.0 / 3.0
    attempts: int = 10

    def __post_init__(self) -> None:
        require_probability("crop", self.p)
        require(0.0 < self.min_scale <= self.max_scale <= 1.0,
               f"crop: need 0 < min_scale <= max_scale <= 1, got {self.min_scale}, {self.max_scale}")
        require(0.0 < self.min_ratio <= self.max_ratio,
               f"crop: need 0 < min_ratio <= max_ratio, got {self.min_ratio}, {self.max_ratio}")
        require(self.attempts >= 1, f"crop.attempts must be >= 1, got {self.attempts}")


@dataclass
class FlipConfig:
    """Horizontal flip."""
    p: float = 0.5

    def __post_init__(self) -> None:
        require_probability("flip", self.p)


@dataclass
class ColorJitterConfig:
    """Brightness, contrast and saturation factors uniform in ``[max(0, 1 - s), 1 + s]``;
    hue shift uniform in ``[-hue, hue]`` (fraction of the colour wheel, at most 0.5).

    With ``random_order`` the four are applied in a random order per image (torchvision's
    behaviour, the order is a sampled parameter); otherwise always brightness, contrast,
    saturation, hue.
    """
    p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    random_order: bool = True

    def __post_init__(self) -> None:
        require_probability("color_jitter", self.p)
        for key in ("brightness", "contrast", "saturation"):
            value = getattr(self, key)
            require(value >= 0.0, f"color_jitter.{key} must be >= 0, got {value}")
        require(0.0 <= self.hue <= 0.5, f"color_jitter.hue must be in [0, 0.5], got {self.hue}")


@dataclass
class GrayscaleConfig:
    """Replace each channel by the luma (0.2989 R + 0.587 G + 0.114 B)."""
    p: float = 0.2

    def __post_init__(self) -> None:
        require_probability("grayscale", self.p)


@dataclass
class BlurConfig:
    """Gaussian blur, sigma uniform in ``[min_sigma, max_sigma]`` pixels of the output
    image; odd kernel size ``2 * floor(kernel_fraction * size / 2) + 1`` (at least 3), or
    ``kernel_size`` when given (must be odd). Reflect padding."""
    p: float = 0.5
    min_sigma: float = 0.1
    max_sigma: float = 2.0
    kernel_fraction: float = 0.1
    kernel_size: int | None = None

    def __post_init__(self) -> None:
        require_probability("blur", self.p)
        require(0.0 < self.min_sigma <= self.max_sigma,
               f"blur: need 0 < min_sigma <= max_sigma, got {self.min_sigma}, {self.max_sigma}")
        require(0.0 < self.kernel_fraction <= 1.0,
               f"blur.kernel_fraction must be in (0, 1], got {self.kernel_fraction}")
        require(self.kernel_size is None or (self.kernel_size >= 1 and self.kernel_size % 2 == 1),
               f"blur.kernel_size must be a positive odd integer, got {self.kernel_size}")

    def kernel_for(self, size: int) -> int:
        """Kernel size (odd) for an output side of ``size`` pixels, capped at ``size``."""
        k = self.kernel_size if self.kernel_size is not None else \
            max(3, 2 * math.floor(self.kernel_fraction * size / 2) + 1)
        return min(k, 2 * ((size - 1) // 2) + 1 if size > 1 else 1)


@dataclass
class SolarizeConfig:
    """Invert every value at or above ``threshold`` (``x -> 1 - x``)."""
    p: float = 0.1
    threshold: float = 0.5

    def __post_init__(self) -> None:
        require_probability("solarize", self.p)
        require(0.0 <= self.threshold <= 1.0, f"solarize.threshold must be in [0, 1], got {self.threshold}")


@dataclass
class VisionAugmentConfig:
    """All six augmentations, the output size, normalisation and the backend.

    Attributes:
        backend: ``"batched"`` (tensor code, any device) or ``"torchvision"`` (per image,
            ``torchvision.transforms.v2.functional``; a slow reference).
        size: side of the square output views in pixels.
        normalize: subtract ``mean`` and divide by ``std`` per channel at the end.
    """
    backend: Literal["batched", "torchvision"] = "batched"
    size: int = 224
    normalize: bool = True
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    crop: CropConfig = field(default_factory=CropConfig)
    flip: FlipConfig = field(default_factory=FlipConfig)
    color_jitter: ColorJitterConfig = field(default_factory=ColorJitterConfig)
    grayscale: GrayscaleConfig = field(default_factory=GrayscaleConfig)
    blur: BlurConfig = field(default_factory=BlurConfig)
    solarize: SolarizeConfig = field(default_factory=SolarizeConfig)

    def __post_init__(self) -> None:
        require(self.size >= 1, f"size must be >= 1, got {self.size}")
        require(len(self.mean) == 3, f"mean must have 3 entries, got {self.mean}")
        require(len(self.std) == 3 and all(s > 0 for s in self.std),
               f"std must have 3 positive entries, got {self.std}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str = "augment") -> "VisionAugmentConfig":
        return from_dict(cls, data, where)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "VisionAugmentConfig":
        """Read from a YAML file; an ``augment:`` top-level section is accepted too."""
        data = load_yaml(path)
        if set(data) == {"augment"}:
            data = data["augment"]
        return from_dict(cls, data, str(path))

    def of(self, name: str) -> Any:
        """The settings of augmentation ``name`` (one of ``VISION_AUGMENTATIONS``)."""
        if name not in VISION_AUGMENTATIONS:
            raise KeyError(f"unknown vision augmentation {name!r}; allowed: {list(VISION_AUGMENTATIONS)}")
        return getattr(self, name)
