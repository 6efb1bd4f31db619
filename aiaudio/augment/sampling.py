"""Per-sample random parameters of the seven augmentations, drawn from an explicit generator.

Both backends consume exactly these parameters, so the same generator seed gives the same
augmentation parameters whichever backend applies them, and the AugSelf baseline can read
them back. Every tensor has shape ``(B,)`` and lives on the generator's device (normally a
CPU generator: parameters are tiny and CPU draws are identical on every machine).

Parameter names per augmentation (fractions are of the clip length):

=============  ==========================================================
pitch_shift    ``semitones``
fade_in        ``fraction``, ``shape`` (index into the config's ``shapes`` names, see
               ``FADE_SHAPES`` for the meaning of each name)
fade_out       ``fraction``, ``shape``
noise          ``snr_db``, ``f_decay`` (dB/octave); the noise samples themselves are drawn
               by the backend from a generator seeded from the same generator
time_mask      ``start``, ``fraction``
time_shift     ``fraction`` (signed; positive moves content later)
time_stretch   ``rate`` (> 1 faster/shorter)
=============  ==========================================================

Each augmentation's dict also has ``applied`` (bool): the descriptor bit is 1 for that
sample and the probability draw succeeded. Where ``applied`` is False the values are still
the sampled ones but are not used.
"""
from __future__ import annotations

import torch

from aiaudio.augment.config import AugmentConfig
from aiaudio.space import AUDIO_AUGMENTATIONS

Params = dict[str, dict[str, torch.Tensor]]


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g, device=g.device, dtype=torch.float64).float()


def sample_params(config: AugmentConfig, active: torch.Tensor, generator: torch.Generator) -> Params:
    """Draw parameters for a batch.

    Args:
        config: ranges and probabilities.
        active: ``(B, 7)`` bool, which augmentations each sample may use (descriptor bits,
            columns in ``AUDIO_AUGMENTATIONS`` order).
        generator: source of all randomness; draws happen in a fixed order, so the same
            seed and batch size give the same parameters.

    Returns:
        ``{augmentation name: {param name: (B,) tensor}}`` for all seven augmentations.
    """
    if active.dim() != 2 or active.shape[1] != len(AUDIO_AUGMENTATIONS):
        raise ValueError(f"active must be (B, {len(AUDIO_AUGMENTATIONS)}), got {tuple(active.shape)}")
    n = active.shape[0]
    g = generator
    dev = g.device
    active = active.to(dev, torch.bool)
    out: Params = {}
    for k, name in enumerate(AUDIO_AUGMENTATIONS):
        cfg = config.of(name)
        fire = torch.rand(n, generator=g, device=dev) < cfg.p
        if name == "pitch_shift":
            p = {"semitones": _uniform(n, cfg.min_semitones, cfg.max_semitones, g)}
        elif name in ("fade_in", "fade_out"):
            p = {"fraction": _uniform(n, 0.0, cfg.max_fraction, g),
                 "shape": torch.randint(len(cfg.shapes), (n,), generator=g, device=dev)}
        elif name == "noise":
            p = {"snr_db": _uniform(n, cfg.min_snr_db, cfg.max_snr_db, g),
                 "f_decay": _uniform(n, cfg.min_f_decay, cfg.max_f_decay, g)}
        elif name == "time_mask":
            frac = _uniform(n, 0.0, cfg.max_fraction, g)
            p = {"fraction": frac, "start": torch.rand(n, generator=g, device=dev) * (1.0 - frac)}
        elif name == "time_shift":
            p = {"fraction": _uniform(n, -cfg.max_fraction, cfg.max_fraction, g)}
        elif name == "time_stretch":
            p = {"rate": _uniform(n, cfg.min_rate, cfg.max_rate, g)}
        else:  # pragma: no cover - AUDIO_AUGMENTATIONS and this table are kept in step
            raise KeyError(name)
        p["applied"] = fire & active[:, k]
        out[name] = p
    return out

