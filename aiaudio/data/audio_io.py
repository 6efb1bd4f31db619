"""Decoding and writing audio files (soundfile + soxr).

``decode_audio`` is the single place where a file becomes a waveform: every reader, the cache
and the crop wrappers go through it, so every bad file fails the same way (``BadAudioError``
naming the file and the reason).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from aiaudio.data.base import BadAudioError


def decode_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read an audio file as mono float32 at ``sample_rate``.

    Channels are averaged; the signal is resampled with soxr (high quality) when the file's
    rate differs.

    Returns:
        ``(T,)`` float32 array.

    Raises:
        BadAudioError: the file is missing or unreadable (soundfile's message is kept), has no
            samples, or contains NaN/inf samples. The error names the file.
    """
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as error:  # LibsndfileError is a RuntimeError
        reason = "file does not exist" if not os.path.exists(path) else f"unreadable ({error})"
        raise BadAudioError(path, reason) from error
    if data.shape[0] == 0:
        raise BadAudioError(path, "contains no samples")
    wave = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(wave).all():
        bad = int((~np.isfinite(wave)).sum())
        raise BadAudioError(path, f"contains {bad} non-finite (NaN/inf) samples")
    if int(file_rate) != int(sample_rate):
        wave = soxr.resample(wave, int(file_rate), int(sample_rate), quality="HQ")
        if wave.shape[0] == 0:
            raise BadAudioError(path, f"too short to resample from {file_rate} Hz to {sample_rate} Hz")
    return np.ascontiguousarray(wave, dtype=np.float32)


def write_audio(path: str | Path, wave: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
    """Write ``wave`` (``(T,)`` mono or ``(T, C)``) to ``path``, creating parent folders.

    For WAV the default subtype is 16-bit PCM when every sample is finite and within [-1, 1],
    otherwise 32-bit float (so test files with NaN or loud samples survive the round trip).
    Other formats use soundfile's default for the extension (e.g. FLAC 16-bit, OGG Vorbis).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = np.asarray(wave, dtype=np.float32)
    if subtype is None and path.suffix.lower() == ".wav":
        in_range = bool(np.isfinite(wave).all()) and (wave.size == 0 or float(np.abs(wave).max()) <= 1.0)
        subtype = "PCM_16" if in_range else "FLOAT"
    sf.write(str(path), wave, int(sample_rate), subtype=subtype)
    return path
