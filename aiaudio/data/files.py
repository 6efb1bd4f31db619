"""Unlabelled reader for any folder tree of audio files: ``files:<root>`` reads every audio
file under ``<root>``, recursively, for pre-training (which ignores labels)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from aiaudio.data.base import AudioDataset, AudioRecord
from aiaudio.data.formats import EXTENSIONS, skipped_note, visible_files, wanted_extensions
from aiaudio.data.layout import require_path
from core.dataspec import DatasetError, DatasetNotFoundError

LAYOUT = "<root>/**/*.{wav,flac,ogg,...} (any folder tree of audio files; no labels)"


def read_files(root: str | Path, sample_rate: int = 16000, cache: Any = None, *,
               extensions: Sequence[str] | str = EXTENSIONS) -> AudioDataset:
    """Read every audio file under ``root`` (recursively) as one unlabelled dataset.

    Args:
        root: the top folder (hidden files and folders are ignored; symlinked folders are not
            followed).
        sample_rate: target rate of the decoded clips.
        cache: optional ``AudioCache``.
        extensions: file extensions to include (case-insensitive; default: the usual audio
            extensions soundfile decodes here; any format it decodes may be named).

    Returns:
        ``AudioDataset`` named ``files`` with no classes, every ``label`` -1 (unlabelled),
        records sorted by path and ``meta = {"relpath"}``.

    Raises:
        DatasetError: no root given, or an extension soundfile cannot decode here.
        DatasetNotFoundError: ``root`` is not a folder, or holds no file with one of the
            extensions (the message counts the files of other extensions it skipped).
    """
    if root is None:
        raise DatasetError(f"files needs a root folder: write files:/path/to/root; layout {LAYOUT}")
    root = require_path(root, "files", LAYOUT, directory=True)
    wanted = wanted_extensions(extensions, "files")
    everything = visible_files(root)
    found = [p for p in everything if p.suffix.lower() in wanted]
    if not found:
        raise DatasetNotFoundError(f"files: no audio files with extensions {sorted(wanted)} under {root}"
                                   f"{skipped_note(everything)}; expected layout: {LAYOUT}")
    records = [AudioRecord(p, -1, (), {"relpath": str(p.relative_to(root))}) for p in found]
    return AudioDataset("files", records, [], sample_rate, cache, root)
