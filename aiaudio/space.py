"""The audio invariance space: seven CLAR-style augmentations in the paper's order."""
from __future__ import annotations

from core.invariance import InvarianceSpace

AUDIO_AUGMENTATIONS: tuple[str, ...] = (
    "pitch_shift",
    "fade_in",
    "fade_out",
    "noise",
    "time_mask",
    "time_shift",
    "time_stretch",
)
# Augmentations that act along frequency/amplitude vs along time (the paper's groups).
FREQUENCY_GROUP = ("pitch_shift", "fade_in", "fade_out", "noise")
TIME_GROUP = ("time_mask", "time_shift", "time_stretch")


def audio_space(min_active: int = 2) -> InvarianceSpace:
    """The paper's audio space: K = 7, descriptors with fewer than 2 active excluded (120)."""
    return InvarianceSpace(AUDIO_AUGMENTATIONS, min_active=min_active)
