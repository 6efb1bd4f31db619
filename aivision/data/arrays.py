"""Datasets distributed as pickled arrays (CIFAR, FC100): safe unpickling and in-memory serving.

The CIFAR "python version" batches and the MetaOptNet FC100 files are Python-2 pickles of
dicts holding numpy arrays. Unpickling runs whatever code a file names, so they are read with
a restricted unpickler that only resolves numpy's array and scalar constructors (a crafted
file cannot import anything else); Python-2 strings are decoded as latin-1, and dict keys
that arrive as bytes are decoded to str.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from aivision.data.base import ImageDataset, ImageRecord, Task
from core.fileio import NumpyOnlyUnpickler


def load_array_pickle(path: Path, dataset: str, keys: Sequence[str]) -> dict[str, Any]:
    """A pickled dict of arrays/lists, keys as str.

    Args:
        path: the pickle file.
        dataset: reader name (for messages).
        keys: keys the dict must have.

    Raises:
        ValueError: not a pickle of a dict of arrays, or a required key is missing (names the file).
    """
    try:
        with open(path, "rb") as handle:
            obj = NumpyOnlyUnpickler(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as err:
        raise ValueError(f"{dataset}: {path} is not a pickle of numpy arrays ({err})") from err
    if not isinstance(obj, dict):
        raise ValueError(f"{dataset}: {path} holds a {type(obj).__name__}, expected a dict with keys {list(keys)}")
    table = {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}
    absent = [k for k in keys if k not in table]
    if absent:
        raise ValueError(f"{dataset}: {path} has no key(s) {absent}; found {sorted(table)}")
    return table


def text_list(values: Any) -> list[str]:
    """A list of names (bytes decoded as latin-1)."""
    return [v.decode("latin1") if isinstance(v, bytes) else str(v) for v in values]


class ArrayImageDataset(ImageDataset):
    """An ``ImageDataset`` whose images live in one ``uint8`` array ``(N, 3, H, W)``.

    ``record.meta["row"]`` indexes the array, so ``subset`` and ``with_classes`` share it.

    Args:
        name: dataset name.
        images: ``(N, 3, H, W)`` uint8 array.
        records: one per served image (``path=None``, ``meta["row"]`` set).
        class_names: label vocabulary.
        root: dataset directory (for messages).
        task: ``"classification"`` or ``"regression"``.
    """

    def __init__(self, name: str, images: np.ndarray, records: Sequence[ImageRecord], class_names: Sequence[str],
                 root: str | Path | None = None, task: Task = "classification") -> None:
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{name}: images must be uint8 (N, 3, H, W), got {images.dtype} {images.shape}")
        super().__init__(name, records, class_names, root, task)
        self.images = images

    def load(self, index: int) -> torch.Tensor:
        """Image ``index`` as RGB ``uint8`` ``(3, H, W)`` (a copy of its row)."""
        return torch.from_numpy(np.array(self.images[self.records[index].meta["row"]]))


def channels_first(flat_or_hwc: np.ndarray, dataset: str, path: Path, side: int = 32) -> np.ndarray:
    """CIFAR rows ``(N, 3*side*side)`` (planes R, G, B) or ``(N, side, side, 3)`` -> ``(N, 3, side, side)``.

    Raises:
        ValueError: any other shape or dtype (names the file).
    """
    array = np.asarray(flat_or_hwc)
    if array.dtype != np.uint8:
        raise ValueError(f"{dataset}: {path} image data must be uint8, got {array.dtype}")
    if array.ndim == 2 and array.shape[1] == 3 * side * side:
        return array.reshape(len(array), 3, side, side)
    if array.ndim == 4 and array.shape[1:] == (side, side, 3):
        return np.ascontiguousarray(array.transpose(0, 3, 1, 2))
    raise ValueError(f"{dataset}: {path} image data has shape {array.shape}, expected "
                     f"(N, {3 * side * side}) or (N, {side}, {side}, 3)")
