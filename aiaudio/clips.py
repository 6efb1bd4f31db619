"""Audio clips as the downstream code sees them: log-mel pieces of whole clips plus labels.

:class:`AudioClips` implements ``core.downstream.clips.ClipSource`` over an
``aiaudio.data.AudioDataset``: every clip is cut into consecutive fixed-length pieces
(MetaAudio: 5 s, the last piece zero-padded; ``aiaudio.data.Pieces``) and turned into
normalised log-mels ``(1, n_mels, frames)`` by a fitted ``aiaudio.frontend.Frontend`` on
demand, in batches. Computed clips are kept in a bounded least-recently-used cache, so
few-shot episodes that revisit clips do not decode and transform them again.

:func:`encoder_frontend` rebuilds the input pipeline an encoder was trained with (stored in
its file's ``extra["frontend"]``) or, for files without one, fits a default front end's
normaliser on the training split and warns.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Sequence

import torch
from torch import Tensor

from aiaudio.data.base import AudioDataset
from aiaudio.data.crops import Pieces
from aiaudio.frontend import Frontend, FrontendConfig
from core.downstream.clip_cache import CachedClips


def _frontend_device(frontend: Frontend) -> torch.device:
    return frontend.logmel.mel_fb.device


def clip_name(dataset: AudioDataset, index: int) -> str:
    """Clip ``index`` of ``dataset`` for messages: ``clip i (path)``, or ``clip i of 'name'``
    for clips served from memory."""
    path = dataset.records[int(index)].path
    return f"clip {int(index)} of {dataset.name!r}" if path is None else f"clip {int(index)} ({path})"


class AudioClips(CachedClips):
    """Log-mel pieces of the clips of an ``AudioDataset``.

    Args:
        dataset: the clips (decoded on demand at ``dataset.sample_rate``).
        frontend: a fitted front end for that sample rate (may live on a GPU; pieces come
            back on the CPU).
        seconds: piece length; a clip of ``L`` seconds gives ``ceil(L / seconds)`` pieces
            (at least one), the last zero-padded.
        hop: seconds between piece starts (None = ``seconds``, no overlap).
        targets: None for classification (labels are the records' ``label``); else
            regression targets ``(N,)`` or ``(N, T)`` (see :meth:`regression`).
        batch_size: pieces per front-end call.
        cache_mb: bound of the in-memory cache of computed clips (0 disables it).

    Attributes:
        labels: ``(N,)`` int64 class ids or ``(N, T)`` float32 targets.
        class_names: the dataset's class names (None for regression).
        hits, misses: cache statistics of :meth:`pieces` (clips served from / not in cache).
    """

    def __init__(self, dataset: AudioDataset, frontend: Frontend, seconds: float = 5.0, *,
                 hop: float | None = None, targets: Tensor | None = None, batch_size: int = 64,
                 cache_mb: float = 512.0) -> None:
        if not isinstance(dataset, AudioDataset):
            raise TypeError(f"AudioClips: dataset must be an AudioDataset, got {type(dataset).__name__}")
        if frontend.config.sample_rate != dataset.sample_rate:
            raise ValueError(f"AudioClips: the front end expects {frontend.config.sample_rate} Hz but dataset "
                             f"{dataset.name!r} is decoded at {dataset.sample_rate} Hz")
        if not frontend.fitted:
            raise ValueError("AudioClips: the front end has no normalisation statistics (fit it first, "
                             "or use encoder_frontend)")
        if batch_size < 1 or cache_mb < 0:
            raise ValueError(f"AudioClips: need batch_size >= 1 and cache_mb >= 0, got {batch_size}, {cache_mb}")
        self.dataset = dataset
        self.frontend = frontend.eval()
        self.cutter = Pieces(dataset, seconds=seconds, hop=hop)
        self.seconds = float(seconds)
        self._init_cache(cache_mb, batch_size)
        if targets is None:
            labels = torch.from_numpy(dataset.labels)
            if len(labels) and int(labels.min()) < 0:
                count = int((labels < 0).sum())
                raise ValueError(f"AudioClips: {count} clip(s) of {dataset.name!r} have no label (-1); "
                                 f"choose a labelled dataset or label field")
            self.labels = labels
            self.class_names = list(dataset.class_names)
        else:
            targets = torch.as_tensor(targets, dtype=torch.float32)
            targets = targets.unsqueeze(1) if targets.dim() == 1 else targets
            if targets.dim() != 2 or targets.shape[0] != len(dataset):
                raise ValueError(f"AudioClips: targets must be (N,) or (N, T) with N = {len(dataset)} clips, "
                                 f"got shape {tuple(targets.shape)}")
            if not bool(torch.isfinite(targets).all()):
                raise ValueError(f"AudioClips: regression targets of {dataset.name!r} contain NaN or inf")
            self.labels = targets
            self.class_names = None

    @classmethod
    def regression(cls, dataset: AudioDataset, frontend: Frontend, targets: str | Sequence[str] | Tensor,
                   seconds: float = 5.0, **kwargs: Any) -> "AudioClips":
        """Clips with float targets ``(N, T)``.

        Args:
            targets: a tensor ``(N,)``/``(N, T)``, or the name(s) of numeric ``record.meta``
                fields (one output per field, e.g. ``"pitch_value"`` of the synthetic set).

        Raises:
            KeyError / ValueError: a clip lacks a field or its value is not a number (names
                the field and the clip).
        """
        if isinstance(targets, Tensor):
            return cls(dataset, frontend, seconds, targets=targets, **kwargs)
        fields = [targets] if isinstance(targets, str) else list(targets)
        if not fields:
            raise ValueError("AudioClips.regression: no target field given")
        rows = []
        for i, record in enumerate(dataset.records):
            row = []
            for name in fields:
                where = f"clip {i} ({record.path or record.meta.get('index', i)}) of {dataset.name!r}"
                if name not in record.meta:
                    known = ", ".join(sorted(map(str, record.meta))) or "none"
                    raise KeyError(f"target field {name!r} missing in {where}; its fields: {known}")
                try:
                    row.append(float(record.meta[name]))
                except (TypeError, ValueError):
                    raise ValueError(f"target field {name!r} of {where} is not a number: "
                                     f"{record.meta[name]!r}") from None
            rows.append(row)
        values = torch.tensor(rows, dtype=torch.float32).reshape(len(rows), len(fields))
        return cls(dataset, frontend, seconds, targets=values, **kwargs)

    def describe(self, index: int) -> str:
        """Clip ``index`` named by its audio file (or its position, for clips served from memory)."""
        return clip_name(self.dataset, index)

    def pieces(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Log-mels ``(P, 1, n_mels, frames)`` float32 (CPU) of all pieces of clips ``indices``
        and ``owner`` ``(P,)`` int64 (position in ``indices`` of each piece's clip)."""
        idx = self._check_indices(indices)
        if not idx:
            raise ValueError("AudioClips.pieces: no clips requested")
        chosen = self.fetch(idx)
        owner = torch.cat([torch.full((c.shape[0],), k, dtype=torch.long) for k, c in enumerate(chosen)])
        return torch.cat(chosen), owner

    @torch.no_grad()
    def _compute(self, indices: list[int]) -> dict[int, Tensor]:
        """Decode, cut and transform clips ``indices`` -> ``{index: (P_i, 1, n_mels, frames)}``."""
        if not indices:
            return {}
        waves = [self.cutter.cut(torch.from_numpy(self.dataset.load(i))) for i in indices]
        counts = [w.shape[0] for w in waves]
        flat = torch.cat(waves)
        device = _frontend_device(self.frontend)
        mels = torch.cat([self.frontend(flat[k:k + self.batch_size].to(device)).float().cpu()
                          for k in range(0, flat.shape[0], self.batch_size)])
        return dict(zip(indices, mels.split(counts)))


def frontend_from_extra(extra: dict[str, Any], encoder_path: str | os.PathLike) -> Frontend | None:
    """The front end stored in an encoder file's ``extra["frontend"]`` (None when absent).

    Raises:
        ValueError: the stored record is malformed (names the encoder file).
    """
    record = (extra or {}).get("frontend")
    if record is None:
        return None
    try:
        return Frontend.from_dict(record)
    except ValueError as error:
        raise ValueError(f"{encoder_path}: extra['frontend'] is not a valid front end record ({error})") from None


def fit_frontend(train: AudioDataset, config: FrontendConfig | None = None, seconds: float = 5.0,
                 max_clips: int = 256, batch_size: int = 32, progress: bool = False) -> Frontend:
    """A front end whose normaliser is fitted on the pieces of the first ``max_clips`` clips of
    ``train`` (deterministic: clips in dataset order).

    Args:
        config: log-mel settings (default MetaAudio's at ``train.sample_rate``).
    """
    if len(train) == 0:
        raise ValueError(f"fit_frontend: dataset {train.name!r} has no clips to fit the normaliser on")
    frontend = Frontend(config or FrontendConfig(sample_rate=train.sample_rate))
    if frontend.config.sample_rate != train.sample_rate:
        raise ValueError(f"fit_frontend: front end at {frontend.config.sample_rate} Hz, dataset {train.name!r} "
                         f"at {train.sample_rate} Hz")
    if frontend.config.normalise == "none":
        return frontend
    cutter = Pieces(train, seconds=seconds)
    count = min(len(train), max_clips)

    def batches():
        pending: list[Tensor] = []
        for i in range(count):
            pending.extend(cutter.cut(torch.from_numpy(train.load(i))))
            while len(pending) >= batch_size:
                yield torch.stack(pending[:batch_size])
                pending = pending[batch_size:]
        if pending:
            yield torch.stack(pending)

    return frontend.fit(batches(), progress=progress)


def encoder_frontend(extra: dict[str, Any], encoder_path: str | os.PathLike, train: AudioDataset,
                     seconds: float = 5.0, max_clips: int = 256, progress: bool = False) -> Frontend:
    """The input pipeline for an encoder: its stored front end, else one fitted on ``train``.

    A stored front end without statistics keeps its settings and gets its normaliser fitted
    on ``train``. Either fallback warns, naming the encoder file.

    Raises:
        ValueError: malformed stored record, or its sample rate differs from ``train``'s.
    """
    stored = frontend_from_extra(extra, encoder_path)
    if stored is not None and stored.config.sample_rate != train.sample_rate:
        raise ValueError(f"{encoder_path}: the encoder's front end expects {stored.config.sample_rate} Hz "
                         f"but the dataset is decoded at {train.sample_rate} Hz")
    if stored is not None and stored.fitted:
        return stored
    what = "has no normalisation statistics" if stored is not None else "stores no front end (extra['frontend'])"
    warnings.warn(f"{encoder_path} {what}: fitting the log-mel normaliser on {min(len(train), max_clips)} "
                  f"training clips of {train.name!r}; results may differ from the encoder's pre-training "
                  f"input pipeline", UserWarning, stacklevel=2)
    return fit_frontend(train, stored.config if stored is not None else None, seconds, max_clips,
                        progress=progress)
