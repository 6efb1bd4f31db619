"""AugSelf regression targets of the seven audio augmentations.

Each augmentation's sampled parameters become a small vector in an identity-friendly,
roughly unit-scale encoding: where the augmentation was not applied the vector is the
value that means "no change", so the difference between two views is meaningful whether
or not each fired.

=============  ===  =====================================================================
pitch_shift     1   octaves (semitones / 12); 0 when not applied
fade_in         1   fade length as a fraction of the clip; 0 when not applied
fade_out        1   same
noise           1   noise amplitude relative to the signal, ``10 ** (-snr_db / 20)``; 0 off
time_mask       2   (centre, width) of the masked span as clip fractions; (0, 0) off
time_shift      1   signed shift as a clip fraction; 0 off
time_stretch    1   ``log2(rate)``; 0 off
=============  ===  =====================================================================
"""
from __future__ import annotations

import torch
from torch import Tensor

from aiaudio.augment.sampling import Params
from aiaudio.space import AUDIO_AUGMENTATIONS

TARGET_DIMS: dict[str, int] = {name: 2 if name == "time_mask" else 1 for name in AUDIO_AUGMENTATIONS}


def param_targets(params: Params) -> dict[str, Tensor]:
    """``{augmentation: (B, d) float32}`` for every augmentation in ``params`` (see the table)."""
    out: dict[str, Tensor] = {}
    for name, p in params.items():
        if name not in TARGET_DIMS:
            raise KeyError(f"no AugSelf target for audio augmentation {name!r}; known: {list(TARGET_DIMS)}")
        on = p["applied"].float()
        if name == "pitch_shift":
            value = p["semitones"].float() / 12.0
        elif name in ("fade_in", "fade_out", "time_shift"):
            value = p["fraction"].float()
        elif name == "noise":
            value = torch.pow(10.0, -p["snr_db"].float() / 20.0)
        elif name == "time_mask":
            value = torch.stack([p["start"].float() + p["fraction"].float() / 2, p["fraction"].float()], dim=1)
        else:  # time_stretch
            value = torch.log2(p["rate"].float())
        value = value if value.dim() == 2 else value.unsqueeze(1)
        out[name] = value * on.unsqueeze(1)
    return out
