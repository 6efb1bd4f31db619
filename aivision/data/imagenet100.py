"""ImageNet-100 reader: an ImageNet (ILSVRC-2012) tree restricted to a 100-class list.

Layout::

    <root>/train/<wnid>/*.JPEG      e.g. train/n02869837/n02869837_1000.JPEG
    <root>/val/<wnid>/*.JPEG        validation images sorted into per-class folders

The default class list is CMC's ImageNet-100 (github.com/HobbitLong/CMC, ``imagenet100.txt``),
shipped as ``aivision/data/imagenet100.txt``: 100 WordNet ids, one per line. Classes are
labelled in sorted wnid order (what ``torchvision.datasets.ImageFolder`` does on an
ImageNet-100 tree). ``root`` may be a full ImageNet-1k tree or one holding only the 100 classes.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from aivision.data.base import ImageDataset
from aivision.data.folder import folder_records
from aivision.data.layout import check_choice, docs_ref, is_image, missing, require_path, require_root

LAYOUT = "<root>/{train,val}/<wnid>/*.JPEG (ImageNet tree, val sorted into per-class folders)"
DEFAULT_CLASSES = Path(__file__).with_name("imagenet100.txt")


def read_class_list(path: str | Path, dataset: str = "imagenet100") -> list[str]:
    """WordNet ids of a class-list file (one per line; blank lines and ``#`` comments skipped).

    Raises:
        FileNotFoundError / ValueError: missing file, no ids, or a repeated id (names the file).
    """
    path = require_path(path, dataset, "a text file with one WordNet id (e.g. n02869837) per line")
    wnids = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            wnids.append(text.split()[0])
    if not wnids:
        raise ValueError(f"{dataset}: class list {path} holds no class ids")
    repeated = sorted({w for w in wnids if wnids.count(w) > 1})
    if repeated:
        raise ValueError(f"{dataset}: class list {path} repeats {repeated[:3]}")
    return wnids


def read_imagenet100(root: str | Path, *, split: str = "train",
                     classes: str | Sequence[str] | None = None) -> ImageDataset:
    """Read the ImageNet-100 subset of an ImageNet tree.

    Args:
        root: folder holding ``train/`` and ``val/``.
        split: ``"train"`` or ``"val"``.
        classes: a class-list file, or a list of wnids; None uses the shipped CMC list.

    Returns:
        ``ImageDataset`` with ``class_names`` = sorted wnids and ``meta = {"relpath", "split"}``.

    Raises:
        FileNotFoundError: the split folder or a listed class folder is missing (names it), or
            the val folder is the raw flat ILSVRC folder (it must be sorted per class first).
    """
    root = require_root(root, "imagenet100", LAYOUT)
    check_choice("imagenet100", "split", split, ("train", "val"))
    if classes is None:
        wnids = read_class_list(DEFAULT_CLASSES)
    elif isinstance(classes, str) and re.fullmatch(r"n\d{8}", classes) and not Path(classes).exists():
        wnids = [classes]  # one wnid from a spec (classes=n01440764)
    elif isinstance(classes, (str, Path)):
        wnids = read_class_list(Path(classes).expanduser())
    else:
        wnids = [str(c) for c in classes]
    base = root / split
    if not base.is_dir():
        raise missing("imagenet100", base, LAYOUT, directory=True)
    absent = [w for w in wnids if not (base / w).is_dir()]
    if absent:
        flat = sum(1 for p in base.iterdir() if is_image(p))
        if flat:
            raise FileNotFoundError(
                f"imagenet100: {base} holds {flat} images directly instead of one folder per class (the raw "
                f"ILSVRC2012 {split} folder); sort them into {base}/<wnid>/ folders first, e.g. with the "
                f"widely used valprep.sh script (see {docs_ref('imagenet100')})")
        raise FileNotFoundError(f"imagenet100: class folder {base / absent[0]} not found ({len(absent)} of "
                                f"{len(wnids)} listed classes missing); expected layout: {LAYOUT} "
                                f"(see {docs_ref('imagenet100')})")
    names = sorted(wnids)
    records = folder_records(base, names, recursive=False, extra={"split": split})
    counts = np.bincount([r.label for r in records], minlength=len(names))
    if (counts == 0).any():
        empty = names[int(np.flatnonzero(counts == 0)[0])]
        raise FileNotFoundError(f"imagenet100: no images in {base / empty}; expected layout: {LAYOUT} "
                                f"(see {docs_ref('imagenet100')})")
    return ImageDataset("imagenet100", records, names, root)
