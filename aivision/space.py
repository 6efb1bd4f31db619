"""The vision invariance spaces: two augmentation groups, or five individual augmentations."""
from __future__ import annotations

from core.invariance import InvarianceSpace

# Order fixed by the paper: [spatial, appearance]; training sees [1,1], [1,0], [0,1].
GROUPS: tuple[str, ...] = ("spatial", "appearance")
INDIVIDUAL: tuple[str, ...] = ("crop", "flip", "color_jitter", "grayscale", "blur")


def group_space() -> InvarianceSpace:
    """Spatial (crop + flip) and appearance (jitter, grayscale, blur, solarize): 3 descriptors."""
    return InvarianceSpace(GROUPS, min_active=1)


def individual_space(min_active: int = 2) -> InvarianceSpace:
    """Five individual augmentations, fewer than two active excluded: 26 descriptors."""
    return InvarianceSpace(INDIVIDUAL, min_active=min_active)
