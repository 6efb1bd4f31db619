"""Helpers the vision readers share: checked paths with documented layouts, root discovery,
option checks, whitespace tables, image headers and class-folder scans.

Every "not found" error names the missing file or folder, the layout the reader expected
and the section of ``docs/vision_datasets.md`` that describes the dataset.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from core.dataspec import DatasetError, DatasetNotFoundError

DOCS = "docs/vision_datasets.md"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


def docs_ref(dataset: str) -> str:
    """``docs/vision_datasets.md#<dataset>``: where the layout of ``dataset`` is described."""
    return f"{DOCS}#{dataset}"


def missing(dataset: str, path: Path, expected: str, directory: bool = False) -> DatasetNotFoundError:
    """The error for a missing file or folder of ``dataset`` (not raised, returned)."""
    kind = "folder" if directory else "file"
    return DatasetNotFoundError(f"{dataset}: {kind} {path} not found; expected layout: {expected} "
                             f"(see {docs_ref(dataset)})")


def require_root(root: str | Path | None, dataset: str, expected: str) -> Path:
    """``root`` as an existing folder.

    Raises:
        DatasetError: no root given (a spec without a path).
        DatasetNotFoundError: the folder does not exist (names it).
    """
    if root is None:
        raise DatasetError(f"{dataset} needs a root folder: {expected} (write {dataset}:/path/to/data; "
                         f"see {docs_ref(dataset)})")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise missing(dataset, path, expected, directory=True)
    return path


def require_path(path: str | Path, dataset: str, expected: str, directory: bool = False) -> Path:
    """``path`` if it exists (as a folder when ``directory``), else the documented error."""
    path = Path(path).expanduser()
    if not (path.is_dir() if directory else path.is_file()):
        raise missing(dataset, path, expected, directory)
    return path


def find_base(root: Path, marker: str, candidates: Sequence[str], dataset: str, expected: str,
              directory: bool = False) -> Path:
    """The folder holding ``marker`` (a file, or a folder when ``directory``): ``root`` itself or
    ``root/<candidate>`` (first match).

    Lets a reader accept the dataset folder, its parent, or the folder torchvision expects.

    Raises:
        DatasetNotFoundError: no candidate holds ``marker`` (names ``root/marker`` and the others tried).
    """
    tried = [root] + [root / c for c in candidates]
    for base in tried:
        if (base / marker).is_dir() if directory else (base / marker).is_file():
            return base
    others = ", ".join(str(b / marker) for b in tried[1:])
    error = missing(dataset, root / marker, expected, directory)
    if others:
        error = DatasetNotFoundError(f"{error} (also looked for {others})")
    raise error


def check_int(dataset: str, option: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as an int (at least ``minimum``), else DatasetError naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise DatasetError(f"{dataset}: {option}={value!r} must be an integer{bound}")
    return int(value)


def check_choice(dataset: str, option: str, value: Any, allowed: Iterable[Any]) -> Any:
    """``value`` if it is one of ``allowed``, else DatasetError naming the option and the choices."""
    choices = list(allowed)
    if value not in choices:
        raise DatasetError(f"{dataset}: {option}={value!r} is not one of {choices}")
    return value


def read_rows(path: Path, columns: int, dataset: str, skip: int = 0) -> list[list[str]]:
    """Whitespace-separated rows of a text table (blank lines skipped).

    Args:
        path: the file.
        columns: minimum number of fields each row must have.
        dataset: reader name (for messages).
        skip: header lines to skip.

    Raises:
        DatasetError: a row with too few fields (names the file and line).
    """
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if number <= skip or not line.strip():
                continue
            fields = line.split()
            if len(fields) < columns:
                raise DatasetError(f"{dataset}: {path} line {number} has {len(fields)} field(s), "
                                 f"expected {columns}: {line.strip()!r}")
            rows.append(fields)
    return rows


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image, read from its header only.

    Raises:
        BadImageError: missing or unreadable file (names it).
    """
    from PIL import Image, UnidentifiedImageError

    from aivision.data.base import BadImageError

    if not path.is_file():
        raise BadImageError(path, "no such file")
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError) as err:
        raise BadImageError(path, f"cannot read image header ({err})") from err


def is_image(path: Path, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> bool:
    """True for a visible file whose suffix (case-insensitive) is in ``extensions``."""
    wanted = {("." + e.lower().lstrip(".")) for e in extensions}
    return path.suffix.lower() in wanted and not path.name.startswith(".") and path.is_file()


def list_images(folder: Path, extensions: Iterable[str] = IMAGE_EXTENSIONS, recursive: bool = True) -> list[Path]:
    """Sorted image files under ``folder`` (nested folders searched when ``recursive``)."""
    extensions = tuple(extensions)
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if is_image(p, extensions))


def class_folders(root: Path) -> list[str]:
    """Sorted names of the visible sub-folders of ``root``."""
    return sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
