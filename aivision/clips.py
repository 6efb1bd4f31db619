"""Images as the downstream code sees them: one normalised ``S x S`` piece per image plus labels.

:class:`ImageClips` implements ``core.downstream.clips.ClipSource`` over an
``aivision.data.ImageDataset``. Each image is prepared the way evaluation pipelines do it:

* ``fit="center_crop"`` (classification default): resize so the short side is ``S``
  (bilinear, antialiased; the long side rounded), then cut the central ``S x S`` square:
  the field of view of the pre-training modality's un-augmented view
  (``aivision.images.resize_center_crop``);
* ``fit="resize"`` (regression default): resize the whole image to ``S x S`` (antialiased),
  so the normalised landmark targets of ``ImageDataset.targets`` stay exact.

Prepared images are rounded back to ``uint8`` (as a PIL or torchvision resize of a uint8
image is) and kept in a bounded least-recently-used cache, 4x smaller than float pieces;
:meth:`ImageClips.pieces` turns them into float ``[0, 1]`` and normalises with the encoder's
mean/std. Images of the same stored size are resized in one call.
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from aivision.augment.config import IMAGENET_MEAN, IMAGENET_STD
from aivision.augment.ops import normalize as normalize_images
from aivision.data.base import ImageDataset
from aivision.synthetic import SyntheticImages
from core.downstream.clip_cache import CachedClips

Fit = Literal["center_crop", "resize"]
FITS: tuple[str, ...] = ("center_crop", "resize")


def fit_images(x: Tensor, size: int, fit: Fit = "center_crop") -> Tensor:
    """Resize (antialiased) and, for ``center_crop``, centre-crop same-sized images.

    Args:
        x: ``(B, 3, H, W)`` uint8.
        size: output side S.
        fit: ``"center_crop"`` (short side to S, central square) or ``"resize"`` (whole image
            to S x S).

    Returns:
        ``(B, 3, S, S)`` uint8.
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {list(FITS)}, got {fit!r}")
    h, w = x.shape[-2:]
    if fit == "resize":
        nh, nw = size, size
    else:
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        x = F.interpolate(x.float(), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        x = x.round_().clamp_(0, 255).to(torch.uint8)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[..., top:top + size, left:left + size].contiguous()


class ImageClips(CachedClips):
    """Prepared images of an ``ImageDataset``, one piece ``(3, S, S)`` each.

    Args:
        dataset: the images (decoded on demand).
        image_size: S, the encoder's input side.
        mean, std: per-channel normalisation (default ImageNet's).
        normalize: apply ``(x - mean) / std`` after scaling to ``[0, 1]``.
        targets: regression targets ``(N,)`` or ``(N, T)``; default: the dataset's own
            (``dataset.targets`` for a regression set, class ids otherwise).
        fit: ``"center_crop"`` or ``"resize"``; default by task (see the module docstring).
        batch_size: images decoded and resized per call.
        cache_mb: bound of the in-memory cache of prepared uint8 images (0 disables it).

    Attributes:
        labels: ``(N,)`` int64 class ids or ``(N, T)`` float32 targets.
        class_names: the dataset's class names (None for regression).
        hits, misses: cache statistics (images served from / not in the cache).
    """

    def __init__(self, dataset: ImageDataset, image_size: int, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, normalize: bool = True, *, targets: Tensor | None = None,
                 fit: Fit | None = None, batch_size: int = 64, cache_mb: float = 512.0) -> None:
        if not isinstance(dataset, ImageDataset):
            raise TypeError(f"ImageClips: dataset must be an ImageDataset, got {type(dataset).__name__}")
        if image_size < 1 or batch_size < 1 or cache_mb < 0:
            raise ValueError(f"ImageClips: need image_size >= 1, batch_size >= 1 and cache_mb >= 0, got "
                             f"{image_size}, {batch_size}, {cache_mb}")
        if len(mean) != 3 or len(std) != 3 or not all(s > 0 for s in std):
            raise ValueError(f"ImageClips: mean and std need 3 entries (std positive), got {list(mean)}, {list(std)}")
        regression = targets is not None or dataset.task == "regression"
        fit = fit or ("resize" if regression else "center_crop")
        if fit not in FITS:
            raise ValueError(f"ImageClips: fit must be one of {list(FITS)}, got {fit!r}")
        self.dataset = dataset
        self.image_size = int(image_size)
        self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]
        self.normalize = bool(normalize)
        self.fit: Fit = fit
        self._init_cache(cache_mb, batch_size)
        if regression:
            values = torch.as_tensor(dataset.targets if targets is None else targets, dtype=torch.float32)
            values = values.unsqueeze(1) if values.dim() == 1 else values
            if values.dim() != 2 or values.shape[0] != len(dataset):
                raise ValueError(f"ImageClips: targets must be (N,) or (N, T) with N = {len(dataset)} images, "
                                 f"got shape {tuple(values.shape)}")
            if not bool(torch.isfinite(values).all()):
                raise ValueError(f"ImageClips: regression targets of {dataset.name!r} contain NaN or inf")
            self.labels = values
            self.class_names = None
        else:
            labels = torch.from_numpy(dataset.labels)
            if len(labels) and int(labels.min()) < 0:
                count = int((labels < 0).sum())
                raise ValueError(f"ImageClips: {count} image(s) of {dataset.name!r} have no label (-1)")
            self.labels = labels
            self.class_names = list(dataset.class_names)

    def describe(self, index: int) -> str:
        """Image ``index`` named by its file (or its position, for images served from memory)."""
        path = self.dataset.records[int(index)].path
        return f"image {int(index)} of {self.dataset.name!r}" if path is None else f"image {int(index)} ({path})"

    def images(self, indices: Sequence[int]) -> Tensor:
        """Prepared images ``(N, 3, S, S)`` uint8 of ``indices`` (cached), not normalised."""
        idx = self._check_indices(indices)
        if not idx:
            raise ValueError("ImageClips.images: no images requested")
        return torch.stack(self.fetch(idx))

    def to_input(self, images: Tensor) -> Tensor:
        """uint8 or ``[0, 1]`` images ``(B, 3, S, S)`` -> float32 encoder input (normalised if set)."""
        x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
        return normalize_images(x, self.mean, self.std) if self.normalize else x

    def pieces(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Encoder inputs ``(N, 3, S, S)`` float32 (CPU) of images ``indices`` and ``owner``
        ``(N,)`` int64 (``arange``: one piece per image)."""
        x = self.to_input(self.images(indices))
        return x, torch.arange(x.shape[0], dtype=torch.long)

    def _compute(self, indices: list[int]) -> dict[int, Tensor]:
        """Prepare images ``indices``, ``batch_size`` at a time -> ``{index: (3, S, S) uint8}``."""
        out: dict[int, Tensor] = {}
        for start in range(0, len(indices), self.batch_size):
            chunk = indices[start:start + self.batch_size]
            out.update(zip(chunk, self._prepare(chunk)))
        return out

    @torch.no_grad()
    def _prepare(self, indices: list[int]) -> list[Tensor]:
        """Decode and fit images ``indices`` -> list of ``(3, S, S)`` uint8 (same order)."""
        if isinstance(self.dataset, SyntheticImages):  # rendered in one batch
            raw = list(self.dataset.images(indices))
        else:
            raw = [self.dataset.load(i) for i in indices]
        groups: dict[tuple[int, int], list[int]] = {}
        for k, image in enumerate(raw):
            groups.setdefault(tuple(image.shape[-2:]), []).append(k)
        out: list[Tensor | None] = [None] * len(raw)
        for members in groups.values():
            fitted = fit_images(torch.stack([raw[k] for k in members]), self.image_size, self.fit)
            for k, image in zip(members, fitted):
                out[k] = image
        return out  # type: ignore[return-value]
