"""Reference backend: the six augmentations applied image by image with torchvision.

``TorchvisionAugmenter`` has the same interface as the batched backend
(:class:`aivision.augment.batched.BatchedAugmenter`) and consumes the same parameters
(:func:`aivision.augment.sampling.sample_params`), so the same generator seed gives the
same augmentation parameters on both. It loops over images in Python with
``torchvision.transforms.v2.functional`` and exists to check the batched backend against
a well-known library (and as a fallback).

Implementation notes (torchvision 0.29):

* The crop box is turned back into whole pixels (``round(top * H)`` etc.; exact when the
  parameters were sampled with this ``image_size``) and cut with ``resized_crop``
  (bilinear, ``antialias=True``); without a crop the whole image is ``resize``d. The
  batched backend does not antialias, so the two differ where a box is shrunk (see
  ``tests/test_vision_augment.py`` for the measured agreement).
* Colour jitter calls ``adjust_brightness`` / ``adjust_contrast`` / ``adjust_saturation``
  / ``adjust_hue`` in the sampled order; grayscale is ``rgb_to_grayscale`` with three
  output channels; blur is ``gaussian_blur`` with the same odd kernel size; solarize is
  ``solarize`` with the configured threshold.
"""
from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor

from aivision.augment.batched import expand_active
from aivision.augment.config import VisionAugmentConfig
from aivision.augment.ops import check_images, to_unit_float
from aivision.augment.sampling import JITTER_ORDERS, Params, check_params, sample_params

_JITTER_FNS = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)


class TorchvisionAugmenter:
    """Per-image reference implementation of the six vision augmentations.

    Args:
        config: strengths, probabilities, output size and normalisation
            (``config.backend`` is not read).
    """

    def __init__(self, config: VisionAugmentConfig) -> None:
        if not isinstance(config, VisionAugmentConfig):
            raise TypeError(f"TorchvisionAugmenter: config must be a VisionAugmentConfig, "
                            f"got {type(config).__name__}")
        self.config = config

    def __call__(self, x: Tensor, active: Tensor, generator: torch.Generator,
                 return_params: bool = False) -> Tensor | tuple[Tensor, Params]:
        """Sample parameters from ``generator`` and apply them (see ``BatchedAugmenter``).

        Returns:
            ``(B, 3, S, S)`` view on ``x.device``, or ``(view, params)``.
        """
        check_images(x, "TorchvisionAugmenter")
        active = expand_active(active, x.shape[0], "TorchvisionAugmenter")
        params = sample_params(self.config, active, generator, image_size=(x.shape[-2], x.shape[-1]))
        out = self.apply(x, params)
        return (out, params) if return_params else out

    def apply(self, x: Tensor, params: Params, generator: torch.Generator | None = None) -> Tensor:
        """Apply given parameters image by image.

        Args:
            x: ``(B, 3, H, W)`` float in ``[0, 1]`` (or uint8) on any device.
            params: as made by ``sample_params``.
            generator: ignored (interface parity with the audio backends).

        Returns:
            ``(B, 3, S, S)`` float view on ``x.device``.
        """
        check_images(x, "TorchvisionAugmenter.apply")
        n = x.shape[0]
        check_params(params, n, "TorchvisionAugmenter.apply")
        x = to_unit_float(x)
        p = {name: {k: v.detach().cpu() for k, v in values.items()} for name, values in params.items()}
        views = [self._one(x[i], p, i) for i in range(n)]
        size = self.config.size
        return torch.stack(views) if views else x.new_zeros(0, 3, size, size)

    def _one(self, img: Tensor, p: Params, i: int) -> Tensor:
        """Augment image ``i`` ``(3, H, W)`` with row ``i`` of the parameters."""
        cfg = self.config
        size = [cfg.size, cfg.size]
        _, h, w = img.shape
        crop = p["crop"]
        if bool(crop["applied"][i]):
            top, left = int(round(float(crop["top"][i]) * h)), int(round(float(crop["left"][i]) * w))
            ch = max(1, int(round(float(crop["height"][i]) * h)))
            cw = max(1, int(round(float(crop["width"][i]) * w)))
            img = TF.resized_crop(img, top, left, ch, cw, size, antialias=True)
        elif (h, w) != (cfg.size, cfg.size):
            img = TF.resize(img, size, antialias=True)
        if bool(p["flip"]["applied"][i]):
            img = TF.horizontal_flip(img)
        cj = p["color_jitter"]
        if bool(cj["applied"][i]):
            values = (float(cj["brightness"][i]), float(cj["contrast"][i]),
                      float(cj["saturation"][i]), float(cj["hue"][i]))
            for op in JITTER_ORDERS[int(cj["order"][i])]:
                img = _JITTER_FNS[op](img, values[op])
        if bool(p["grayscale"]["applied"][i]):
            img = TF.rgb_to_grayscale(img, num_output_channels=3)
        if bool(p["blur"]["applied"][i]):
            k = cfg.blur.kernel_for(cfg.size)
            sigma = float(p["blur"]["sigma"][i])
            img = TF.gaussian_blur(img, [k, k], [sigma, sigma])
        if bool(p["solarize"]["applied"][i]):
            img = TF.solarize(img, cfg.solarize.threshold)
        if cfg.normalize:
            img = TF.normalize(img, list(cfg.mean), list(cfg.std))
        return img
