"""Built-in procedural images with known factors, for quick runs and invariance checks.

Each image is one filled shape over a grey textured background. Five factors, each drawn
uniformly and independently per image from a hash of ``(seed, index)``, so an image
depends on nothing else (not on the batch it is rendered in):

============  ===========================================================================
shape         circle, square, triangle, cross, arrow (``SHAPES``)
colour        ``n_colours`` equally spaced hues, all at the *same luma*, so grayscale
              removes the colour completely and hue jitter blurs neighbouring classes
orientation   ``n_orientations`` angle bins (bin ``k`` points at ``360 k / n`` degrees,
              counter-clockwise from +x). Every shape carries a round hole on its
              pointing axis, so none is rotation symmetric; each is mirror symmetric about
              that axis, so a horizontal flip turns bin ``k`` into ``flip_orientation(k)``
              (``n/2 - k mod n``) and only the two vertical bins survive a flip
position      cell of a ``grid x grid`` layout (``row * grid + col``), plus a small jitter
size          radius bin, a fraction of the cell side (``sizes``)
============  ===========================================================================

The factors call for opposite invariances: shape wants colour invariance, colour wants
colour sensitivity (colour jitter and grayscale destroy it), orientation wants flip and
rotation sensitivity, position and size want crop sensitivity.

Rendering is vectorised in torch: signed distances on a pixel grid, antialiased edges.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from aivision.data.base import ImageDataset, ImageRecord
from core.config import ConfigError, from_dict

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "arrow")
FACTORS: tuple[str, ...] = ("shape", "colour", "orientation", "position", "size")
_HUE_NAMES = {0: "red", 60: "yellow", 120: "green", 180: "cyan", 240: "blue", 300: "magenta"}
_M32 = 0xFFFFFFFF


@dataclass
class SyntheticImageConfig:
    """Settings of the procedural image set.

    Attributes:
        n_images: images in the set (indices ``offset .. offset + n_images - 1``).
        size: image side in pixels.
        seed: changes every factor and the background of every image.
        offset: first index (disjoint ranges give disjoint splits).
        shapes, n_colours, n_orientations, grid, sizes: the factor values (``sizes`` are
            radii as fractions of the cell side).
        jitter: largest centre offset from the cell centre, fraction of the cell side.
        luma: luma of every foreground colour; background: mean background grey;
        texture: amplitude of the smooth background texture; noise: per-pixel noise.
    """
    n_images: int = 1000
    size: int = 64
    seed: int = 0
    offset: int = 0
    shapes: list[str] = field(default_factory=lambda: list(SHAPES))
    n_colours: int = 6
    n_orientations: int = 8
    grid: int = 3
    sizes: list[float] = field(default_factory=lambda: [0.3, 0.4, 0.5])
    jitter: float = 0.1
    luma: float = 0.3
    background: float = 0.62
    texture: float = 0.12
    noise: float = 0.03

    def __post_init__(self) -> None:
        bad = [s for s in self.shapes if s not in SHAPES]
        checks = [(self.n_images >= 0, "n_images must be >= 0"), (self.size >= 8, "size must be >= 8"),
                  (not bad and len(self.shapes) > 0, f"shapes must be a non-empty subset of {list(SHAPES)}"),
                  (self.n_colours >= 1 and self.n_orientations >= 1 and self.grid >= 1,
                   "n_colours, n_orientations and grid must be >= 1"),
                  (len(self.sizes) > 0 and all(0 < s <= 0.5 for s in self.sizes), "sizes must be in (0, 0.5]"),
                  (0 <= self.jitter <= 0.5, "jitter must be in [0, 0.5]"),
                  (0 < self.luma < 1 and 0 <= self.background <= 1, "luma in (0, 1), background in [0, 1]")]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"synthetic images: {msg}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str = "synthetic") -> "SyntheticImageConfig":
        return from_dict(cls, data, where)


def factor_names(config: SyntheticImageConfig) -> dict[str, list[str]]:
    """Class names of every factor's values, e.g. ``{"shape": ["circle", ...], ...}``."""
    hues = [round(360 * k / config.n_colours) for k in range(config.n_colours)]
    return {"shape": list(config.shapes),
            "colour": [_HUE_NAMES.get(h, f"hue{h:03d}") if config.n_colours == 6 else f"hue{h:03d}" for h in hues],
            "orientation": [f"{360 * k / config.n_orientations:g}deg" for k in range(config.n_orientations)],
            "position": [f"r{r}c{c}" for r in range(config.grid) for c in range(config.grid)],
            "size": [f"{s:g}" for s in config.sizes]}


