"""ESC-50 reader (github.com/karolpiczak/ESC-50 layout).

Layout::

    <root>/meta/esc50.csv   filename,fold,target,category,esc10,src_file,take
    <root>/audio/<filename> 2,000 five-second 44.1 kHz clips, 50 classes, 5 folds
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from aiaudio.data.layout import label_text, ordered_classes, read_csv, require_path, typed
from aiaudio.data.base import AudioDataset, AudioRecord

LAYOUT = "<root>/meta/esc50.csv (filename,fold,target,category,esc10,src_file,take) and <root>/audio/*.wav"


def read_esc50(root: str | Path, sample_rate: int = 16000, cache: Any = None, *,
               label_column: str = "category", folds: int | Sequence[int] | None = None) -> AudioDataset:
    """Read ESC-50.

    Args:
        root: the ESC-50 folder (holding ``meta/`` and ``audio/``).
        sample_rate: target rate of the decoded clips.
        cache: optional ``AudioCache``.
        label_column: any csv column used as the class (``category`` names, ``target``
            numbers, ``esc10``, or extra columns of a modified csv).
        folds: keep only these folds (int or list); None keeps all five.

    Returns:
        ``AudioDataset`` whose ``meta`` holds every csv column (integers parsed).
    """
    if root is None:
        raise ValueError(f"esc50 needs a root folder: {LAYOUT}")
    root = require_path(root, "esc50", LAYOUT, directory=True)
    table = require_path(root / "meta" / "esc50.csv", "esc50", LAYOUT)
    audio = require_path(root / "audio", "esc50", LAYOUT, directory=True)
    rows = read_csv(table, ["filename", "fold", label_column])
    if folds is not None:
        keep = {int(f) for f in ([folds] if isinstance(folds, (int, str)) else folds)}
        known = {int(row["fold"]) for row in rows}
        if not keep <= known:
            raise ValueError(f"esc50: fold(s) {sorted(keep - known)} not in {table} (folds present: {sorted(known)})")
        rows = [row for row in rows if int(row["fold"]) in keep]
    class_names = ordered_classes(label_text(row[label_column]) for row in rows)
    index = {name: i for i, name in enumerate(class_names)}
    records = []
    for row in rows:
        label = index[label_text(row[label_column])]
        meta = {key: typed(value) for key, value in row.items() if key is not None}
        records.append(AudioRecord(audio / row["filename"], label, (label,), meta))
    return AudioDataset("esc50", records, class_names, sample_rate, cache, root)
