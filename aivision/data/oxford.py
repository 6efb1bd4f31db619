"""Readers for the Oxford VGG classification sets: Flowers102, DTD, Oxford-IIIT Pets.

Each reader parses the published metadata files itself (the files torchvision's
``Flowers102`` / ``DTD`` / ``OxfordIIITPet`` read, with the same labels and image order) and
accepts both the dataset folder and the root torchvision expects (``<root>/flowers-102``,
``<root>/dtd/dtd``, ``<root>/oxford-iiit-pet``). It does not instantiate torchvision's classes:
``Flowers102`` verifies the md5 of ``imagelabels.mat`` / ``setid.mat`` (any test or repacked
copy fails), all three force a fixed sub-folder name, and their "Dataset not found" errors do
not name the missing file. Downloads are never attempted.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from aivision.data.base import ImageDataset, ImageRecord
from aivision.data.layout import (check_choice, class_folders, find_base, missing, read_rows, require_path,
                                  require_root)

FLOWERS_LAYOUT = "<root>/{jpg/image_00001.jpg.., imagelabels.mat, setid.mat} (or <root>/flowers-102/...)"
DTD_LAYOUT = "<root>/dtd/{images/<class>/*.jpg, labels/{train,val,test}<1-10>.txt}"
PETS_LAYOUT = "<root>/{images/*.jpg, annotations/{trainval,test}.txt} (or <root>/oxford-iiit-pet/...)"
FLOWERS_SPLITS = {"train": ("trnid",), "val": ("valid",), "test": ("tstid",), "trainval": ("trnid", "valid")}


def read_flowers102(root: str | Path, *, split: str = "train") -> ImageDataset:
    """Read Oxford Flowers-102 (published split from ``setid.mat``).

    Args:
        root: folder holding ``jpg/``, ``imagelabels.mat`` and ``setid.mat`` (or ``flowers-102/``).
        split: ``"train"`` (1,020), ``"val"`` (1,020), ``"test"`` (6,149) or ``"trainval"``.

    Returns:
        ``ImageDataset`` with the 102 flower names (torchvision's list, label ``k`` = class
        ``k+1`` of ``imagelabels.mat``) and ``meta = {"image_id", "split"}``.
    """
    from scipy.io import loadmat
    from torchvision.datasets.flowers102 import Flowers102

    root = require_root(root, "flowers102", FLOWERS_LAYOUT)
    check_choice("flowers102", "split", split, tuple(FLOWERS_SPLITS))
    base = find_base(root, "setid.mat", ["flowers-102"], "flowers102", FLOWERS_LAYOUT)
    images = require_path(base / "jpg", "flowers102", FLOWERS_LAYOUT, directory=True)
    labels_mat = require_path(base / "imagelabels.mat", "flowers102", FLOWERS_LAYOUT)
    setid = loadmat(base / "setid.mat", squeeze_me=True)
    labels = np.atleast_1d(loadmat(labels_mat, squeeze_me=True)["labels"]).astype(np.int64)
    names = list(Flowers102.classes)
    records = []
    for key in FLOWERS_SPLITS[split]:
        if key not in setid:
            raise ValueError(f"flowers102: {base / 'setid.mat'} has no {key!r} array (keys: {sorted(setid)})")
        for image_id in np.atleast_1d(setid[key]).astype(np.int64).tolist():
            if not 1 <= image_id <= len(labels):
                raise ValueError(f"flowers102: image id {image_id} in setid.mat has no label in {labels_mat}")
            label = int(labels[image_id - 1]) - 1
            if not 0 <= label < len(names):
                raise ValueError(f"flowers102: label {label + 1} of image {image_id} outside 1..{len(names)}")
            records.append(ImageRecord(images / f"image_{image_id:05d}.jpg", label, None,
                                       {"image_id": image_id, "split": split}))
    return ImageDataset("flowers102", records, names, base)


def read_dtd(root: str | Path, *, split: str = "train", partition: int = 1) -> ImageDataset:
    """Read the Describable Textures Dataset (published splits, 10 partitions).

    Args:
        root: the ``dtd`` folder (holding ``images/`` and ``labels/``), its parent, or the
            torchvision root (``<root>/dtd/dtd``).
        split: ``"train"``, ``"val"``, ``"test"`` (40 images per class each) or ``"trainval"``.
        partition: 1..10, the published split files ``labels/<split><partition>.txt``.

    Returns:
        ``ImageDataset`` with the 47 classes (sorted folder names of ``images/``) and
        ``meta = {"relpath", "split", "partition"}``.
    """
    root = require_root(root, "dtd", DTD_LAYOUT)
    check_choice("dtd", "split", split, ("train", "val", "test", "trainval"))
    check_choice("dtd", "partition", partition, range(1, 11))
    base = find_base(root, "labels", ["dtd", "dtd/dtd"], "dtd", DTD_LAYOUT, directory=True)
    images = require_path(base / "images", "dtd", DTD_LAYOUT, directory=True)
    names = class_folders(images)
    index = {name: i for i, name in enumerate(names)}
    records = []
    for part in (("train", "val") if split == "trainval" else (split,)):
        listing = require_path(base / "labels" / f"{part}{partition}.txt", "dtd", DTD_LAYOUT)
        for (relpath,) in (row[:1] for row in read_rows(listing, 1, "dtd")):
            cls = relpath.split("/")[0]
            if cls not in index:
                raise missing("dtd", images / cls, DTD_LAYOUT, directory=True)
            records.append(ImageRecord(images / relpath, index[cls], None,
                                       {"relpath": relpath, "split": part, "partition": partition}))
    return ImageDataset("dtd", records, names, base)


def _pet_class_name(image_id: str) -> str:
    """``"american_bulldog_12"`` -> ``"American Bulldog"`` (torchvision's class names)."""
    return " ".join(word.title() for word in image_id.rsplit("_", 1)[0].split("_"))


def read_pets(root: str | Path, *, split: str = "trainval") -> ImageDataset:
    """Read Oxford-IIIT Pets (37 breeds; published trainval / test lists).

    Args:
        root: folder holding ``images/`` and ``annotations/`` (or ``oxford-iiit-pet/``).
        split: ``"trainval"`` (3,680; ``"train"`` is accepted as the same) or ``"test"`` (3,669).

    Returns:
        ``ImageDataset`` labelled by CLASS-ID - 1 with names like ``"American Bulldog"``;
        ``meta = {"image_id", "species" ("cat"/"dog"), "breed_id", "split"}``.
    """
    root = require_root(root, "pets", PETS_LAYOUT)
    split = "trainval" if split == "train" else split
    check_choice("pets", "split", split, ("trainval", "test"))
    base = find_base(root, "annotations", ["oxford-iiit-pet"], "pets", PETS_LAYOUT, directory=True)
    images = require_path(base / "images", "pets", PETS_LAYOUT, directory=True)
    listing = require_path(base / "annotations" / f"{split}.txt", "pets", PETS_LAYOUT)
    rows = [r for r in read_rows(listing, 4, "pets") if not r[0].startswith("#")]
    names: dict[int, str] = {}
    for other in ("trainval", "test"):  # both lists, so a split missing a breed keeps every name
        path = base / "annotations" / f"{other}.txt"
        table = rows if other == split else (read_rows(path, 4, "pets") if path.is_file() else [])
        names.update((int(r[1]), _pet_class_name(r[0])) for r in table if not r[0].startswith("#"))
    if sorted(names) != list(range(1, len(names) + 1)):
        raise ValueError(f"pets: class ids in {base / 'annotations'} are not 1..{len(names)}: {sorted(names)}")
    records = [ImageRecord(images / f"{r[0]}.jpg", int(r[1]) - 1, None,
                           {"image_id": r[0], "species": ("cat", "dog")[int(r[2]) - 1],
                            "breed_id": int(r[3]), "split": split}) for r in rows]
    return ImageDataset("pets", records, [names[k] for k in sorted(names)], base)