def flip_orientation(labels: Tensor, n_orientations: int) -> Tensor:
    """Orientation bins after a horizontal flip (angle ``a -> 180 - a``); ``n`` even."""
    return torch.remainder(n_orientations // 2 - labels, n_orientations)


def palette(config: SyntheticImageConfig) -> Tensor:
    """``(n_colours, 3)`` RGB in [0, 1]: full-saturation hues scaled or whitened to ``luma``."""
    h = torch.arange(config.n_colours, dtype=torch.float64) / config.n_colours
    k = torch.remainder(torch.tensor([5.0, 3.0, 1.0], dtype=torch.float64) + 6 * h[:, None], 6)
    rgb = 1 - torch.minimum(k, 4 - k).clamp(0, 1)
    weights = torch.tensor([0.2989, 0.587, 0.114], dtype=torch.float64)  # grayscale's luma (sum 0.9999)
    lum = rgb @ weights
    darker = rgb * (config.luma / lum)[:, None]
    whiter = rgb + ((config.luma - lum) / (weights.sum() - lum))[:, None] * (1 - rgb)
    return torch.where((lum > config.luma)[:, None], darker, whiter).float()


def _mix(x: Tensor) -> Tensor:
    """32-bit integer avalanche (xor-shift-multiply) on int64 tensors holding uint32 values."""
    x = x & _M32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def _uniform(seed: int, index: Tensor, stream: int, extra: Tensor | int = 0) -> Tensor:
    """Deterministic uniforms in [0, 1) from (seed, index, stream, extra); broadcasts."""
    h = _mix(torch.as_tensor(seed & _M32) + 0x9E3779B9)
    for key in (index, stream, extra):
        h = _mix(h ^ _mix(torch.as_tensor(key, dtype=torch.int64) + 0x632BE5AB))
    return h.double() / 2.0 ** 32


def sample_factors(indices: Tensor, config: SyntheticImageConfig) -> dict[str, Tensor]:
    """Labels ``(N,)`` int64 for ``FACTORS`` plus ``jitter_x``, ``jitter_y`` ``(N,)`` float."""
    idx = torch.as_tensor(indices, dtype=torch.int64).view(-1)
    counts = {k: len(v) for k, v in factor_names(config).items()}
    out = {name: (_uniform(config.seed, idx, s) * counts[name]).long() for s, name in enumerate(FACTORS)}
    for s, key in enumerate(("jitter_x", "jitter_y"), start=len(FACTORS)):
        out[key] = ((2 * _uniform(config.seed, idx, s) - 1) * config.jitter).float()
    return out


def _box(u: Tensor, v: Tensor, a: Tensor, b: Tensor) -> Tensor:
    qx, qy = u.abs() - a, v.abs() - b
    return torch.hypot(qx.clamp(min=0), qy.clamp(min=0)) + torch.maximum(qx, qy).clamp(max=0)


def _shape_sdf(name: str, u: Tensor, v: Tensor, r: Tensor) -> Tensor:
    """Signed distance (pixels, negative inside) of a shape pointing along +u."""
    if name == "circle":
        return torch.hypot(u, v) - r
    if name == "square":
        return _box(u, v, 0.8 * r, 0.8 * r)
    if name == "cross":
        return torch.minimum(_box(u, v, r, 0.3 * r), _box(u, v, 0.3 * r, r))
    if name == "triangle":  # equilateral, circumradius 1.15 r, one vertex on +u
        edges = [math.cos(a) * u + math.sin(a) * v for a in (math.pi, math.pi / 3, -math.pi / 3)]
        return torch.stack(edges).amax(0) - 0.575 * r
    if name == "arrow":  # head from u = 0.1 r to the tip at u = r, shaft back to u = -r
        n = math.hypot(0.75, 0.9)
        head = torch.stack([(0.75 * (u - r) + 0.9 * v) / n, (0.75 * (u - r) - 0.9 * v) / n, 0.1 * r - u]).amax(0)
        return torch.minimum(head, _box(u + 0.45 * r, v, 0.55 * r, 0.3 * r))
    raise KeyError(name)


def coverage(factors: dict[str, Tensor], config: SyntheticImageConfig) -> Tensor:
    """``(N, S, S)`` float foreground coverage in [0, 1] (antialiased) of the given factors."""
    s, g = config.size, config.grid
    cell = s / g
    pos = factors["position"].long()
    cx = ((pos % g).double() + 0.5 + factors.get("jitter_x", torch.zeros(len(pos))).double()) * cell
    cy = ((pos // g).double() + 0.5 + factors.get("jitter_y", torch.zeros(len(pos))).double()) * cell
    r = (torch.tensor(config.sizes, dtype=torch.float64)[factors["size"].long()] * cell).view(-1, 1, 1)
    theta = (2 * math.pi * factors["orientation"].double() / config.n_orientations).view(-1, 1, 1)
    centres = torch.arange(s, dtype=torch.float64) + 0.5
    x = centres.view(1, 1, s) - cx.view(-1, 1, 1)
    y = cy.view(-1, 1, 1) - centres.view(1, s, 1)                       # y up
    u, v = x * torch.cos(theta) + y * torch.sin(theta), y * torch.cos(theta) - x * torch.sin(theta)
    sdf = torch.zeros(len(pos), s, s, dtype=torch.float64)
    for k, name in enumerate(config.shapes):
        mask = (factors["shape"] == k).view(-1, 1, 1)
        if bool(mask.any()):
            sdf = torch.where(mask, _shape_sdf(name, u, v, r), sdf)
    hole = torch.hypot(u - 0.45 * r, v) - 0.25 * r
    return (0.5 - torch.maximum(sdf, -hole)).clamp(0, 1).float()


def render(indices: Tensor, factors: dict[str, Tensor], config: SyntheticImageConfig) -> Tensor:
    """Images of the given factors over the backgrounds of ``indices``: uint8 ``(N, 3, S, S)``."""
    idx = torch.as_tensor(indices, dtype=torch.int64).view(-1)
    n, s, cells = len(idx), config.size, 6
    coarse = _uniform(config.seed, idx.view(-1, 1), 100, torch.arange(cells * cells).view(1, -1))
    tex = torch.nn.functional.interpolate(coarse.float().view(n, 1, cells, cells), size=(s, s),
                                          mode="bicubic", align_corners=False)
    grain = _uniform(config.seed, idx.view(-1, 1), 101, torch.arange(3 * s * s).view(1, -1)).float()
    grain = (grain.view(n, 3, s, s) - 0.5) * (2 * config.noise)
    back = config.background + config.texture * (2 * tex - 1)
    cov = coverage(factors, config).unsqueeze(1)
    colour = palette(config)[factors["colour"].long()].view(n, 3, 1, 1)
    image = (back * (1 - cov) + colour * cov + grain).clamp(0, 1)
    return (image * 255).round().to(torch.uint8)


def synthesise(indices: Sequence[int] | Tensor, config: SyntheticImageConfig | None = None,
               chunk: int = 256) -> tuple[Tensor, dict[str, Tensor]]:
    """Render images ``indices`` (deterministic given ``(config, index)``).

    Returns:
        ``(images, factors)``: uint8 ``(N, 3, S, S)`` and ``{factor: (N,) int64}`` for ``FACTORS``.
    """
    config = config or SyntheticImageConfig()
    idx = torch.as_tensor(indices, dtype=torch.int64).view(-1)
    factors = sample_factors(idx, config)
    parts = [render(idx[i:i + chunk], {k: v[i:i + chunk] for k, v in factors.items()}, config)
             for i in range(0, len(idx), chunk)]
    images = torch.cat(parts) if parts else torch.zeros(0, 3, config.size, config.size, dtype=torch.uint8)
    return images, {k: factors[k] for k in FACTORS}


# Largest set (bytes of uint8 pixels) whose images are all rendered once and kept in memory.
CACHE_BYTES = 256 * 2**20


def _label_key(label: str) -> str:
    key = "colour" if label == "color" else label
    if key not in FACTORS:
        raise ValueError(f"synthetic images: label must be one of {list(FACTORS)}, got {label!r}")
    return key


class SyntheticImages(ImageDataset):
    """The procedural set as an ``ImageDataset``: images rendered on demand in ``load``.

    ``record.label`` is the factor chosen by ``label``; every factor is in ``record.meta``
    (plus ``index``, the image's global index, and ``row``).
    """

    def __init__(self, config: SyntheticImageConfig | None = None, label: str = "shape") -> None:
        self.config = config or SyntheticImageConfig()
        self.label_factor = _label_key(label)
        idx = torch.arange(self.config.offset, self.config.offset + self.config.n_images)
        factors = {k: v.tolist() for k, v in sample_factors(idx, self.config).items() if k in FACTORS}
        records = [ImageRecord(None, factors[self.label_factor][i],
                               meta={"row": i, "index": int(idx[i]), **{k: factors[k][i] for k in FACTORS}})
                   for i in range(len(idx))]
        super().__init__("synthetic", records, factor_names(self.config)[self.label_factor])
        self._end = self.config.offset + self.config.n_images
        self._cache: Tensor | None = None  # every image, rendered on first use (see load)

    def load(self, index: int) -> Tensor:
        """Image ``index`` as RGB uint8 ``(3, S, S)``.

        Sets up to ``CACHE_BYTES`` are rendered once, in batches of 256, on the first call
        (measured on a 2-core CPU: about 12 ms per image one at a time, 2.5 ms in batches);
        larger ones render each image on demand."""
        row = self.records[index].meta["row"]
        if self._cache is None and len(self) * 3 * self.config.size ** 2 <= CACHE_BYTES:
            self._cache = torch.cat([synthesise(range(start, min(start + 256, self._end)), self.config)[0]
                                     for start in range(self.config.offset, self._end, 256)])
        if self._cache is not None:
            return self._cache[row].clone()
        return synthesise([self.records[index].meta["index"]], self.config)[0][0]

    def images(self, positions: Sequence[int] | None = None) -> Tensor:
        """Several images at once (all by default): uint8 ``(N, 3, S, S)``."""
        rows = range(len(self)) if positions is None else positions
        return synthesise([self.records[int(i)].meta["index"] for i in rows], self.config)[0]

    def factor_labels(self) -> dict[str, np.ndarray]:
        """``{factor: (N,) int64}`` for every factor of the records."""
        return {k: np.array([r.meta[k] for r in self.records], dtype=np.int64) for k in FACTORS}


def read_synthetic(root: str | Path | None = None, *, n_images: int | str = 1000, size: int | str = 64,
                   seed: int | str = 0, offset: int | str = 0, label: str = "shape") -> SyntheticImages:
    """Reader-registry entry (``synthetic:?n_images=500&label=colour``); ``root`` is unused.

    Numeric options may be strings (as parsed from a URL-like spec).
    """
    config = SyntheticImageConfig(n_images=int(n_images), size=int(size), seed=int(seed), offset=int(offset))
    return SyntheticImages(config, label=label)


def write_synthetic(out_dir: str | Path, config: SyntheticImageConfig | None = None,
                    label: str = "shape", chunk: int = 256) -> Path:
    """Write the set as ``out_dir/<class name>/<index>.png`` plus ``factors.csv``.

    Returns:
        ``out_dir``.
    """
    from PIL import Image

    config = config or SyntheticImageConfig()
    key, names = _label_key(label), factor_names(config)
    out = Path(out_dir)
    rows = []
    for start in range(config.offset, config.offset + config.n_images, chunk):
        idx = list(range(start, min(start + chunk, config.offset + config.n_images)))
        images, factors = synthesise(idx, config)
        for j, i in enumerate(idx):
            rel = Path(names[key][int(factors[key][j])]) / f"{i:06d}.png"
            (out / rel.parent).mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[j].permute(1, 2, 0).numpy()).save(out / rel)
            rows.append([i, rel.as_posix()] + [int(factors[k][j]) for k in FACTORS])
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "factors.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["index", "path", *FACTORS], *rows])
    return out
