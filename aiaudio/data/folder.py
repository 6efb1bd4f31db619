"""Generic folder-per-class reader: ``<root>/<class name>/**/<clip>.<ext>``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import soundfile as sf

from aiaudio.data.layout import require_path
from aiaudio.data.base import AudioDataset, AudioRecord

LAYOUT = "<root>/<class name>/**/*.{wav,flac,ogg,...} (one sub-folder per class)"
_CANDIDATES = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".opus": "OGG",
               ".aif": "AIFF", ".aiff": "AIFF", ".mp3": "MP3"}
EXTENSIONS = tuple(ext for ext, fmt in _CANDIDATES.items() if fmt in sf.available_formats())


def read_folder(root: str | Path, sample_rate: int = 16000, cache: Any = None, *,
                extensions: Sequence[str] | str = EXTENSIONS) -> AudioDataset:
    """Read a folder with one sub-folder per class (nested folders inside a class are searched).

    Args:
        root: the folder holding the class folders (hidden folders are ignored).
        sample_rate: target rate of the decoded clips.
        cache: optional ``AudioCache``.
        extensions: file extensions to include (case-insensitive; default: those soundfile reads).

    Returns:
        ``AudioDataset`` with classes sorted by folder name (folders without audio are left
        out) and ``meta = {"relpath"}``.
    """
    if root is None:
        raise ValueError(f"folder needs a root folder: {LAYOUT}")
    root = require_path(root, "folder", LAYOUT, directory=True)
    wanted = {("." + e.lower().lstrip(".")) for e in ([extensions] if isinstance(extensions, str) else extensions)}
    folders = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    classes: list[str] = []
    records = []
    for name in folders:  # a class folder without audio files is not a class
        files = sorted(p for p in (root / name).rglob("*")
                       if p.is_file() and p.suffix.lower() in wanted and not p.name.startswith("."))
        if files:
            label = len(classes)
            classes.append(name)
            records += [AudioRecord(p, label, (label,), {"relpath": str(p.relative_to(root))}) for p in files]
    if not records:
        raise FileNotFoundError(f"folder: no audio files with extensions {sorted(wanted)} under {root}; "
                                f"expected layout: {LAYOUT}")
    return AudioDataset("folder", records, classes, sample_rate, cache, root)
