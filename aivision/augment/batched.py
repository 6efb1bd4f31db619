"""The batched tensor backend: all six vision augmentations on a ``(B, 3, H, W)`` batch.

Parameters come from :func:`aivision.augment.sampling.sample_params` (one value per
image). Crop, flip and the resize to the output size are one affine ``grid_sample``;
colour jitter, grayscale, blur and solarize each run on the rows where they are applied
(selected with indices computed from the CPU-side parameters, so no device
synchronisation). No Python loop runs over images.
"""
from __future__ import annotations

import torch
from torch import Tensor

from aivision.augment.color import color_jitter, grayscale
from aivision.augment.config import VISION_AUGMENTATIONS, VisionAugmentConfig
from aivision.augment.ops import (check_images, crop_flip_resize, gaussian_blur, normalize, solarize,
                                  to_unit_float)
from aivision.augment.sampling import Params, check_params, sample_params


def expand_active(active: Tensor, n: int, where: str) -> Tensor:
    """``(6,)`` or ``(B, 6)`` -> ``(B, 6)`` bool, checking the batch size."""
    active = torch.as_tensor(active)
    if active.dim() == 1:
        active = active.expand(n, -1)
    if active.dim() != 2 or active.shape != (n, len(VISION_AUGMENTATIONS)):
        raise ValueError(f"{where}: active must be (B, {len(VISION_AUGMENTATIONS)}) with B = {n}, "
                         f"got {tuple(active.shape)}")
    return active.bool()


class BatchedAugmenter:
    """Apply the six vision augmentations to a batch with per-image random parameters.

    Args:
        config: strengths, probabilities, output size and normalisation
            (``config.backend`` is not read).

    Example:
        >>> aug = BatchedAugmenter(VisionAugmentConfig(size=64))
        >>> view, params = aug(images, active, torch.Generator().manual_seed(0), return_params=True)
    """

    def __init__(self, config: VisionAugmentConfig) -> None:
        if not isinstance(config, VisionAugmentConfig):
            raise TypeError(f"BatchedAugmenter: config must be a VisionAugmentConfig, got {type(config).__name__}")
        self.config = config

    def __call__(self, x: Tensor, active: Tensor, generator: torch.Generator,
                 return_params: bool = False) -> Tensor | tuple[Tensor, Params]:
        """Sample parameters from ``generator`` and apply them.

        Args:
            x: ``(B, 3, H, W)`` float in ``[0, 1]`` (or uint8) on any device; never modified.
            active: ``(B, 6)`` bool (``VISION_AUGMENTATIONS`` columns) or ``(6,)`` shared.
            generator: source of all randomness (normally on the CPU); only
                ``sample_params`` draws from it.
            return_params: also return the sampled parameters.

        Returns:
            ``(B, 3, S, S)`` view, or ``(view, params)``.
        """
        check_images(x, "BatchedAugmenter")
        active = expand_active(active, x.shape[0], "BatchedAugmenter")
        params = sample_params(self.config, active, generator, image_size=(x.shape[-2], x.shape[-1]))
        out = self.apply(x, params)
        return (out, params) if return_params else out

    def apply(self, x: Tensor, params: Params, generator: torch.Generator | None = None) -> Tensor:
        """Apply given parameters (a deterministic function of ``x`` and ``params``).

        Args:
            x: ``(B, 3, H, W)`` float in ``[0, 1]`` (or uint8) on any device.
            params: as made by ``sample_params``, any device.
            generator: accepted for interface parity with the audio backends and ignored:
                no vision augmentation draws noise.

        Returns:
            ``(B, 3, S, S)`` float view (normalised if ``config.normalize``).
        """
        check_images(x, "BatchedAugmenter.apply")
        n, _, h, w = x.shape
        check_params(params, n, "BatchedAugmenter.apply")
        cfg = self.config
        size = cfg.size
        x = to_unit_float(x)
        dev = x.device
        crop = params["crop"]
        cropped = crop["applied"].bool()
        flip = params["flip"]["applied"].bool()
        if h == size and w == size and not bool(cropped.any()):
            out = torch.where(flip.to(dev).view(-1, 1, 1, 1), x.flip(-1), x)
        else:
            one, zero = torch.ones(n), torch.zeros(n)
            box = [torch.where(cropped, crop[k].float().cpu(), default)
                   for k, default in (("top", zero), ("left", zero), ("height", one), ("width", one))]
            out = crop_flip_resize(x, *box, flip=flip.cpu(), size=size)
        out = self._rows(out, params["color_jitter"], lambda y, v: color_jitter(
            y, v["brightness"], v["contrast"], v["saturation"], v["hue"], v["order"]))
        out = self._rows(out, params["grayscale"], lambda y, v: grayscale(y))
        kernel = cfg.blur.kernel_for(size)
        out = self._rows(out, params["blur"], lambda y, v: gaussian_blur(y, v["sigma"], kernel))
        out = self._rows(out, params["solarize"], lambda y, v: solarize(y, cfg.solarize.threshold))
        return normalize(out, cfg.mean, cfg.std) if cfg.normalize else out

    @staticmethod
    def _rows(x: Tensor, p: dict[str, Tensor], fn) -> Tensor:
        """Run ``fn(rows, values)`` on the rows where ``p["applied"]`` and write them back."""
        applied = p["applied"].bool().cpu()
        idx = applied.nonzero().squeeze(1)
        if idx.numel() == 0:
            return x
        values = {k: v.cpu()[idx] for k, v in p.items() if k != "applied"}
        if idx.numel() == x.shape[0]:
            return fn(x, values)
        idx = idx.to(x.device)
        return x.index_copy(0, idx, fn(x.index_select(0, idx), values))
