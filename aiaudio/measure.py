"""Fixed-strength audio transforms for ``core.analysis.invariance.measure_invariance``.

Each of the seven augmentations of ``aiaudio.space`` becomes a transform
``transform(wave (N, T), strength, generator) -> wave (N, T)`` that applies that one
augmentation to every clip at one strength, through the batched backend's deterministic
``BatchedAugmenter.apply`` (the code pre-training uses), with the parameter names of
``aiaudio.augment.sampling``. Strengths are in each augmentation's own units
(``STRENGTH_UNITS``); parameters that are not the strength (fade shape, noise colour, mask
position) are drawn from the generator exactly as pre-training draws them. The identity
strength (0 semitones, fraction 0, rate 1, infinite SNR) returns the input unchanged.
``prepare(wave) = frontend(wave)`` turns the raw waves into encoder inputs.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor

from aiaudio.augment.batched import BatchedAugmenter
from aiaudio.augment.config import FADE_SHAPES, AugmentConfig
from aiaudio.augment.sampling import Params
from aiaudio.frontend import Frontend
from aiaudio.space import AUDIO_AUGMENTATIONS
from core.analysis.invariance import parse_strength_grids

# The parameter each strength sets, its unit, and the value that leaves a clip unchanged.
STRENGTH_PARAM = {"pitch_shift": "semitones", "fade_in": "fraction", "fade_out": "fraction", "noise": "snr_db",
                  "time_mask": "fraction", "time_shift": "fraction", "time_stretch": "rate"}
STRENGTH_UNITS = {"pitch_shift": "semitones", "fade_in": "fade fraction", "fade_out": "fade fraction",
                  "noise": "SNR dB", "time_mask": "mask fraction", "time_shift": "shift fraction",
                  "time_stretch": "stretch rate"}
IDENTITY = {"pitch_shift": 0.0, "fade_in": 0.0, "fade_out": 0.0, "noise": math.inf, "time_mask": 0.0,
            "time_shift": 0.0, "time_stretch": 1.0}
# Default grids spanning the CLAR augmentation ranges (identity strengths left out).
DEFAULT_STRENGTHS: dict[str, tuple[float, ...]] = {
    "pitch_shift": (-15.0, -10.0, -5.0, 5.0, 10.0, 15.0),
    "fade_in": (0.1, 0.2, 0.3, 0.4, 0.5),
    "fade_out": (0.1, 0.2, 0.3, 0.4, 0.5),
    "noise": (30.0, 20.0, 10.0, 3.0),
    "time_mask": (0.025, 0.05, 0.075, 0.1, 0.125),
    "time_shift": (-0.5, -0.25, -0.1, 0.1, 0.25, 0.5),
    "time_stretch": (0.5, 0.75, 0.9, 1.1, 1.25, 1.5),
}


def _check_name(name: str) -> None:
    if name not in AUDIO_AUGMENTATIONS:
        raise KeyError(f"unknown augmentation {name!r}; the audio augmentations are {list(AUDIO_AUGMENTATIONS)}")


def _check_strength(name: str, strength: float) -> None:
    ok = {"fade_in": 0.0 <= strength <= 1.0, "fade_out": 0.0 <= strength <= 1.0,
          "time_mask": 0.0 <= strength <= 1.0, "time_shift": -1.0 <= strength <= 1.0,
          "time_stretch": strength > 0.0, "noise": not math.isnan(strength),
          "pitch_shift": math.isfinite(strength)}[name]
    if not ok:
        raise ValueError(f"{name}: strength {strength} ({STRENGTH_UNITS[name]}) is out of range")


def strength_params(name: str, strength: float, n: int, config: AugmentConfig, generator: torch.Generator,
                    fade_shape: str | None = None) -> Params:
    """Parameters for ``BatchedAugmenter.apply``: augmentation ``name`` applied to all ``n`` clips
    with its strength parameter (``STRENGTH_PARAM``) set to ``strength``, every other
    augmentation off.

    The remaining parameters are drawn from ``generator`` like ``sample_params`` draws them:
    fade shape uniform over ``config``'s shapes (or ``fade_shape`` for every clip), noise slope
    uniform in the configured dB/octave range, mask start uniform in ``[0, 1 - fraction]``.

    Returns:
        ``{augmentation: {param: (n,) tensor}}`` on the CPU.
    """
    _check_name(name)
    _check_strength(name, float(strength))
    g = generator
    full = lambda v: torch.full((n,), float(v), dtype=torch.float32)  # noqa: E731
    params: Params = {}
    for other in AUDIO_AUGMENTATIONS:  # placeholders (never used: applied is False)
        params[other] = {"applied": torch.zeros(n, dtype=torch.bool)}
    params["pitch_shift"]["semitones"] = full(0.0)
    for fade_name in ("fade_in", "fade_out"):
        params[fade_name].update(fraction=full(0.0), shape=torch.zeros(n, dtype=torch.long))
    params["noise"].update(snr_db=full(0.0), f_decay=full(0.0))
    params["time_mask"].update(start=full(0.0), fraction=full(0.0))
    params["time_shift"]["fraction"] = full(0.0)
    params["time_stretch"]["rate"] = full(1.0)

    cfg = config.of(name)
    p = params[name]
    p[STRENGTH_PARAM[name]] = full(strength)
    if name in ("fade_in", "fade_out"):
        if fade_shape is None:
            p["shape"] = torch.randint(len(cfg.shapes), (n,), generator=g, device=g.device).cpu()
        elif fade_shape in cfg.shapes:
            p["shape"] = torch.full((n,), cfg.shapes.index(fade_shape), dtype=torch.long)
        else:
            raise ValueError(f"fade_shape {fade_shape!r} is not one of the configured shapes {cfg.shapes} "
                             f"(known: {list(FADE_SHAPES)})")
    elif name == "noise":
        u = torch.rand(n, generator=g, device=g.device, dtype=torch.float64).cpu()
        p["f_decay"] = (cfg.min_f_decay + (cfg.max_f_decay - cfg.min_f_decay) * u).float()
    elif name == "time_mask":
        p["start"] = torch.rand(n, generator=g, device=g.device).cpu() * (1.0 - float(strength))
    p["applied"] = torch.ones(n, dtype=torch.bool)
    return params


class StrengthTransform:
    """One augmentation at a fixed strength: ``transform(wave (N, T), strength, generator)``.

    Args:
        name: an ``aiaudio.space`` augmentation.
        config: its settings (STFT sizes, fade shapes, noise colour range, mask fill);
            probabilities and ranges are not used.
        fade_shape: a fixed fade shape, or None to draw it per clip as pre-training does.
    """

    def __init__(self, name: str, config: AugmentConfig | None = None, fade_shape: str | None = None) -> None:
        _check_name(name)
        self.name = name
        self.config = config or AugmentConfig()
        self.fade_shape = fade_shape
        self.augmenter = BatchedAugmenter(self.config)

    def __call__(self, wave: Tensor, strength: float, generator: torch.Generator) -> Tensor:
        """Returns the transformed ``(N, T)`` copy (same device/dtype); deterministic given the
        generator's state (parameters first, then one integer seeding the noise generator)."""
        if not isinstance(wave, Tensor) or wave.dim() != 2:
            raise ValueError(f"{self.name}: wave must be (N, T), got {getattr(wave, 'shape', type(wave))}")
        strength = float(strength)
        if strength == IDENTITY[self.name]:
            return wave.clone()
        params = strength_params(self.name, strength, wave.shape[0], self.config, generator, self.fade_shape)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        noise_gen = torch.Generator(device=wave.device)
        noise_gen.manual_seed(seed)
        return self.augmenter.apply(wave, params, noise_gen)

    def __repr__(self) -> str:
        return f"StrengthTransform({self.name!r}, unit={STRENGTH_UNITS[self.name]!r})"


