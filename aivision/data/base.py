"""The dataset contract every vision reader follows.

A reader turns a dataset's published on-disk layout into an ``ImageDataset``: a list of
``ImageRecord`` (file or in-memory index + label + optional regression target + metadata)
plus the class names. ``load(i)`` returns the image as an RGB ``uint8`` tensor
``(3, H, W)`` at its stored size; resizing and cropping belong to the consumer (the
pre-training modality, the downstream clip builder), so one reader serves both.

Regression targets (landmarks, joints) are stored *normalised*: ``x / width`` and
``y / height`` of the original image, interleaved ``(x0, y0, x1, y1, ...)``, so they stay
valid under any resize of the whole image.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch

from core.errors import BadFileError
from core.records import RecordDataset

Task = Literal["classification", "regression"]


class BadImageError(BadFileError):
    """An image file is missing, unreadable or empty (the message names it)."""


def decode_image(path: str | Path) -> torch.Tensor:
    """Decode an image file to RGB ``uint8`` ``(3, H, W)`` (PIL; greyscale and RGBA converted).

    Raises:
        BadImageError: missing, unreadable or zero-sized file (names the file).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise BadImageError(path, "no such file")
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise BadImageError(path, f"cannot decode image ({err})") from err
    if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise BadImageError(path, f"empty image of shape {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


@dataclass(frozen=True)
class ImageRecord:
    """One image.

    Attributes:
        path: image file, or None for images served from memory (``meta["row"]`` then
            indexes the reader's array).
        label: index into the dataset's ``class_names``; -1 when unlabelled or regression.
        target: regression target (normalised landmark coordinates), or None.
        meta: every metadata field the layout provides (split, bounding box, ...).
    """
    path: Path | None
    label: int
    target: tuple[float, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class ImageDataset(RecordDataset):
    """Images of one dataset (or a subset of it), decoded on demand.

    Args:
        name: dataset name (e.g. ``"cub200"``).
        records: the images.
        class_names: label vocabulary; ``record.label`` indexes it (empty for regression).
        root: dataset directory (for messages).
        task: ``"classification"`` or ``"regression"`` (then every record has a target).
        target_names: names of the target columns (e.g. ``["x0", "y0", ...]``).
    """

    def __init__(self, name: str, records: Sequence[ImageRecord], class_names: Sequence[str],
                 root: str | Path | None = None, task: Task = "classification",
                 target_names: Sequence[str] | None = None) -> None:
        if task not in ("classification", "regression"):
            raise ValueError(f"{name}: task must be 'classification' or 'regression', got {task!r}")
        self.name = name
        self.records = list(records)
        self.class_names = list(class_names)
        self.root = Path(root) if root is not None else None
        self.task: Task = task
        self.target_names = list(target_names) if target_names is not None else None
        if task == "regression" and any(r.target is None for r in self.records):
            raise ValueError(f"{name}: a regression dataset needs a target on every record")

    @property
    def targets(self) -> np.ndarray | None:
        """``(N, T)`` float32 regression targets, or None for a classification set."""
        if self.task != "regression":
            return None
        return np.array([r.target for r in self.records], dtype=np.float32).reshape(len(self.records), -1)

    def load(self, index: int) -> torch.Tensor:
        """Image ``index`` as RGB ``uint8`` ``(3, H, W)``.

        Raises:
            BadImageError: the file is missing or unreadable (names the file).
        """
        path = self.records[index].path
        if path is None:
            raise TypeError(f"{type(self).__name__}: record {index} has no file and the class does not "
                            "override load() to serve it from memory")
        return decode_image(path)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.load(index), self.records[index].label

    def _relabel(self, record: ImageRecord, remap: dict[int, int]) -> ImageRecord:
        return ImageRecord(record.path, remap[record.label], record.target, record.meta)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, images={len(self)}, "
                f"classes={self.num_classes}, task={self.task!r})")
