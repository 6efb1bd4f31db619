"""FSDKaggle2018 reader (Zenodo record 2552860 layout), train and test merged as in MetaAudio.

Layout::

    <root>/FSDKaggle2018.audio_train/<fname>
    <root>/FSDKaggle2018.audio_test/<fname>
    <root>/FSDKaggle2018.meta/train_post_competition.csv
        fname,label,manually_verified,freesound_id,license
    <root>/FSDKaggle2018.meta/test_post_competition_scoring_clips.csv
        fname,label,usage,freesound_id,license

``fname`` includes the ``.wav`` extension. Only the 1,600 scored test clips are listed in
the test csv (the audio folder also holds unscored padding clips, which are ignored).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from aiaudio.data.layout import ordered_classes, read_csv, require_path, typed
from aiaudio.data.base import AudioDataset, AudioRecord

LAYOUT = ("<root>/FSDKaggle2018.audio_{train,test}/ and <root>/FSDKaggle2018.meta/"
          "{train_post_competition.csv,test_post_competition_scoring_clips.csv}")
PARTS = {
    "train": ("FSDKaggle2018.audio_train", "train_post_competition.csv"),
    "test": ("FSDKaggle2018.audio_test", "test_post_competition_scoring_clips.csv"),
}


def read_fsdkaggle(root: str | Path, sample_rate: int = 16000, cache: Any = None, *,
                   part: str = "all") -> AudioDataset:
    """Read FSDKaggle2018.

    Args:
        root: the folder holding the ``FSDKaggle2018.*`` folders.
        sample_rate: target rate of the decoded clips.
        cache: optional ``AudioCache``.
        part: ``all`` (train + test, MetaAudio's pool of 41 classes), ``train`` or ``test``.

    Returns:
        ``AudioDataset`` (classes sorted) whose ``meta`` holds the csv columns plus ``split``.
    """
    if part not in (*PARTS, "all"):
        raise ValueError(f"fsdkaggle: part must be one of {[*PARTS, 'all']}, got {part!r}")
    if root is None:
        raise ValueError(f"fsdkaggle needs a root folder: {LAYOUT}")
    root = require_path(root, "fsdkaggle", LAYOUT, directory=True)
    rows = []
    for name in (PARTS if part == "all" else (part,)):
        audio_name, table_name = PARTS[name]
        table = require_path(root / "FSDKaggle2018.meta" / table_name, "fsdkaggle", LAYOUT)
        audio = require_path(root / audio_name, "fsdkaggle", LAYOUT, directory=True)
        for row in read_csv(table, ["fname", "label"]):
            meta = {key: typed(value) for key, value in row.items() if key is not None}
            rows.append((audio / row["fname"], row["label"], {**meta, "fname": row["fname"], "split": name}))
    class_names = ordered_classes(label for _, label, _ in rows)
    index = {c: i for i, c in enumerate(class_names)}
    records = [AudioRecord(path, index[label], (index[label],), meta) for path, label, meta in rows]
    return AudioDataset("fsdkaggle", records, class_names, sample_rate, cache, root)
