"""CIFAR-10 / CIFAR-100 readers ("CIFAR-10 python version" layouts, cs.toronto.edu/~kriz/cifar.html).

Layouts::

    <root>/cifar-10-batches-py/{data_batch_1..data_batch_5, test_batch, batches.meta}
    <root>/cifar-100-python/{train, test, meta}

``root`` may be the folder above (what torchvision's ``CIFAR10(root)`` takes) or the
``cifar-10-batches-py`` / ``cifar-100-python`` folder itself. The pickles are read directly
with a numpy-only unpickler (``aivision.data.arrays``) rather than through torchvision: its
reader verifies the md5 of every batch (so any test or repacked copy fails) and unpickles
with plain ``pickle.load``. Splits are the published train (50,000) and test (10,000).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from aivision.data.arrays import ArrayImageDataset, channels_first, load_array_pickle, text_list
from aivision.data.base import ImageRecord
from aivision.data.layout import check_choice, find_base, require_path, require_root

LAYOUT10 = "<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} (python version)"
LAYOUT100 = "<root>/cifar-100-python/{train, test, meta} (python version)"


def _build(name: str, root: Path, parts: list[tuple[np.ndarray, list[int], list[str]]],
           class_names: list[str], split: str) -> ArrayImageDataset:
    images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    records = []
    row = 0
    for _, labels, filenames in parts:
        for label, filename in zip(labels, filenames):
            if not 0 <= label < len(class_names):
                raise ValueError(f"{name}: label {label} outside the {len(class_names)} classes of {root}")
            records.append(ImageRecord(None, int(label), None, {"row": row, "filename": filename, "split": split}))
            row += 1
    return ArrayImageDataset(name, images, records, class_names, root)


def _batch(path: Path, dataset: str, label_key: str) -> tuple[np.ndarray, list[int], list[str]]:
    table = load_array_pickle(path, dataset, ["data", label_key])
    images = channels_first(table["data"], dataset, path)
    labels = [int(v) for v in np.asarray(table[label_key]).reshape(-1)]
    if len(labels) != len(images):
        raise ValueError(f"{dataset}: {path} has {len(images)} images but {len(labels)} labels")
    names = text_list(table["filenames"]) if "filenames" in table else [""] * len(labels)
    return images, labels, names


def read_cifar10(root: str | Path, *, split: str = "train") -> ArrayImageDataset:
    """Read CIFAR-10.

    Args:
        root: folder holding ``cifar-10-batches-py`` (or that folder itself).
        split: ``"train"`` (data_batch_1..5) or ``"test"`` (test_batch).

    Returns:
        ``ArrayImageDataset`` of ``(3, 32, 32)`` images, 10 classes named by ``batches.meta``;
        ``meta = {"row", "filename", "split"}``.
    """
    root = require_root(root, "cifar10", LAYOUT10)
    check_choice("cifar10", "split", split, ("train", "test"))
    base = find_base(root, "batches.meta", ["cifar-10-batches-py"], "cifar10", LAYOUT10)
    meta = load_array_pickle(base / "batches.meta", "cifar10", ["label_names"])
    files = [f"data_batch_{k}" for k in range(1, 6)] if split == "train" else ["test_batch"]
    parts = [_batch(require_path(base / f, "cifar10", LAYOUT10), "cifar10", "labels") for f in files]
    return _build("cifar10", base, parts, text_list(meta["label_names"]), split)


def read_cifar100(root: str | Path, *, split: str = "train", labels: str = "fine") -> ArrayImageDataset:
    """Read CIFAR-100.

    Args:
        root: folder holding ``cifar-100-python`` (or that folder itself).
        split: ``"train"`` or ``"test"``.
        labels: ``"fine"`` (100 classes) or ``"coarse"`` (20 superclasses).

    Returns:
        ``ArrayImageDataset`` of ``(3, 32, 32)`` images named by ``meta``'s label names;
        ``meta = {"row", "filename", "split"}``.
    """
    root = require_root(root, "cifar100", LAYOUT100)
    check_choice("cifar100", "split", split, ("train", "test"))
    check_choice("cifar100", "labels", labels, ("fine", "coarse"))
    base = find_base(root, "meta", ["cifar-100-python"], "cifar100", LAYOUT100)
    meta = load_array_pickle(base / "meta", "cifar100", [f"{labels}_label_names"])
    part = _batch(require_path(base / split, "cifar100", LAYOUT100), "cifar100", f"{labels}_labels")
    return _build("cifar100", base, [part], text_list(meta[f"{labels}_label_names"]), split)
