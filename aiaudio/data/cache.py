"""On-disk cache of decoded, resampled waveforms, so later epochs skip decoding.

An entry is keyed by the file's absolute path, size, modification time (ns) and the target
sample rate, hashed into ``<directory>/<h[:2]>/<h>.npy``. Editing or replacing the source file
changes size or mtime and therefore the key, so stale entries are never served. Entries are
written to a temporary file and moved into place with ``os.replace``, so concurrent
DataLoader workers (or a killed run) never leave a half-written entry under the final name;
an entry that is nevertheless unreadable is decoded again and overwritten.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

_VERSION = "v2"  # bump when decode_audio's output changes, to invalidate old entries (v2: peak bound)


class AudioCache:
    """Cache of ``(T,)`` float32 arrays in ``directory`` (created on first use).

    Attributes:
        hits, misses: counts in this process (each DataLoader worker has its own).
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory).expanduser()
        self.hits = 0
        self.misses = 0

    def entry_path(self, path: str | Path, sample_rate: int) -> Path | None:
        """Where the entry for ``path`` at ``sample_rate`` lives; None if ``path`` cannot be stat'ed."""
        source = Path(path).expanduser().absolute()
        try:
            stat = source.stat()
        except OSError:
            return None
        key = f"{_VERSION}\0{source}\0{stat.st_size}\0{stat.st_mtime_ns}\0{int(sample_rate)}"
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:40]
        return self.directory / digest[:2] / f"{digest}.npy"

    def get_or_decode(self, path: str | Path, sample_rate: int,
                      decode: Callable[[str | Path, int], np.ndarray]) -> np.ndarray:
        """The cached waveform of ``path``, or ``decode(path, sample_rate)`` stored for next time.

        Returns:
            ``(T,)`` float32 array.

        Raises:
            Whatever ``decode`` raises (e.g. ``BadAudioError``); failures are not cached.
        """
        entry = self.entry_path(path, sample_rate)
        if entry is None:  # missing source: let decode raise its error naming the file
            return decode(path, sample_rate)
        wave = _load_entry(entry)
        if wave is not None:
            self.hits += 1
            return wave
        self.misses += 1
        wave = decode(path, sample_rate)
        self._store(entry, wave)
        return wave

    def _store(self, entry: Path, wave: np.ndarray) -> None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=entry.parent, prefix=".tmp-", suffix=".npy")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.save(stream, np.ascontiguousarray(wave, dtype=np.float32), allow_pickle=False)
            os.replace(temp, entry)
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise

    def __repr__(self) -> str:
        return f"AudioCache({str(self.directory)!r}, hits={self.hits}, misses={self.misses})"


def _load_entry(entry: Path) -> np.ndarray | None:
    """The stored array, or None when absent or not a valid non-empty 1-D float32 array."""
    if not entry.is_file():
        return None
    try:
        wave = np.load(entry, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if not isinstance(wave, np.ndarray) or wave.ndim != 1 or wave.dtype != np.float32 or wave.size == 0:
        return None
    return wave