def invariance_transforms(names: Sequence[str] = AUDIO_AUGMENTATIONS, config: AugmentConfig | None = None,
                          fade_shape: str | None = None) -> dict[str, StrengthTransform]:
    """``{name: StrengthTransform}`` for the augmentations ``names`` (default all seven)."""
    return {name: StrengthTransform(name, config, fade_shape) for name in names}


def default_strengths(names: Sequence[str] = AUDIO_AUGMENTATIONS) -> dict[str, list[float]]:
    """The default strength grid of each augmentation in ``names``."""
    for name in names:
        _check_name(name)
    return {name: list(DEFAULT_STRENGTHS[name]) for name in names}


def parse_strengths(items: Sequence[str], base: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """Override grids with ``"name=v1,v2,..."`` items (e.g. ``"noise=20,10"``); see
    ``core.analysis.invariance.parse_strength_grids``.

    Raises:
        ValueError / KeyError: malformed item, unknown augmentation or a value out of range.
    """
    return parse_strength_grids(items, base, _check_name, _check_strength)


def frontend_prepare(frontend: Frontend, batch_size: int = 64) -> Callable[[Tensor], Tensor]:
    """``prepare(wave (N, T)) -> (N, 1, n_mels, frames)`` on the CPU: the encoder input, via
    ``frontend`` on its own device, without gradients."""
    device = frontend.logmel.mel_fb.device
    frontend.eval()

    @torch.no_grad()
    def prepare(wave: Tensor) -> Tensor:
        return torch.cat([frontend(wave[k:k + batch_size].to(device)).float().cpu()
                          for k in range(0, wave.shape[0], batch_size)])

    return prepare
