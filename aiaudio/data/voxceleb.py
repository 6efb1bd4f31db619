"""VoxCeleb1 reader (identification layout), label = speaker id.

Layout::

    <root>/wav/id<NNNNN>/<youtube_id>/<NNNNN>.wav   16 kHz, 1,251 speakers

``root`` may be the folder holding ``wav/`` or ``wav/`` itself.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aiaudio.data.layout import require_path
from aiaudio.data.base import AudioDataset, AudioRecord

LAYOUT = "<root>/wav/id<NNNNN>/<youtube_id>/<NNNNN>.wav (root = the folder holding wav/, or wav/ itself)"


def _sorted_dirs(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def read_voxceleb(root: str | Path, sample_rate: int = 16000, cache: Any = None) -> AudioDataset:
    """Read VoxCeleb1 utterances.

    Returns:
        ``AudioDataset`` with one class per speaker id (sorted) and ``meta`` =
        ``{"speaker", "video", "utterance"}``.
    """
    if root is None:
        raise ValueError(f"voxceleb needs a root folder: {LAYOUT}")
    root = require_path(root, "voxceleb", LAYOUT, directory=True)
    wav = root / "wav" if (root / "wav").is_dir() else root
    speakers = [s for s in _sorted_dirs(wav) if s.startswith("id")]
    if not speakers:
        raise FileNotFoundError(f"voxceleb: no speaker folders id*/ in {wav}; expected layout: {LAYOUT}")
    records = []
    for label, speaker in enumerate(speakers):
        for video in _sorted_dirs(wav / speaker):
            for utterance in sorted(p.name for p in (wav / speaker / video).glob("*.wav")):
                meta = {"speaker": speaker, "video": video, "utterance": Path(utterance).stem}
                records.append(AudioRecord(wav / speaker / video / utterance, label, (label,), meta))
    if not records:
        raise FileNotFoundError(f"voxceleb: no .wav files under {wav}; expected layout: {LAYOUT}")
    return AudioDataset("voxceleb", records, speakers, sample_rate, cache, root)
