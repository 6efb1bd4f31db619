"""Generic folder-per-class reader: ``<root>/<class name>/**/<clip>.<ext>``."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import soundfile as sf

from aiaudio.data.layout import require_path
from aiaudio.data.base import AudioDataset, AudioRecord
from core.dataspec import DatasetError, DatasetNotFoundError

LAYOUT = "<root>/<class name>/**/*.{wav,flac,ogg,...} (one sub-folder per class)"
_CANDIDATES = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".opus": "OGG",
               ".aif": "AIFF", ".aiff": "AIFF", ".mp3": "MP3"}
EXTENSIONS = tuple(ext for ext, fmt in _CANDIDATES.items() if fmt in sf.available_formats())
# every extension soundfile decodes here: the default ones plus each available format's name (.au, .caf, .w64, ...)
READABLE = tuple(sorted({*EXTENSIONS, *("." + fmt.lower() for fmt in sf.available_formats())}))


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

    Raises:
        DatasetError: no root given, or an extension soundfile cannot decode here.
        DatasetNotFoundError: ``root`` is missing, or no class folder holds a file with one of
            the extensions (the message counts the files of other extensions it skipped).
    """
    if root is None:
        raise DatasetError(f"folder needs a root folder: write folder:/path/to/root; layout {LAYOUT}")
    root = require_path(root, "folder", LAYOUT, directory=True)
    given = [extensions] if isinstance(extensions, str) else extensions
    if not isinstance(given, (list, tuple)) or not given or not all(isinstance(e, str) for e in given):
        raise DatasetError(f"folder: extensions={extensions!r} must be one or more file extensions, e.g. "
                           f"extensions=wav,flac")
    wanted = {("." + e.lower().lstrip(".")) for e in given}
    unreadable = sorted(e for e in wanted if e not in READABLE)
    if unreadable:
        raise DatasetError(f"folder: extensions={unreadable[0]!r} is not an audio format soundfile can decode "
                           f"here; readable extensions: {', '.join(READABLE)}")
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
        others = Counter(p.suffix.lower() or "(none)" for p in root.rglob("*")
                         if p.is_file() and not p.name.startswith(".") and p.parent != root)
        skipped = (f"; skipped {sum(others.values())} file(s) with other extensions: "
                   + ", ".join(f"{ext} ({n})" for ext, n in others.most_common(5))) if others else ""
        loose = sum(1 for p in root.iterdir() if p.is_file() and p.suffix.lower() in wanted)
        outside = f"; {loose} audio file(s) lie directly in {root}, outside any class folder" if loose else ""
        raise DatasetNotFoundError(f"folder: no audio files with extensions {sorted(wanted)} in class folders "
                                   f"under {root}{skipped}{outside}; expected layout: {LAYOUT}")
    return AudioDataset("folder", records, classes, sample_rate, cache, root)
