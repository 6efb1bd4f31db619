"""Decoding and writing audio files (soundfile + soxr).

``decode_audio`` is the single place where a file becomes a waveform: every reader, the cache
and the crop wrappers go through it, so every bad file fails the same way (``BadAudioError``
naming the file and the reason). A file is bad when it is missing or unreadable, holds no
samples, holds NaN/inf samples, or peaks above ``aiaudio.frontend.MAX_ABS_SAMPLE`` (1e6:
audio is nominally within [-1, 1]; beyond the bound a file is corrupt or wrongly scaled, and
far beyond it the float32 log-mel overflows to inf/NaN).

A WAV whose data chunk is cut short (the header declares more frames than the file holds)
still decodes: libsndfile silently returns the frames present. ``truncated_wav`` compares the
RIFF header with the file size; ``decode_audio`` warns (``TruncatedAudioWarning``, once per file
and process) and ``aiaudio.data.scan`` lists such files.
"""
from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
import soxr

from aiaudio.data.base import BadAudioError
from aiaudio.frontend import MAX_ABS_SAMPLE, sample_problem

__all__ = ["MAX_ABS_SAMPLE", "Truncation", "TruncatedAudioWarning", "decode_audio", "truncated_wav", "write_audio"]

_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # streaming writers leave the data size unset (0 or -1)


class TruncatedAudioWarning(UserWarning):
    """A WAV file holds fewer frames than its header declares (the message names the file)."""


class Truncation(NamedTuple):
    """A WAV cut short: the frames its header declares, the frames present, its sample rate."""
    declared: int
    present: int
    sample_rate: int

    def describe(self) -> str:
        """``truncated WAV: the header declares N frames (x s) but the file holds M (y s)``."""
        rate = max(self.sample_rate, 1)
        return (f"truncated WAV: the header declares {self.declared} frames ({self.declared / rate:.3f} s) but "
                f"the file holds {self.present} ({self.present / rate:.3f} s)")


def truncated_wav(path: str | Path) -> Truncation | None:
    """``Truncation(declared frames, frames present, rate)`` when ``path`` is a RIFF/RF64 WAV
    whose data chunk is cut short, else None (complete WAV, another format, or a header that
    cannot be parsed).

    Only the chunk headers are read: the ``fmt `` chunk gives the frame size (block align),
    the ``data`` chunk its declared byte size, which is compared with the bytes that follow it
    in the file. A data size of 0 or 0xFFFFFFFF (left unset by streaming writers) is not a
    truncation.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(12)
            if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RF64"):
                return None
            block_align, rate, declared64, offset = 0, 0, None, 12
            while offset + 8 <= size:
                handle.seek(offset)
                chunk, length = struct.unpack("<4sI", handle.read(8))
                if chunk == b"ds64":
                    ds64 = handle.read(16)
                    declared64 = struct.unpack("<QQ", ds64)[1] if len(ds64) == 16 else None
                elif chunk == b"fmt ":
                    fmt = handle.read(16)
                    if len(fmt) >= 14:
                        _, _, rate, _, block_align = struct.unpack("<HHIIH", fmt[:14])
                elif chunk == b"data":
                    declared = declared64 if head[:4] == b"RF64" and declared64 is not None else length
                    present = size - (offset + 8)
                    if block_align <= 0 or (declared in _UNKNOWN_SIZES and declared64 is None) or declared <= present:
                        return None
                    return Truncation(declared // block_align, present // block_align, rate)
                offset += 8 + length + (length & 1)
    except (OSError, struct.error):
        return None
    return None


def decode_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read an audio file as mono float32 at ``sample_rate``.

    Channels are averaged; the signal is resampled with soxr (high quality) when the file's
    rate differs.

    Returns:
        ``(T,)`` float32 array.

    Warns:
        TruncatedAudioWarning: a WAV holds fewer frames than its header declares (the frames
            present are returned).

    Raises:
        BadAudioError: the file is missing or unreadable (soundfile's message is kept), has no
            samples, contains NaN/inf samples, or peaks above ``MAX_ABS_SAMPLE``. The error
            names the file.
    """
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as error:  # LibsndfileError is a RuntimeError
        reason = "file does not exist" if not os.path.exists(path) else f"unreadable ({error})"
        raise BadAudioError(path, reason) from error
    cut = truncated_wav(path)
    if data.shape[0] == 0:
        detail = f" ({cut.describe()})" if cut else ""
        raise BadAudioError(path, f"contains no samples{detail}")
    if cut is not None:
        warnings.warn(f"{path}: {cut.describe()}; reading the {cut.present} frames present",
                      TruncatedAudioWarning, stacklevel=2)
    finite = np.isfinite(data)
    peak = float(np.abs(data, where=finite, out=np.zeros_like(data)).max())
    problem = sample_problem(int(data.size - finite.sum()), peak)
    if problem is not None:
        raise BadAudioError(path, f"{problem}; fix or remove the file")
    wave = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
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
