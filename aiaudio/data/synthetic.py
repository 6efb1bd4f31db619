"""Built-in synthetic audio: deterministic one-note clips with six known factors.

Every clip holds one note over silence (or background noise). Its six factors
(``FACTORS``) each take a few discrete values, so every factor is both a class label and a
number:

============  ==========================================  ================================
factor        classes (index order)                        numeric value
============  ==========================================  ================================
family        bell, breath, odd, pure, saw (timbre)        class index
pitch         midi48 ... midi76, 4 semitones apart         MIDI note number
onset         onset05/25/45/65 (% of the clip)             seconds from the clip start
duration      dur10/20/30 (% of the clip)                  seconds
loudness      -20dBFS, -30dBFS, -40dBFS (note RMS)         dBFS
noise         clean, snr10, snr20 (white background)       noise/note RMS ratio (0 = clean)
============  ==========================================  ================================

The values are chosen so that tasks want opposite invariances (``TASKS``): the pitch grid
is scrambled by a +-15 semitone pitch shift, the onset grid by a time shift of up to half
the clip, while the timbre families keep their spectral envelope under both.
Class names sort as strings in index order, so a reader that sorts label strings (the
ESC-50 reader) gives the same class indices as this module.

Clip ``i`` is a pure function of ``(seed, i, seconds, sample_rate)``; factor values come
from a seeded permutation inside each block of ``n_values`` consecutive clips, so every
factor is balanced (counts differ by at most one) and independent of the others, and clip
``i`` does not depend on ``n_clips``. ``SyntheticAudio`` serves the clips from memory;
``write_esc50_layout`` writes the same clips (32-bit float wav, sample-exact) in ESC-50's
layout with one extra csv column per factor, readable with ``esc50:<root>`` and
``label_column=<factor>``.
"""
from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from aiaudio.data.base import AudioDataset, AudioRecord
from core.config import ConfigError, from_dict

__all__ = ["FACTORS", "FACTOR_CLASSES", "FAMILIES", "TASKS", "SyntheticConfig", "SyntheticAudio",
           "factor_design", "factor_value", "synthesise", "synthesise_batch", "read_synthetic",
           "write_esc50_layout"]

_RELEASE_S = 0.01  # linear release at the note end (no clicks)
ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
NUM_FOLDS = 5
FACTORS: tuple[str, ...] = ("family", "pitch", "onset", "duration", "loudness", "noise")


@dataclass(frozen=True)
class Family:
    """A timbre: partial frequency ratios and amplitudes, attack, decay and breath noise."""
    ratios: tuple[float, ...]
    amps: tuple[float, ...]
    attack_s: float
    decay_s: float | None  # time constant of the fundamental; None = sustained
    breath: float = 0.0     # RMS of noise bands around the harmonics, relative to the tone


FAMILIES: dict[str, Family] = {
    "bell": Family((1.0, 2.76, 5.40, 8.93, 13.34), (1.0, 0.6, 0.4, 0.25, 0.15), 0.002, 0.5),
    "breath": Family((1.0,), (1.0,), 0.06, None, breath=1.0),
    "odd": Family(tuple(range(1, 16, 2)), tuple(1.0 / k for k in range(1, 16, 2)), 0.01, 3.0),
    "pure": Family((1.0,), (1.0,), 0.02, None),
    "saw": Family(tuple(range(1, 13)), tuple(1.0 / k for k in range(1, 13)), 0.03, 1.5),
}
_PITCHES = tuple(range(48, 77, 4))       # MIDI 48 (131 Hz) .. 76 (659 Hz)
_ONSETS = (0.05, 0.25, 0.45, 0.65)       # fractions of the clip
_DURATIONS = (0.10, 0.20, 0.30)          # fractions of the clip (onset + duration <= 0.95)
_LOUDNESS = (-20.0, -30.0, -40.0)        # note RMS in dBFS
_SNRS = (None, 10.0, 20.0)               # background white noise, dB below the note RMS
FACTOR_CLASSES: dict[str, list[str]] = {
    "family": list(FAMILIES),
    "pitch": [f"midi{m}" for m in _PITCHES],
    "onset": [f"onset{round(100 * f):02d}" for f in _ONSETS],
    "duration": [f"dur{round(100 * f):02d}" for f in _DURATIONS],
    "loudness": [f"{round(v)}dBFS" for v in _LOUDNESS],
    "noise": ["clean" if s is None else f"snr{round(s)}" for s in _SNRS],
}


