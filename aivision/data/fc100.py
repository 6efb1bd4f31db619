"""FC100 reader (the MetaOptNet distribution, github.com/kjunelee/MetaOptNet).

Layout::

    <root>/FC100_train.pickle   60 classes (12 CIFAR-100 superclasses), 600 images each
    <root>/FC100_val.pickle     20 classes (4 superclasses)
    <root>/FC100_test.pickle    20 classes (4 superclasses): the meta-test split

Each file is a pickled dict ``{"data": (N, 32, 32, 3) uint8, "labels": N CIFAR-100 fine label
ids}``. ``root`` may also be the folder above one named ``FC100``. The paper evaluates on the
meta-test split, so that is the default.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from aivision.data.arrays import ArrayImageDataset, channels_first, load_array_pickle
from aivision.data.base import ImageRecord
from aivision.data.layout import check_choice, find_base, require_path, require_root

LAYOUT = "<root>/FC100_{train,val,test}.pickle (dicts with 'data' (N,32,32,3) uint8 and 'labels')"
FILES = {"train": "FC100_train.pickle", "val": "FC100_val.pickle", "test": "FC100_test.pickle"}


def read_fc100(root: str | Path, *, split: str = "test") -> ArrayImageDataset:
    """Read one FC100 split.

    Args:
        root: folder holding the ``FC100_*.pickle`` files (or the folder above ``FC100/``).
        split: ``"train"``, ``"val"`` or ``"test"`` (meta-test, the default).

    Returns:
        ``ArrayImageDataset`` of ``(3, 32, 32)`` images; classes are the split's CIFAR-100 fine
        label ids as strings (ascending), ``meta = {"row", "cifar100_label", "split"}``.
    """
    root = require_root(root, "fc100", LAYOUT)
    check_choice("fc100", "split", split, tuple(FILES))
    base = find_base(root, FILES[split], ["FC100", "fc100"], "fc100", LAYOUT)
    path = require_path(base / FILES[split], "fc100", LAYOUT)
    table = load_array_pickle(path, "fc100", ["data", "labels"])
    images = channels_first(table["data"], "fc100", path)
    ids = np.asarray(table["labels"]).reshape(-1).astype(np.int64)
    if len(ids) != len(images):
        raise ValueError(f"fc100: {path} has {len(images)} images but {len(ids)} labels")
    distinct = sorted(set(ids.tolist()))
    index = {v: i for i, v in enumerate(distinct)}
    records = [ImageRecord(None, index[int(v)], None, {"row": row, "cifar100_label": int(v), "split": split})
               for row, v in enumerate(ids)]
    return ArrayImageDataset("fc100", images, records, [str(v) for v in distinct], base)
