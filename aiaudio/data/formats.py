"""Which files count as audio: the extensions soundfile decodes here, checked ``extensions=``
options, and the recursive search for audio files that the folder readers share."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Sequence

import soundfile as sf

from core.dataspec import DatasetError

_CANDIDATES = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".opus": "OGG",
               ".aif": "AIFF", ".aiff": "AIFF", ".mp3": "MP3"}
# the usual audio extensions whose format this soundfile build decodes (the readers' default)
EXTENSIONS = tuple(ext for ext, fmt in _CANDIDATES.items() if fmt in sf.available_formats())
# every extension soundfile decodes here: the default ones plus each available format's name (.au, .caf, .w64, ...)
READABLE = tuple(sorted({*EXTENSIONS, *("." + fmt.lower() for fmt in sf.available_formats())}))


def wanted_extensions(extensions: Sequence[str] | str, dataset: str) -> set[str]:
    """The ``extensions=`` option of reader ``dataset`` as lower-case ``{".wav", ...}``.

    Raises:
        DatasetError: not one or more strings, or an extension soundfile cannot decode here
            (names it and lists the readable ones).
    """
    given = [extensions] if isinstance(extensions, str) else extensions
    if not isinstance(given, (list, tuple)) or not given or not all(isinstance(e, str) for e in given):
        raise DatasetError(f"{dataset}: extensions={extensions!r} must be one or more file extensions, e.g. "
                           f"extensions=wav,flac")
    wanted = {("." + e.lower().lstrip(".")) for e in given}
    unreadable = sorted(e for e in wanted if e not in READABLE)
    if unreadable:
        raise DatasetError(f"{dataset}: extensions={unreadable[0]!r} is not an audio format soundfile can decode "
                           f"here; readable extensions: {', '.join(READABLE)}")
    return wanted


def visible_files(folder: Path) -> list[Path]:
    """Every file under ``folder``, recursively and sorted, leaving out hidden files and
    everything inside hidden folders (names starting with ``.``); symlinked folders are not
    followed."""
    found = []
    for current, folders, files in os.walk(folder):
        folders[:] = [d for d in folders if not d.startswith(".")]
        found += [Path(current) / f for f in files if not f.startswith(".")]
    return sorted(found)


def audio_files(folder: Path, wanted: set[str]) -> list[Path]:
    """``visible_files(folder)`` whose extension (case-insensitive) is in ``wanted``."""
    return [p for p in visible_files(folder) if p.suffix.lower() in wanted]


def skipped_note(files: Sequence[Path]) -> str:
    """``"; skipped N file(s) with other extensions: .txt (3), ..."`` for an error message about
    ``files`` holding no audio ("" when there are none)."""
    others = Counter(p.suffix.lower() or "(none)" for p in files)
    if not others:
        return ""
    return (f"; skipped {sum(others.values())} file(s) with other extensions: "
            + ", ".join(f"{ext} ({n})" for ext, n in others.most_common(5)))
