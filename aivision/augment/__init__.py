"""The six vision augmentations: config, parameter sampling, backends, targets and the
view policy.

``BatchedAugmenter`` and ``TorchvisionAugmenter`` are imported on first access, so
importing this package stays cheap (and does not pull in torchvision).
"""
from __future__ import annotations

import importlib
from typing import Any

from aivision.augment.config import VISION_AUGMENTATIONS, VisionAugmentConfig
from aivision.augment.policy import BACKENDS, DEFAULT_GROUPS, VisionPolicy
from aivision.augment.sampling import JITTER_OPS, JITTER_ORDERS, Params, sample_params
from aivision.augment.targets import TARGET_DIMS, targets, transform_points

_LAZY = {
    "BatchedAugmenter": "aivision.augment.batched",
    "TorchvisionAugmenter": "aivision.augment.reference",
}

__all__ = ["VISION_AUGMENTATIONS", "VisionAugmentConfig", "VisionPolicy", "BACKENDS", "DEFAULT_GROUPS",
           "Params", "sample_params", "JITTER_OPS", "JITTER_ORDERS", "TARGET_DIMS", "targets",
           "transform_points", "BatchedAugmenter", "TorchvisionAugmenter"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