def factor_value(name: str, index: int, seconds: float = 1.0) -> float:
    """Numeric value of class ``index`` of factor ``name``.

    Family: the index; pitch: MIDI number; onset/duration: seconds for a clip of
    ``seconds``; loudness: dBFS; noise: noise/note RMS ratio (0 for clean).
    """
    if name == "family":
        return float(index)
    if name == "pitch":
        return float(_PITCHES[index])
    if name in ("onset", "duration"):
        return float((_ONSETS if name == "onset" else _DURATIONS)[index] * seconds)
    if name == "loudness":
        return _LOUDNESS[index]
    if name == "noise":
        snr = _SNRS[index]
        return 0.0 if snr is None else float(10.0 ** (-snr / 20.0))
    raise KeyError(f"synthetic: unknown factor {name!r} (factors: {list(FACTORS)})")


@dataclass(frozen=True)
class FactorTask:
    """Which augmentations (``aiaudio.space`` names) help or hurt a factor's task."""
    invariant_to: tuple[str, ...]
    sensitive_to: tuple[str, ...]
    note: str


TASKS: dict[str, FactorTask] = {
    "family": FactorTask(("pitch_shift", "time_shift", "noise", "time_mask"), (),
                         "timbre survives pitch and time shifts: invariance to them helps"),
    "pitch": FactorTask(("time_shift", "noise", "fade_in", "fade_out"), ("pitch_shift",),
                        "notes 4 semitones apart: a +-15 semitone shift scrambles them"),
    "onset": FactorTask(("pitch_shift", "noise"), ("time_shift", "time_stretch", "fade_in"),
                        "onsets 0.2 clip apart: a shift of up to half the clip scrambles them"),
    "duration": FactorTask(("pitch_shift", "time_shift", "noise"), ("time_stretch", "time_mask"),
                           "stretching by 0.5-1.5 moves a note across the duration grid"),
    "loudness": FactorTask(("pitch_shift", "time_shift"), ("fade_in", "fade_out", "noise"),
                           "10 dB steps in note level; fades and added noise change the level"),
    "noise": FactorTask(("pitch_shift", "time_shift", "time_stretch"), ("noise",),
                        "background SNR is the label: noise injection overwrites it"),
}


@dataclass
class SyntheticConfig:
    """Settings of the synthetic set.

    Attributes:
        n_clips: number of clips.
        seconds: clip length; onsets and durations are fractions of it.
        sample_rate: Hz (at least 8000 so the highest notes keep their harmonics).
        seed: non-negative; clip ``i`` depends only on (seed, i, seconds, sample_rate).
        label: factor used as ``record.label`` / ESC-50 ``category``.
    """
    n_clips: int = 1000
    seconds: float = 2.0
    sample_rate: int = 16000
    seed: int = 0
    label: str = "family"

    def __post_init__(self) -> None:
        if self.n_clips < 1:
            raise ConfigError(f"synthetic.n_clips must be >= 1, got {self.n_clips}")
        if not self.seconds >= 0.25:
            raise ConfigError(f"synthetic.seconds must be >= 0.25, got {self.seconds}")
        if self.sample_rate < 8000:
            raise ConfigError(f"synthetic.sample_rate must be >= 8000, got {self.sample_rate}")
        if self.seed < 0:
            raise ConfigError(f"synthetic.seed must be >= 0, got {self.seed}")
        if self.label not in FACTORS:
            raise ConfigError(f"synthetic.label: {self.label!r} is not one of {list(FACTORS)}")

    @property
    def num_samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))


def _block_choice(seed: int, stream: int, n_values: int, indices: np.ndarray) -> np.ndarray:
    """Value index per clip: a seeded permutation of range(n_values) in each block of clips."""
    out = np.empty(len(indices), dtype=np.int64)
    blocks = indices // n_values
    for block in np.unique(blocks):
        perm = np.random.default_rng([seed, 1, stream, int(block)]).permutation(n_values)
        sel = blocks == block
        out[sel] = perm[indices[sel] % n_values]
    return out


