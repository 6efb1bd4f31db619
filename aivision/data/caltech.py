"""Caltech101 reader (data.caltech.edu ``caltech-101.zip`` -> ``101_ObjectCategories.tar.gz``).

Layout::

    <root>/101_ObjectCategories/<category>/image_0001.jpg ...   102 folders

``root`` may be the folder holding ``101_ObjectCategories``, the torchvision root
(``<root>/caltech101/101_ObjectCategories``) or ``101_ObjectCategories`` itself. As in
torchvision, ``BACKGROUND_Google`` is not a class (101 categories remain, ``Faces`` and
``Faces_easy`` both kept). There is no published split; the paper (following Ericsson et al.)
trains on 30 random images per class and tests on the rest, drawn here with ``seed``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from aivision.data.base import ImageDataset, ImageRecord
from aivision.data.folder import nonempty_class_records
from aivision.data.layout import check_choice, check_int, class_folders, docs_ref, require_root
from aivision.data.splits import per_class_split

LAYOUT = "<root>/101_ObjectCategories/<category>/image_NNNN.jpg (or <root>/caltech101/101_ObjectCategories/...)"
BACKGROUND = "BACKGROUND_Google"


def _categories_folder(root: Path) -> Path:
    if root.name == "101_ObjectCategories":
        return root
    for candidate in (root / "101_ObjectCategories", root / "caltech101" / "101_ObjectCategories",
                      root / "caltech-101" / "101_ObjectCategories"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"caltech101: folder {root / '101_ObjectCategories'} not found (also looked in "
                            f"{root / 'caltech101'} and {root / 'caltech-101'}); expected layout: {LAYOUT} "
                            f"(see {docs_ref('caltech101')})")


def read_caltech101(root: str | Path, *, split: str = "train", train_per_class: int = 30,
                    seed: int = 0) -> ImageDataset:
    """Read Caltech101 with the per-class training protocol.

    Args:
        root: see the module docstring.
        split: ``"train"`` (``train_per_class`` random images of every class), ``"test"`` (the
            rest) or ``"all"``.
        train_per_class: training images per class (paper: 30); a class with no more images
            than this goes entirely to training.
        seed: seed of the split (same seed and files -> same split).

    Returns:
        ``ImageDataset`` with the 101 categories (sorted folder names) and
        ``meta = {"relpath", "split"}`` (``split`` is where the image fell: train or test).
    """
    root = require_root(root, "caltech101", LAYOUT)
    check_choice("caltech101", "split", split, ("train", "test", "all"))
    base = _categories_folder(root)
    names = [c for c in class_folders(base) if c != BACKGROUND]
    classes, records = nonempty_class_records(base, names, (".jpg", ".jpeg", ".png"), recursive=False)
    if not records:
        raise FileNotFoundError(f"caltech101: no category folders with images under {base}; expected layout: "
                                f"{LAYOUT} (see {docs_ref('caltech101')})")
    per_class = check_int("caltech101", "train_per_class", train_per_class, 1)
    train, test = per_class_split([r.label for r in records], per_class, check_int("caltech101", "seed", seed))
    part = np.zeros(len(records), dtype=bool)
    part[train] = True
    records = [ImageRecord(r.path, r.label, None, {**r.meta, "split": "train" if part[i] else "test"})
               for i, r in enumerate(records)]
    dataset = ImageDataset("caltech101", records, classes, base)
    if split == "all":
        return dataset
    return dataset.subset(train if split == "train" else test)
