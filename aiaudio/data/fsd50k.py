"""FSD50K reader (Zenodo record 4060432 layout), multi-label.

Layout::

    <root>/FSD50K.dev_audio/<fname>.wav       40,966 clips (44.1 kHz mono, 0.3-30 s)
    <root>/FSD50K.eval_audio/<fname>.wav      10,231 clips
    <root>/FSD50K.ground_truth/dev.csv        fname,labels,mids,split   (split: train / val)
    <root>/FSD50K.ground_truth/eval.csv       fname,labels,mids
    <root>/FSD50K.ground_truth/vocabulary.csv no header; rows index,label,mid (200 classes)
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from aiaudio.data.layout import read_csv, require_path, typed
from aiaudio.data.base import AudioDataset, AudioRecord

LAYOUT = ("<root>/FSD50K.ground_truth/{dev.csv,eval.csv,vocabulary.csv}, "
          "<root>/FSD50K.dev_audio/<fname>.wav, <root>/FSD50K.eval_audio/<fname>.wav")
SPLITS = ("dev", "eval", "train", "val", "all")


def read_vocabulary(path: Path) -> list[str]:
    """Class names in index order from ``vocabulary.csv`` (rows ``index,label,mid``; a header
    row, present in some re-distributions, is skipped)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if rows and not rows[0][0].strip().isdigit():
        rows = rows[1:]
    names: dict[int, str] = {}
    for number, row in enumerate(rows, 1):
        if len(row) < 2 or not row[0].strip().isdigit():
            raise ValueError(f"{path}: row {number} is {row}, expected index,label,mid")
        names[int(row[0])] = row[1]
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"{path}: class indices are not 0..{len(names) - 1}")
    return [names[i] for i in range(len(names))]


def read_fsd50k(root: str | Path, sample_rate: int = 16000, cache: Any = None, *,
                split: str = "dev") -> AudioDataset:
    """Read FSD50K.

    Args:
        root: the folder holding ``FSD50K.ground_truth`` and the audio folders.
        sample_rate: target rate of the decoded clips.
        cache: optional ``AudioCache``.
        split: ``dev`` (train+val), ``eval``, ``train`` / ``val`` (dev.csv's split column) or
            ``all`` (dev + eval, e.g. for unlabelled pre-training).

    Returns:
        ``AudioDataset`` with ``label`` = first listed label, ``labels`` = all of them, and
        ``meta`` = ``{"fname", "labels" (names), "mids", "split"}``.
    """
    if split not in SPLITS:
        raise ValueError(f"fsd50k: split must be one of {list(SPLITS)}, got {split!r}")
    if root is None:
        raise ValueError(f"fsd50k needs a root folder: {LAYOUT}")
    root = require_path(root, "fsd50k", LAYOUT, directory=True)
    truth = root / "FSD50K.ground_truth"
    class_names = read_vocabulary(require_path(truth / "vocabulary.csv", "fsd50k", LAYOUT))
    index = {name: i for i, name in enumerate(class_names)}
    parts = []
    if split in ("dev", "train", "val", "all"):
        parts.append(("dev.csv", "FSD50K.dev_audio", ["fname", "labels", "mids", "split"]))
    if split in ("eval", "all"):
        parts.append(("eval.csv", "FSD50K.eval_audio", ["fname", "labels", "mids"]))
    records = []
    for table_name, audio_name, columns in parts:
        table = require_path(truth / table_name, "fsd50k", LAYOUT)
        audio = require_path(root / audio_name, "fsd50k", LAYOUT, directory=True)
        for number, row in enumerate(read_csv(table, columns), 2):
            part = row["split"].strip() if "split" in columns else "eval"
            if split in ("train", "val") and part != split:
                continue
            names = [n.strip() for n in row["labels"].split(",") if n.strip()]
            unknown = [n for n in names if n not in index]
            if not names or unknown:
                raise ValueError(f"{table}: line {number} ({row['fname']}) has labels {row['labels']!r}; "
                                 f"{'unknown ' + repr(unknown[0]) if unknown else 'none given'} in vocabulary.csv")
            labels = tuple(index[n] for n in names)
            meta = {"fname": typed(row["fname"]), "labels": names,
                    "mids": [m.strip() for m in row["mids"].split(",") if m.strip()], "split": part}
            records.append(AudioRecord(audio / f"{row['fname']}.wav", labels[0], labels, meta))
    return AudioDataset("fsd50k", records, class_names, sample_rate, cache, root)
