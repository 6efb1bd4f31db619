"""VisionPolicy: an image batch plus an invariance descriptor -> two augmented views.

Only the augmentations whose descriptor entry is on are ever applied; each of those fires
per image with its configured probability. The space's entries are augmentation names from
``VISION_AUGMENTATIONS`` or group names (default groups: ``spatial`` = crop + flip and
``appearance`` = colour jitter + grayscale + blur + solarize), so both the paper's
two-group space and the five-entry individual space work. In the individual space
solarize has no entry and is therefore never applied; add ``"solarize"`` to the space to
control it.

Views always have the output size: where crop is off the whole image is resized.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from aivision.augment.config import VISION_AUGMENTATIONS, VisionAugmentConfig
from aivision.augment.ops import check_images, crop_flip_resize, normalize, to_unit_float
from aivision.augment.sampling import Params, sample_params
from core.augparams import active_augmentations, entry_mapping
from core.invariance import InvarianceSpace
from core.lazy import LazyRegistry

DEFAULT_GROUPS: dict[str, tuple[str, ...]] = {
    "spatial": ("crop", "flip"),
    "appearance": ("color_jitter", "grayscale", "blur", "solarize"),
}


BACKENDS: Mapping[str, type] = LazyRegistry("vision augmentation backend", {
    "batched": "aivision.augment.batched:BatchedAugmenter",
    "torchvision": "aivision.augment.reference:TorchvisionAugmenter",
})


def augmentation_mapping(names: Sequence[str], groups: Mapping[str, Sequence[str]]) -> Tensor:
    """``(K, 6)`` bool: which augmentations each descriptor entry switches on
    (``core.augparams.entry_mapping`` over ``VISION_AUGMENTATIONS``)."""
    return entry_mapping(names, groups, VISION_AUGMENTATIONS, "a vision")


class VisionPolicy:
    """Turns an image batch and a descriptor into augmented views.

    Args:
        space: the invariance space; each entry is an augmentation or group name.
        config: strengths, probabilities and output size (default ``VisionAugmentConfig()``).
        backend: ``"batched"`` or ``"torchvision"``; None uses ``config.backend``.
        groups: group name -> augmentation names (default ``DEFAULT_GROUPS``).

    Raises:
        ValueError: unknown space entry or backend name.
    """

    def __init__(self, space: InvarianceSpace, config: VisionAugmentConfig | None = None,
                 backend: str | None = None, groups: Mapping[str, Sequence[str]] | None = None) -> None:
        self.space = space
        self.config = config if config is not None else VisionAugmentConfig()
        self.groups = dict(DEFAULT_GROUPS if groups is None else groups)
        self.mapping = augmentation_mapping(space.names, self.groups)
        self.backend_name = self.config.backend if backend is None else backend
        if self.backend_name not in BACKENDS:
            raise ValueError(f"unknown vision augmentation backend {self.backend_name!r}; "
                             f"allowed: {sorted(BACKENDS)}")
        self.augmenter = BACKENDS[self.backend_name](self.config)

    @property
    def size(self) -> int:
        """Side of the output views in pixels."""
        return self.config.size

    def active(self, descriptor: Tensor | Sequence[float], batch_size: int) -> Tensor:
        """Which augmentations each image may use.

        An entry counts as on when it is > 0.5, and an augmentation is active when any entry
        that maps to it is on.

        Args:
            descriptor: ``(K,)`` (shared by the batch) or ``(B, K)``, values in ``[0, 1]``.
            batch_size: B.

        Returns:
            ``(B, 6)`` bool on the CPU, columns in ``VISION_AUGMENTATIONS`` order.
        """
        return active_augmentations(self.space, self.mapping, descriptor, batch_size, "images")

    def sample(self, descriptor: Tensor | Sequence[float], batch_size: int, generator: torch.Generator,
               image_size: tuple[int, int] | None = None) -> Params:
        """Parameters for a batch without applying them (same draws as :meth:`augment`)."""
        return sample_params(self.config, self.active(descriptor, batch_size), generator, image_size)

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Apply given parameters with this policy's backend: ``(B, 3, H, W)`` -> ``(B, 3, S, S)``."""
        return self.augmenter.apply(x, params)

    def augment(self, x: Tensor, descriptor: Tensor | Sequence[float], generator: torch.Generator,
                return_params: bool = False) -> Tensor | tuple[Tensor, Params]:
        """One augmented view.

        Args:
            x: ``(B, 3, H, W)`` float in ``[0, 1]`` (or uint8), any device, all the same size.
            descriptor: ``(K,)`` or ``(B, K)``.
            generator: CPU generator, the only source of randomness.
            return_params: also return the sampled parameters.

        Returns:
            ``(B, 3, S, S)`` view on ``x.device``, plus the parameters if ``return_params``.
        """
        check_images(x, "VisionPolicy")
        active = self.active(descriptor, x.shape[0])
        return self.augmenter(x, active, generator, return_params=return_params)

    def views(self, x: Tensor, descriptor: Tensor | Sequence[float], generator: torch.Generator,
              return_params: bool = False) -> tuple:
        """Two independent views (drawn one after the other from ``generator``).

        Returns:
            ``(v1, v2)``, each ``(B, 3, S, S)``, or ``(v1, v2, p1, p2)`` if ``return_params``.
        """
        first = self.augment(x, descriptor, generator, return_params=True)
        second = self.augment(x, descriptor, generator, return_params=True)
        if return_params:
            return first[0], second[0], first[1], second[1]
        return first[0], second[0]

    def plain(self, x: Tensor) -> Tensor:
        """The un-augmented encoder input: whole image resized to ``S x S`` (bilinear, as
        the batched backend) and normalised. ``(B, 3, H, W)`` -> ``(B, 3, S, S)``."""
        check_images(x, "VisionPolicy.plain")
        x = to_unit_float(x)
        n, _, h, w = x.shape
        size = self.config.size
        if (h, w) != (size, size):
            zero, one = torch.zeros(n), torch.ones(n)
            x = crop_flip_resize(x, zero, zero, one, one, torch.zeros(n, dtype=torch.bool), size)
        return normalize(x, self.config.mean, self.config.std) if self.config.normalize else x.clone()

    def __repr__(self) -> str:
        return f"VisionPolicy({list(self.space.names)}, size={self.config.size}, backend={self.backend_name!r})"
