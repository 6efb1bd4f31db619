"""Decoding and writing audio files (soundfile + soxr), plus the small metadata helpers the
readers share (checked paths, csv tables, class-name ordering).

``decode_audio`` is the single place where a file becomes a waveform: every reader, the cache
and the crop wrappers go through it, so every bad file fails the same way (``BadAudioError``
naming the file and the reason).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

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


# --------------------------------------------------------------------------------------------
# Metadata helpers used by the readers.
# --------------------------------------------------------------------------------------------

def require_path(path: str | Path, dataset: str, expected: str, directory: bool = False) -> Path:
    """``path`` if it exists (as a folder when ``directory``), else FileNotFoundError that names
    it and describes the layout the reader ``dataset`` expected."""
    path = Path(path).expanduser()
    ok = path.is_dir() if directory else path.is_file()
    if not ok:
        kind = "folder" if directory else "file"
        raise FileNotFoundError(f"{dataset}: {kind} {path} not found; expected layout: {expected}")
    return path


def read_csv(path: Path, required: Sequence[str], header: bool = True) -> list[dict[str, str]]:
    """Rows of a csv file as dicts (header row as keys).

    Raises:
        ValueError: a required column is missing (names the file, the missing and found columns).
    """
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        missing = [c for c in required if c not in columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; found header {columns}, "
                             f"expected at least {list(required)}")
        return [dict(row) for row in reader]


def typed(value: str) -> Any:
    """A csv cell as int when it is a canonical decimal integer (``"3"`` -> 3, ``"007"`` stays)."""
    text = value.strip()
    if text.lstrip("-").isdigit() and str(int(text)) == text:
        return int(text)
    return value


def _numeric(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def ordered_classes(values: Iterable[str]) -> list[str]:
    """Distinct label strings, sorted numerically when all look numeric, else as strings."""
    distinct = set(values)
    if distinct and all(_numeric(v) is not None for v in distinct):
        return sorted(distinct, key=lambda v: (_numeric(v), v))
    return sorted(distinct)


def label_text(value: Any) -> str:
    """A metadata value as a class name (lists joined with commas, bools/numbers via ``str``)."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)
