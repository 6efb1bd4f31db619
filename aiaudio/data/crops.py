"""Training crops and evaluation pieces over any ``AudioDataset``, plus a bad-file scan.

``RandomCrops`` draws each crop from a ``torch.Generator`` seeded by (seed, epoch, index), so
an item is the same whichever DataLoader worker produces it and a resumed run sees the same
crops; ``set_epoch`` changes them per epoch. ``Pieces`` cuts whole clips into consecutive
fixed-length pieces for variable-length evaluation (MetaAudio votes over a query's pieces).
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from aiaudio.data.base import AudioDataset, BadAudioError


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator whose state depends only on (seed, epoch, index) (well mixed via SeedSequence)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 31) ^ int(state[1]))


def fit_length(wave: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """A random ``length``-sample window of ``wave`` ``(T,)``; shorter clips are placed at a
    random offset inside zeros (so the padding position varies like the crop position)."""
    total = wave.shape[0]
    if total == length:
        return wave
    slack = abs(total - length)
    offset = int(torch.randint(0, slack + 1, (1,), generator=generator))
    if total > length:
        return wave[offset:offset + length]
    out = wave.new_zeros(length)
    out[offset:offset + total] = wave
    return out


class RandomCrops(Dataset):
    """Fixed-length random crops for training.

    Args:
        dataset: the clips.
        seconds: crop length; ``T = round(seconds * dataset.sample_rate)`` samples.
        seed: base seed of the per-item generators.
        skip_bad: on ``BadAudioError``, warn once per file, remember it in ``bad_files`` and
            serve the next readable clip instead (deterministically); otherwise the error
            propagates, naming the file.

    Item ``i``: ``{"wave": (T,) float32, "label": int, "index": int (clip actually served),
    "skipped": 1 if clip ``i`` was bad and replaced else 0}``. Summing ``skipped`` over an
    epoch (across workers) counts the bad files met.
    """

    def __init__(self, dataset: AudioDataset, seconds: float, seed: int = 0, skip_bad: bool = False) -> None:
        if seconds <= 0:
            raise ValueError(f"RandomCrops: seconds must be positive, got {seconds}")
        self.dataset = dataset
        self.seconds = float(seconds)
        self.length = int(round(seconds * dataset.sample_rate))
        self.seed = int(seed)
        self.skip_bad = skip_bad
        self.epoch = 0
        self.bad_files: set[str] = set()

    def set_epoch(self, epoch: int) -> None:
        """Select the crops of ``epoch`` (call before each epoch, in the main process)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def _crop(self, index: int) -> dict[str, Any]:
        wave = torch.from_numpy(self.dataset.load(index))
        generator = item_generator(self.seed, self.epoch, index)
        return {"wave": fit_length(wave, self.length, generator),
                "label": int(self.dataset.records[index].label), "index": index}

    def _is_known_bad(self, index: int) -> bool:
        path = self.dataset.records[index].path
        return path is not None and str(path) in self.bad_files

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not self.skip_bad:
            return {**self._crop(index), "skipped": 0}
        n = len(self.dataset)
        for step in range(n):
            candidate = (index + step) % n
            if self._is_known_bad(candidate):
                continue
            try:
                item = self._crop(candidate)
            except BadAudioError as error:
                if error.path not in self.bad_files:
                    self.bad_files.add(error.path)
                    warnings.warn(f"skipping bad audio file {error}", RuntimeWarning, stacklevel=2)
                continue
            return {**item, "skipped": int(step > 0)}
        raise BadAudioError(self.dataset.root or self.dataset.name, f"no readable clip among {n} (all skipped)")


