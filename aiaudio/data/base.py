"""The dataset contract every audio reader follows.

A reader turns a dataset's published on-disk layout into an ``AudioDataset``: a list of
``AudioRecord`` (file + label indices + metadata) plus the class names. ``load(i)`` returns
the clip as a mono float32 numpy array at ``sample_rate``; ``__getitem__`` wraps it as
``(torch.Tensor (T,), label)``. Training crops and evaluation pieces are separate wrappers
(``aiaudio.data.crops``) so that every reader gets them for free.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from core.errors import BadFileError
from core.records import RecordDataset


class BadAudioError(BadFileError):
    """An audio file is unreadable, empty, contains non-finite samples or peaks above
    ``aiaudio.frontend.MAX_ABS_SAMPLE`` (the message names it: ``"<path>: <reason>"``)."""


@dataclass(frozen=True)
class AudioRecord:
    """One clip.

    Attributes:
        path: audio file, or None for clips served from memory.
        label: index into the dataset's ``class_names``; -1 when unlabelled.
        labels: all label indices (several for multi-label FSD50K; ``(label,)`` otherwise).
        meta: every metadata field the layout provides (fold, split, pitch, mids, ...).
    """
    path: Path | None
    label: int
    labels: tuple[int, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


class AudioDataset(RecordDataset):
    """Clips of one dataset (or a subset of it), decoded on demand.

    Args:
        name: dataset name (e.g. ``"esc50"``).
        records: the clips.
        class_names: label vocabulary; ``record.label`` indexes it.
        sample_rate: rate every clip is resampled to.
        cache: optional ``aiaudio.data.cache.AudioCache`` of decoded, resampled arrays.
        root: dataset directory (for messages).
    """

    def __init__(self, name: str, records: Sequence[AudioRecord], class_names: Sequence[str],
                 sample_rate: int = 16000, cache: Any = None, root: str | Path | None = None) -> None:
        self.name = name
        self.records = list(records)
        self.class_names = list(class_names)
        self.sample_rate = int(sample_rate)
        self.cache = cache
        self.root = Path(root) if root is not None else None

    def load(self, index: int) -> np.ndarray:
        """Clip ``index`` as mono float32 ``(T,)`` at ``sample_rate``.

        Raises:
            BadAudioError: the file is unreadable, empty or non-finite (names the file).
        """
        from aiaudio.data.audio_io import decode_audio

        path = self.records[index].path
        if path is None:
            raise TypeError(f"{type(self).__name__}: record {index} has no file and the class does not "
                            "override load() to serve it from memory")
        if self.cache is not None:
            return self.cache.get_or_decode(path, self.sample_rate, decode_audio)
        return decode_audio(path, self.sample_rate)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.load(index)), self.records[index].label

    def _relabel(self, record: AudioRecord, remap: dict[int, int]) -> AudioRecord:
        return AudioRecord(record.path, remap[record.label], tuple(remap[l] for l in record.labels if l in remap),
                           record.meta)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, clips={len(self)}, "
                f"classes={self.num_classes}, sample_rate={self.sample_rate})")
