"""Generic folder-per-class reader: ``<root>/<class name>/**/<clip>.<ext>``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from aiaudio.data.base import AudioDataset, AudioRecord
from aiaudio.data.formats import EXTENSIONS, READABLE, audio_files, skipped_note, visible_files, wanted_extensions
from aiaudio.data.layout import require_path
from core.dataspec import DatasetError, DatasetNotFoundError

__all__ = ["EXTENSIONS", "LAYOUT", "READABLE", "read_folder"]

LAYOUT = "<root>/<class name>/**/*.{wav,flac,ogg,...} (one sub-folder per class)"


def read_folder(root: str | Path, sample_rate: int = 16000, cache: Any = None, *,
                extensions: Sequence[str] | str = EXTENSIONS) -> AudioDataset:
    """Read a folder with one sub-folder per class (nested folders inside a class are searched).

    Args:
        root: the folder holding the class folders (hidden files and folders are ignored).
        sample_rate: target rate of the decoded clips.
        cache: optional ``AudioCache``.
        extensions: file extensions to include (case-insensitive; default: those soundfile reads).

    Returns:
        ``AudioDataset`` with classes sorted by folder name (folders without audio are left
        out) and ``meta = {"relpath"}``.

    Raises:
        DatasetError: no root given, or an extension soundfile cannot decode here.
        DatasetNotFoundError: ``root`` is missing, or no class folder holds a file with one of
            the extensions (the message counts the files of other extensions it skipped).
    """
    if root is None:
        raise DatasetError(f"folder needs a root folder: write folder:/path/to/root; layout {LAYOUT}")
    root = require_path(root, "folder", LAYOUT, directory=True)
    wanted = wanted_extensions(extensions, "folder")
    folders = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    classes: list[str] = []
    records = []
    for name in folders:  # a class folder without audio files is not a class
        files = audio_files(root / name, wanted)
        if files:
            label = len(classes)
            classes.append(name)
            records += [AudioRecord(p, label, (label,), {"relpath": str(p.relative_to(root))}) for p in files]
    if not records:
        skipped = skipped_note([p for p in visible_files(root) if p.parent != root])
        loose = sum(1 for p in root.iterdir() if p.is_file() and p.suffix.lower() in wanted)
        outside = f"; {loose} audio file(s) lie directly in {root}, outside any class folder" if loose else ""
        raise DatasetNotFoundError(f"folder: no audio files with extensions {sorted(wanted)} in class folders "
                                   f"under {root}{skipped}{outside}; expected layout: {LAYOUT}")
    return AudioDataset("folder", records, classes, sample_rate, cache, root)