class Pieces(Dataset):
    """Whole clips cut into consecutive fixed-length pieces, for evaluation.

    Args:
        dataset: the clips.
        seconds: piece length (MetaAudio: 5 s); ``T = round(seconds * sample_rate)``.
        hop: seconds between piece starts (default ``seconds``: no overlap).
        min_seconds: a trailing piece with less real audio than this is dropped (never the
            first); 0 keeps every remainder.

    Item ``i``: ``{"pieces": (P, T) float32, "label": int, "index": int}``; the last piece is
    zero-padded, and a clip shorter than ``T`` gives one padded piece.
    """

    def __init__(self, dataset: AudioDataset, seconds: float = 5.0, hop: float | None = None,
                 min_seconds: float = 0.0) -> None:
        if seconds <= 0 or (hop is not None and hop <= 0):
            raise ValueError(f"Pieces: seconds and hop must be positive, got {seconds}, {hop}")
        self.dataset = dataset
        self.length = int(round(seconds * dataset.sample_rate))
        self.hop = int(round((hop if hop is not None else seconds) * dataset.sample_rate))
        self.min_samples = int(round(min_seconds * dataset.sample_rate))

    def __len__(self) -> int:
        return len(self.dataset)

    def cut(self, wave: torch.Tensor) -> torch.Tensor:
        """``(T_clip,)`` -> ``(P, T)`` consecutive pieces, the last zero-padded."""
        total = wave.shape[0]
        count = 1 + max(0, math.ceil((total - self.length) / self.hop))
        if count > 1 and total - (count - 1) * self.hop < self.min_samples:
            count -= 1
        padded = wave.new_zeros((count - 1) * self.hop + self.length)
        used = min(total, padded.shape[0])
        padded[:used] = wave[:used]
        return padded.unfold(0, self.length, self.hop).contiguous()

    def __getitem__(self, index: int) -> dict[str, Any]:
        wave = torch.from_numpy(self.dataset.load(index))
        return {"pieces": self.cut(wave), "label": int(self.dataset.records[index].label), "index": index}


def collate_pieces(batch: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack the pieces of several clips.

    Returns:
        ``{"pieces": (sum P, T), "owner": (sum P,) int64 position of each piece's clip in the
        batch, "label": (B,) int64, "index": (B,) int64}``; vote per clip by grouping on ``owner``.
    """
    pieces = torch.cat([item["pieces"] for item in batch])
    owner = torch.cat([torch.full((item["pieces"].shape[0],), k, dtype=torch.long) for k, item in enumerate(batch)])
    return {"pieces": pieces, "owner": owner,
            "label": torch.tensor([int(item["label"]) for item in batch], dtype=torch.long),
            "index": torch.tensor([int(item["index"]) for item in batch], dtype=torch.long)}


def scan(dataset: AudioDataset, progress: bool = False, lengths: dict[int, int] | None = None,
         warned: list[tuple[int, str, str]] | None = None) -> list[tuple[int, str, str]]:
    """Decode every clip (filling the cache if the dataset has one) and list the bad ones.

    Args:
        dataset: the clips.
        progress: show a tqdm bar.
        lengths: if given, filled with ``{index: samples}`` of every readable clip (so a
            caller needing durations does not decode a second time).
        warned: if given, filled with ``(index, path, reason)`` for readable clips that are
            suspect: WAV files cut short (``truncated_wav``: header and present lengths).
            ``decode_audio``'s own warning for them is silenced here.

    Returns:
        ``[(index, path, reason), ...]`` for each clip raising ``BadAudioError``.
    """
    from aiaudio.data.audio_io import TruncatedAudioWarning, truncated_wav

    indices = range(len(dataset))
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=f"scanning {dataset.name}", unit="clip")
    bad = []
    for index in indices:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TruncatedAudioWarning)
                wave = dataset.load(index)
        except BadAudioError as error:
            bad.append((index, error.path, error.reason))
            continue
        if lengths is not None:
            lengths[index] = len(wave)
        path = dataset.records[index].path
        cut = truncated_wav(path) if warned is not None and path is not None else None
        if cut is not None:
            warned.append((index, str(path), cut.describe()))
    return bad
