"""Manifest reader: ``manifest:<file>`` reads the audio files a text file lists.

Two forms, told apart by the first line that is not blank or a ``#`` comment:

- a list of paths, one per line: unlabelled (every ``label`` -1), e.g. for pre-training;
- a CSV whose header row names a ``path`` and a ``label`` column: labelled, one class per
  distinct label (sorted, numerically when every label is a number). Other columns are kept
  in ``meta``. A header of ``path`` alone is an unlabelled list with a header.

Relative paths are resolved against the manifest's folder; blank lines and lines starting
with ``#`` are skipped in both forms. A listed file that is missing, or a path listed twice,
is an error naming the manifest, the line and the path.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from aiaudio.data.base import AudioDataset, AudioRecord
from aiaudio.data.layout import ordered_classes, require_path, typed
from core.dataspec import DatasetError, DatasetNotFoundError

LAYOUT = ("a text file with one audio path per line (unlabelled), or a CSV with a header row path,label "
          "(labelled); relative paths are resolved against the manifest's folder, blank lines and # comments "
          "are skipped")

Line = tuple[int, str]  # (1-based line number, text)


def content_lines(manifest: Path) -> list[Line]:
    """The lines of ``manifest`` that are neither blank nor ``#`` comments, numbered from 1.

    Raises:
        DatasetError: the file is not UTF-8 text (names it).
    """
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetError(f"manifest: {manifest} is not a UTF-8 text file ({err.reason} at byte {err.start}); "
                           f"expected {LAYOUT}") from err
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.strip().startswith("#")]


def cells(manifest: Path, number: int, text: str) -> list[str]:
    """One CSV line's stripped fields.

    Raises:
        DatasetError: the line is not valid CSV (names the file and line).
    """
    try:
        return [c.strip() for c in next(csv.reader([text], strict=True))]
    except csv.Error as err:
        raise DatasetError(f"manifest: {manifest}: line {number} is not a valid CSV row ({err}): {text!r}") from err


def header_columns(manifest: Path, first: Line, path_column: str, label_column: str) -> list[str] | None:
    """The header's column names when ``first`` is a header row, else None (a plain list).

    A header is a line naming ``path_column`` or ``label_column`` as a field, either with other
    fields or as ``path_column`` alone.

    Raises:
        DatasetError: a header that lacks the path or label column (names file, line, header).
    """
    number, text = first
    try:  # a first line that is not valid CSV is a path
        fields = [c.strip() for c in next(csv.reader([text], strict=True))]
    except csv.Error:
        return None
    if not (path_column in fields or label_column in fields) or fields == [label_column]:
        return None
    if fields == [path_column]:
        return fields
    missing = [c for c in (path_column, label_column) if c not in fields]
    if missing or len(set(fields)) != len(fields):
        problem = f"lacks column(s) {missing}" if missing else "repeats a column"
        raise DatasetError(f"manifest: {manifest}: line {number}: header {fields} {problem}; a labelled manifest "
                           f"is a CSV with header {path_column},{label_column} (extra columns are kept), an "
                           f"unlabelled one lists one path per line")
    return fields


def read_manifest(path: str | Path, sample_rate: int = 16000, cache: Any = None, *,
                  path_column: str = "path", label_column: str = "label") -> AudioDataset:
    """Read the audio files a manifest lists (see the module docstring for its two forms).

    Args:
        path: the manifest file (any extension; ``.txt`` and ``.csv`` are usual).
        sample_rate: target rate of the decoded clips.
        cache: optional ``AudioCache``.
        path_column: the CSV header's column of file paths.
        label_column: the CSV header's column of class labels.

    Returns:
        ``AudioDataset`` named ``manifest`` in the manifest's order, with ``meta = {"path"
        (as written), "line", other CSV columns}``; unlabelled (no classes, ``label`` -1) for a
        list of paths, labelled for a ``path,label`` CSV.

    Raises:
        DatasetError: no path given, a file that is not UTF-8 text, a bad CSV header or row
            (wrong field count, empty path or label), or a path listed twice (names both lines).
        DatasetNotFoundError: the manifest is missing or lists no files, or a listed file is
            missing (names the manifest, the first such line and path, and how many are missing).
    """
    if path is None:
        raise DatasetError(f"manifest needs a file: write manifest:/path/to/list.txt; {LAYOUT}")
    manifest = require_path(path, "manifest", LAYOUT)
    lines = content_lines(manifest)
    header = header_columns(manifest, lines[0], path_column, label_column) if lines else None
    if header is not None:
        lines = lines[1:]
    if not lines:
        raise DatasetNotFoundError(f"manifest: {manifest} lists no files; expected {LAYOUT}")
    labelled = header is not None and label_column in header
    entries: list[tuple[int, str, str | None, dict[str, Any]]] = []  # line, path text, label, meta
    for number, text in lines:
        if not labelled:
            entries.append((number, text, None, {"path": text, "line": number}))
            continue
        row = cells(manifest, number, text)
        if len(row) != len(header):
            raise DatasetError(f"manifest: {manifest}: line {number} has {len(row)} field(s), the header "
                               f"{header} has {len(header)} (quote paths that contain commas): {text!r}")
        values = dict(zip(header, row))
        for column in (path_column, label_column):
            if not values[column]:
                raise DatasetError(f"manifest: {manifest}: line {number} has an empty {column!r}: {text!r}")
        meta = {k: typed(v) for k, v in values.items() if k not in (path_column, label_column)}
        entries.append((number, values[path_column], values[label_column],
                        {"path": values[path_column], "line": number, **meta}))
    files = resolve(manifest, [(number, text) for number, text, _, _ in entries], labelled)
    classes = ordered_classes(label for _, _, label, _ in entries) if labelled else []
    index = {name: i for i, name in enumerate(classes)}
    records = [AudioRecord(file, index[label], (index[label],), meta) if labelled
               else AudioRecord(file, -1, (), meta)
               for file, (_, _, label, meta) in zip(files, entries)]
    return AudioDataset("manifest", records, classes, sample_rate, cache, manifest.parent)


def resolve(manifest: Path, listed: list[Line], labelled: bool) -> list[Path]:
    """The listed paths (relative ones from the manifest's folder), checked to be existing files
    listed once.

    Raises:
        DatasetError: a path listed twice (names both lines).
        DatasetNotFoundError: a listed file is missing (names the first, counts them all).
    """
    seen: dict[str, int] = {}
    files: list[Path] = []
    missing: list[tuple[int, str, Path]] = []
    for number, text in listed:
        file = Path(text).expanduser()
        if not file.is_absolute():
            file = manifest.parent / file
        key = os.path.normcase(os.path.normpath(os.path.abspath(file)))
        if key in seen:
            raise DatasetError(f"manifest: {manifest}: line {number}: {text} is listed twice (first on line "
                               f"{seen[key]})")
        seen[key] = number
        if not file.is_file():
            missing.append((number, text, file))
        files.append(file)
    if missing:
        number, text, file = missing[0]
        hint = (" (a labelled manifest needs the header row path,label)"
                if not labelled and "," in text else "")
        raise DatasetNotFoundError(f"manifest: {manifest}: line {number}: {text} not found (looked for {file}); "
                                   f"{len(missing)} of {len(listed)} listed file(s) missing{hint}")
    return files