def factor_design(indices: Sequence[int] | np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Class index of every factor (and the 0-based ``fold``) for the given clip indices.

    Returns:
        ``{factor: (N,) int64}`` for each name in ``FACTORS`` plus ``"fold"`` (0..4).
    """
    idx = np.asarray(indices, dtype=np.int64)
    design = {name: _block_choice(seed, k, len(FACTOR_CLASSES[name]), idx) for k, name in enumerate(FACTORS)}
    design["fold"] = _block_choice(seed, len(FACTORS), NUM_FOLDS, idx)
    return design


def synthesise(index: int, config: SyntheticConfig, factors: dict[str, int] | None = None) -> np.ndarray:
    """Clip ``index`` as float32 ``(config.num_samples,)`` in [-1, 1].

    Args:
        factors: its class indices (from ``factor_design``); computed when None.
    """
    if factors is None:
        factors = {k: int(v[0]) for k, v in factor_design([index], config.seed).items()}
    sr, total = config.sample_rate, config.num_samples
    rng = np.random.default_rng([config.seed, 0, int(index)])
    family = FAMILIES[FACTOR_CLASSES["family"][factors["family"]]]
    f0 = 440.0 * 2.0 ** ((factor_value("pitch", factors["pitch"]) - 69) / 12)
    start = int(round(factor_value("onset", factors["onset"], 1.0) * total))
    n = min(int(round(factor_value("duration", factors["duration"], 1.0) * total)), total - start)
    t = np.arange(n) / sr
    ratios, amps = np.asarray(family.ratios), np.asarray(family.amps)
    keep = ratios * f0 < 0.45 * sr
    ratios, amps = ratios[keep], amps[keep]
    phases = rng.uniform(0.0, 2 * np.pi, size=len(ratios))
    partials = np.sin(2 * np.pi * f0 * ratios[:, None] * t + phases[:, None])
    if family.decay_s is not None:  # higher partials die faster (bell-like)
        partials *= np.exp(-t[None, :] * np.sqrt(ratios)[:, None] / family.decay_s)
    note = amps @ partials
    if family.breath > 0:  # noise bands around the first harmonics
        freqs = np.fft.rfftfreq(n, 1.0 / sr)
        centres = f0 * np.arange(1, 7)
        centres = centres[centres < 0.45 * sr]
        weights = np.array([0.3, 1.0, 0.8, 0.6, 0.5, 0.4])[:len(centres)]
        mask = (weights * np.exp(-0.5 * ((freqs[:, None] - centres) / (0.08 * centres)) ** 2)).sum(1)
        band = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * mask, n)
        note = note + family.breath * band * _rms(note) / max(_rms(band), 1e-12)
    envelope = np.minimum(1.0, (np.arange(n) + 1) / max(1.0, family.attack_s * sr))
    envelope *= np.minimum(1.0, (n - np.arange(n)) / max(1.0, _RELEASE_S * sr))
    note = note * envelope
    level = 10.0 ** (factor_value("loudness", factors["loudness"]) / 20.0)
    clip = np.zeros(total)
    clip[start:start + n] = note * (level / max(_rms(note), 1e-12))
    ratio = factor_value("noise", factors["noise"])
    if ratio > 0:
        clip += rng.standard_normal(total) * (level * ratio)
    return np.clip(clip, -1.0, 1.0).astype(np.float32)


def synthesise_batch(indices: Sequence[int], config: SyntheticConfig) -> np.ndarray:
    """Clips ``indices`` stacked as float32 ``(N, config.num_samples)``."""
    design = factor_design(indices, config.seed)
    out = np.empty((len(indices), config.num_samples), dtype=np.float32)
    for row, index in enumerate(indices):
        out[row] = synthesise(int(index), config, {k: int(v[row]) for k, v in design.items()})
    return out


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


class SyntheticAudio(AudioDataset):
    """The synthetic clips, generated on demand in ``load`` (nothing on disk).

    Records have ``path=None``; ``meta`` holds ``index`` (clip number, also after
    ``subset``), ``fold`` (1..5), ``seed``, every factor's class name under its name and its
    number under ``<factor>_value``. ``label`` indexes ``FACTOR_CLASSES[config.label]``.

    Args:
        config: the settings.
        keep_in_memory: keep generated arrays in a dict (per process) so later epochs skip
            synthesis (about 1 ms per 2 s clip).
    """

    def __init__(self, config: SyntheticConfig | None = None, keep_in_memory: bool = False) -> None:
        self.config = config or SyntheticConfig()
        cfg = self.config
        design = factor_design(np.arange(cfg.n_clips), cfg.seed)
        records = []
        for i in range(cfg.n_clips):
            meta: dict[str, Any] = {"index": i, "fold": int(design["fold"][i]) + 1, "seed": cfg.seed}
            for name in FACTORS:
                k = int(design[name][i])
                meta[name] = FACTOR_CLASSES[name][k]
                meta[f"{name}_value"] = factor_value(name, k, cfg.seconds)
            label = int(design[cfg.label][i])
            records.append(AudioRecord(None, label, (label,), meta))
        super().__init__("synthetic", records, FACTOR_CLASSES[cfg.label], cfg.sample_rate)
        self._memo: dict[int, np.ndarray] | None = {} if keep_in_memory else None

    def load(self, index: int) -> np.ndarray:
        """Clip at position ``index`` as float32 ``(T,)``."""
        meta = self.records[index].meta
        clip_index = int(meta["index"])
        if self._memo is not None and clip_index in self._memo:
            return self._memo[clip_index]
        factors = {name: FACTOR_CLASSES[name].index(meta[name]) for name in FACTORS}
        factors["fold"] = int(meta["fold"]) - 1
        wave = synthesise(clip_index, self.config, factors)
        if self._memo is not None:
            self._memo[clip_index] = wave
        return wave

    def factor_labels(self, name: str) -> np.ndarray:
        """``(N,)`` int64 class index of factor ``name`` (into ``FACTOR_CLASSES[name]``)."""
        _check_factor(name)
        return np.array([FACTOR_CLASSES[name].index(r.meta[name]) for r in self.records], dtype=np.int64)

    def factor_values(self, name: str) -> np.ndarray:
        """``(N,)`` float64 numeric value of factor ``name`` (for regression)."""
        _check_factor(name)
        return np.array([r.meta[f"{name}_value"] for r in self.records], dtype=np.float64)

    def with_label(self, name: str) -> "SyntheticAudio":
        """The same clips labelled by factor ``name`` (class names of that factor)."""
        labels = self.factor_labels(name)
        out = self._copy_empty()
        out.config = dataclasses.replace(self.config, label=name)
        out.class_names = list(FACTOR_CLASSES[name])
        out.records = [AudioRecord(None, int(k), (int(k),), r.meta) for r, k in zip(self.records, labels)]
        return out


def _check_factor(name: str) -> None:
    if name not in FACTORS:
        raise KeyError(f"synthetic: unknown factor {name!r} (factors: {list(FACTORS)})")


def read_synthetic(root: str | Path | None = None, sample_rate: int = 16000, cache: Any = None,
                   **options: Any) -> SyntheticAudio:
    """Registry entry ``synthetic``: the in-memory set (``root`` and ``cache`` are unused).

    Args:
        root: must not be an ESC-50-layout folder (``meta/esc50.csv``): a written synthetic
            set is read with the ``esc50`` reader; anything else is ignored.
        options: ``n_clips``, ``seconds``, ``seed``, ``label`` (see ``SyntheticConfig``) and
            ``keep_in_memory``.

    Raises:
        ConfigError: an unknown option (names it and lists the allowed ones) or a bad value.
        ValueError: ``root`` holds an ESC-50 layout.
    """
    if root is not None and (Path(root).expanduser() / "meta" / "esc50.csv").is_file():
        raise ValueError(f"synthetic: {root} holds an ESC-50 layout (meta/esc50.csv); read it with "
                         f"'esc50:{root}' (label_column=<factor>) instead")
    options = dict(options)
    keep = options.pop("keep_in_memory", False)
    if not isinstance(keep, bool):
        raise ConfigError(f"synthetic.keep_in_memory: expected true or false, got {keep!r}")
    if "sample_rate" in options:
        raise ConfigError("synthetic: pass sample_rate as the reader argument, not as an option")
    config = from_dict(SyntheticConfig, {**options, "sample_rate": int(sample_rate)}, "synthetic")
    return SyntheticAudio(config, keep_in_memory=keep)


def write_esc50_layout(root: str | Path, config: SyntheticConfig | None = None, overwrite: bool = False) -> Path:
    """Write the clips as ``root/audio/*.wav`` (32-bit float) and ``root/meta/esc50.csv``.

    The csv header is ESC-50's ``filename,fold,target,category,esc10,src_file,take`` followed
    by one column per factor (its class names). ``category``/``target`` are the
    ``config.label`` factor's class name/index, ``fold`` is balanced over 1..5, ``esc10`` is
    ``False``, ``src_file`` the clip index and ``take`` ``A``; file names follow ESC-50's
    ``{fold}-{src_file}-{take}-{target}.wav``.

    Returns:
        ``root``.

    Raises:
        OutputExistsError: ``meta/esc50.csv`` exists and ``overwrite`` is False (names it;
            a ``FileExistsError``). Nothing is written then.
    """
    from aiaudio.data.audio_io import write_audio
    from core.errors import OutputExistsError

    config = config or SyntheticConfig()
    root = Path(root).expanduser()
    csv_path = root / "meta" / "esc50.csv"
    if csv_path.exists() and not overwrite:
        raise OutputExistsError(f"{csv_path} already exists; pass overwrite=True to replace it")
    dataset = SyntheticAudio(config)
    rows = []
    for i, record in enumerate(dataset.records):
        meta = record.meta
        filename = f"{meta['fold']}-{meta['index']}-A-{record.label}.wav"
        write_audio(root / "audio" / filename, dataset.load(i), config.sample_rate, subtype="FLOAT")
        rows.append([filename, meta["fold"], record.label, meta[config.label], "False", meta["index"], "A"]
                    + [meta[name] for name in FACTORS])
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(ESC50_COLUMNS) + list(FACTORS))
        writer.writerows(rows)
    return root
