"""NSynth reader (magenta.tensorflow.org/datasets/nsynth json/wav layout).

Layout::

    <root>/nsynth-{train,valid,test}/examples.json   {note_str: {instrument_str, pitch, ...}}
    <root>/nsynth-{train,valid,test}/audio/<note_str>.wav   4 s, 16 kHz

``root`` may also be one split folder (the one holding ``examples.json``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiaudio.data.layout import label_text, ordered_classes, require_path
from aiaudio.data.base import AudioDataset, AudioRecord

LAYOUT = "<root>/nsynth-{train,valid,test}/examples.json + audio/<note_str>.wav (or root = one nsynth-<split> folder)"
SPLITS = ("train", "valid", "test")


def _split_dirs(root: Path, split: str | None) -> list[tuple[str, Path]]:
    if (root / "examples.json").is_file():
        name = root.name.removeprefix("nsynth-")
        if split not in (None, "all", name):
            raise ValueError(f"nsynth: {root} is the {name!r} split folder but split={split!r} was asked for")
        return [(name, root)]
    split = split or "all"
    if split not in (*SPLITS, "all"):
        raise ValueError(f"nsynth: split must be one of {[*SPLITS, 'all']}, got {split!r}")
    wanted = SPLITS if split == "all" else (split,)
    dirs = [(name, root / f"nsynth-{name}") for name in wanted]
    present = [(name, d) for name, d in dirs if (d / "examples.json").is_file()]
    if split != "all" or not present:
        for _, d in dirs:
            require_path(d / "examples.json", "nsynth", LAYOUT)
    return present


def read_nsynth(root: str | Path, sample_rate: int = 16000, cache: Any = None, *,
                split: str | None = None, field: str = "instrument_str") -> AudioDataset:
    """Read NSynth.

    Args:
        root: the folder holding ``nsynth-<split>/`` folders, or one such folder.
        sample_rate: target rate of the decoded clips.
        cache: optional ``AudioCache``.
        split: ``train``, ``valid``, ``test`` or ``all`` (default: every split present under
            ``root``, as MetaAudio pools them; ignored when ``root`` is a split folder).
        field: ``examples.json`` field used as the class (``instrument_str`` as in MetaAudio,
            ``instrument_family_str``, ``pitch``, ...); list fields are joined with commas.

    Returns:
        ``AudioDataset`` whose ``meta`` holds every json field plus ``split``.
    """
    if root is None:
        raise ValueError(f"nsynth needs a root folder: {LAYOUT}")
    root = require_path(root, "nsynth", LAYOUT, directory=True)
    entries: list[tuple[Path, dict[str, Any]]] = []
    for name, folder in _split_dirs(root, split):
        table = folder / "examples.json"
        audio = require_path(folder / "audio", "nsynth", LAYOUT, directory=True)
        with open(table, encoding="utf-8") as handle:
            examples = json.load(handle)
        if not isinstance(examples, dict):
            raise ValueError(f"{table}: expected a json object keyed by note_str, got {type(examples).__name__}")
        for note, fields in sorted(examples.items()):
            if not isinstance(fields, dict) or field not in fields:
                available = sorted(fields) if isinstance(fields, dict) else []
                raise ValueError(f"{table}: entry {note!r} has no field {field!r}; fields: {available}")
            entries.append((audio / f"{note}.wav", {**fields, "note_str": fields.get("note_str", note), "split": name}))
    class_names = ordered_classes(label_text(meta[field]) for _, meta in entries)
    index = {c: i for i, c in enumerate(class_names)}
    records = []
    for path, meta in entries:
        label = index[label_text(meta[field])]
        records.append(AudioRecord(path, label, (label,), meta))
    return AudioDataset("nsynth", records, class_names, sample_rate, cache, root)
