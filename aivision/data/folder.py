"""Generic folder-per-class reader: ``<root>/<class name>/**/<image>.<ext>``.

``folder_records`` is the scan the ImageNet-100 and Plant Disease readers share.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from aivision.data.base import ImageDataset, ImageRecord
from aivision.data.layout import IMAGE_EXTENSIONS, class_folders, docs_ref, list_images, require_root
from core.dataspec import DatasetNotFoundError

LAYOUT = "<root>/<class name>/**/*.{jpg,jpeg,png,...} (one sub-folder per class)"


def folder_records(base: Path, classes: Sequence[str], extensions: Sequence[str] = IMAGE_EXTENSIONS,
                   recursive: bool = True, extra: dict[str, Any] | None = None) -> list[ImageRecord]:
    """One record per image of ``base/<class>/``, labelled by the position of the class in ``classes``.

    ``meta = {"relpath", **extra}`` (``relpath`` relative to ``base``, with ``/``).
    """
    records = []
    for label, name in enumerate(classes):
        for path in list_images(base / name, extensions, recursive):
            meta = {"relpath": path.relative_to(base).as_posix(), **(extra or {})}
            records.append(ImageRecord(path, label, None, meta))
    return records


def nonempty_class_records(base: Path, candidates: Sequence[str], extensions: Sequence[str] = IMAGE_EXTENSIONS,
                           recursive: bool = True) -> tuple[list[str], list[ImageRecord]]:
    """Scan ``base/<candidate>/`` folders, keeping those with images as classes (in the given order).

    Returns:
        ``(class_names, records)`` with ``meta = {"relpath"}``.
    """
    classes: list[str] = []
    records: list[ImageRecord] = []
    for name in candidates:
        files = list_images(base / name, extensions, recursive)
        if files:
            records += [ImageRecord(p, len(classes), None, {"relpath": p.relative_to(base).as_posix()})
                        for p in files]
            classes.append(name)
    return classes, records


def read_folder(root: str | Path, *, extensions: Sequence[str] | str = IMAGE_EXTENSIONS) -> ImageDataset:
    """Read a folder with one sub-folder per class (nested folders inside a class are searched).

    Args:
        root: the folder holding the class folders (hidden folders are ignored).
        extensions: file extensions to include (case-insensitive).

    Returns:
        ``ImageDataset`` with classes sorted by folder name (folders without images are left
        out) and ``meta = {"relpath"}``.
    """
    root = require_root(root, "folder", LAYOUT)
    extensions = [extensions] if isinstance(extensions, str) else list(extensions)
    classes, records = nonempty_class_records(root, class_folders(root), extensions)
    if not records:
        raise DatasetNotFoundError(f"folder: no images with extensions {sorted(extensions)} in class folders under "
                                f"{root}; expected layout: {LAYOUT} (see {docs_ref('folder')})")
    return ImageDataset("folder", records, classes, root)
