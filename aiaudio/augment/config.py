"""Ranges and application probabilities of the seven audio augmentations.

Defaults follow the CLAR ranges. Every augmentation whose descriptor bit is
1 is applied to each clip independently with probability ``p``; a bit of 0 means never.
``AugmentConfig.from_yaml(path)`` reads the same structure from YAML
(``aiaudio/configs/augment.yaml`` lists every key with its default).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.config import from_dict, load_yaml, require, require_probability

FADE_SHAPES = ("linear", "logarithmic", "exponential")


@dataclass
class PitchShiftConfig:
    """Shift by a uniform number of semitones; phase vocoder + resampling on an STFT."""
    p: float = 0.8
    min_semitones: float = -15.0
    max_semitones: float = 15.0
    n_fft: int = 512
    hop_length: int = 256

    def __post_init__(self) -> None:
        require_probability("pitch_shift", self.p)
        require(self.min_semitones <= self.max_semitones, "pitch_shift: min_semitones > max_semitones")
        require(self.hop_length > 0 and self.n_fft >= 2 * self.hop_length,
               "pitch_shift: need n_fft >= 2 * hop_length > 0")


@dataclass
class FadeConfig:
    """Fade over a uniform length in [0, max_fraction] of the clip, with a random shape."""
    p: float = 0.8
    max_fraction: float = 0.5
    shapes: list[str] = field(default_factory=lambda: list(FADE_SHAPES))

    def __post_init__(self) -> None:
        require_probability("fade", self.p)
        require(0.0 < self.max_fraction <= 1.0, f"fade.max_fraction must be in (0, 1], got {self.max_fraction}")
        require(len(self.shapes) > 0, "fade.shapes must not be empty")
        for s in self.shapes:
            require(s in FADE_SHAPES, f"fade.shapes: {s!r} is not one of {list(FADE_SHAPES)}")


@dataclass
class NoiseConfig:
    """Coloured noise at a uniform SNR; spectral slope uniform in [min_f_decay, max_f_decay]
    dB per octave (0 white, -3.01 pink, -6.02 brown)."""
    p: float = 0.8
    min_snr_db: float = 3.0
    max_snr_db: float = 30.0
    min_f_decay: float = -6.02
    max_f_decay: float = 0.0

    def __post_init__(self) -> None:
        require_probability("noise", self.p)
        require(self.min_snr_db <= self.max_snr_db, "noise: min_snr_db > max_snr_db")
        require(self.min_f_decay <= self.max_f_decay, "noise: min_f_decay > max_f_decay")


@dataclass
class TimeMaskConfig:
    """One segment of uniform length in [0, max_fraction] of the clip, zeroed (or noise)."""
    p: float = 0.8
    max_fraction: float = 0.125
    fill: Literal["zero", "noise"] = "zero"

    def __post_init__(self) -> None:
        require_probability("time_mask", self.p)
        require(0.0 < self.max_fraction <= 1.0, f"time_mask.max_fraction must be in (0, 1], got {self.max_fraction}")


@dataclass
class TimeShiftConfig:
    """Roll by a uniform fraction of the clip in [-max_fraction, max_fraction]."""
    p: float = 0.8
    max_fraction: float = 0.5

    def __post_init__(self) -> None:
        require_probability("time_shift", self.p)
        require(0.0 <= self.max_fraction <= 1.0, f"time_shift.max_fraction must be in [0, 1], got {self.max_fraction}")


@dataclass
class TimeStretchConfig:
    """Change speed by a uniform rate (>1 faster), keep pitch, crop/pad to the clip length."""
    p: float = 0.8
    min_rate: float = 0.5
    max_rate: float = 1.5
    n_fft: int = 512
    hop_length: int = 256

    def __post_init__(self) -> None:
        require_probability("time_stretch", self.p)
        require(0.0 < self.min_rate <= self.max_rate, "time_stretch: need 0 < min_rate <= max_rate")
        require(self.hop_length > 0 and self.n_fft >= 2 * self.hop_length,
               "time_stretch: need n_fft >= 2 * hop_length > 0")


@dataclass
class AugmentConfig:
    """All seven augmentations plus the backend that applies them.

    ``cpu_block_rows``: on the CPU the batched backend applies batches larger than this as
    blocks of this many rows in parallel threads (one intra-op thread each; see
    :mod:`aiaudio.augment.cpu_blocks`); 0 runs the whole batch at once on torch's threads.
    """
    backend: Literal["batched", "audiomentations"] = "batched"
    cpu_block_rows: int = 32
    pitch_shift: PitchShiftConfig = field(default_factory=PitchShiftConfig)
    fade_in: FadeConfig = field(default_factory=FadeConfig)
    fade_out: FadeConfig = field(default_factory=FadeConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    time_mask: TimeMaskConfig = field(default_factory=TimeMaskConfig)
    time_shift: TimeShiftConfig = field(default_factory=TimeShiftConfig)
    time_stretch: TimeStretchConfig = field(default_factory=TimeStretchConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str = "augment") -> "AugmentConfig":
        return from_dict(cls, data, where)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "AugmentConfig":
        """Read from a YAML file; an ``augment:`` top-level section is accepted too."""
        data = load_yaml(path)
        if set(data) == {"augment"}:
            data = data["augment"]
        return from_dict(cls, data, str(path))

    def __post_init__(self) -> None:
        require(isinstance(self.cpu_block_rows, int) and self.cpu_block_rows >= 0,
                f"augment.cpu_block_rows must be an integer >= 0, got {self.cpu_block_rows!r}")

    def of(self, name: str) -> Any:
        """The settings of augmentation ``name``."""
        if name in ("backend", "cpu_block_rows") or not hasattr(self, name):
            raise KeyError(f"unknown augmentation {name!r}")
        return getattr(self, name)
