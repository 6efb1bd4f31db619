"""The seven audio augmentations: config, parameter sampling, backends and the view policy.

``AudiomentationsAugmenter`` and ``BatchedAugmenter`` are imported on first access, so
importing this package stays cheap (and does not pull in audiomentations).
"""
from __future__ import annotations

import importlib
from typing import Any

from aiaudio.augment.config import AugmentConfig
from aiaudio.augment.policy import BACKENDS, AudioPolicy
from aiaudio.augment.sampling import sample_params

_LAZY = {
    "AudiomentationsAugmenter": "aiaudio.augment.reference",
    "BatchedAugmenter": "aiaudio.augment.batched",
}

__all__ = ["AugmentConfig", "sample_params", "AudioPolicy", "BACKENDS",
           "AudiomentationsAugmenter", "BatchedAugmenter"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
