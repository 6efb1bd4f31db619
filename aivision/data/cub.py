"""CUB-200-2011 reader (Caltech-UCSD Birds, ``CUB_200_2011.tgz``).

Layout::

    <root>/CUB_200_2011/images.txt              <image_id> <class folder>/<file>.jpg
    <root>/CUB_200_2011/image_class_labels.txt  <image_id> <class_id 1..200>
    <root>/CUB_200_2011/train_test_split.txt    <image_id> <1 = train, 0 = test>
    <root>/CUB_200_2011/classes.txt             <class_id> <class name, e.g. 001.Black_footed_Albatross>
    <root>/CUB_200_2011/bounding_boxes.txt      <image_id> <x> <y> <width> <height>   (optional)
    <root>/CUB_200_2011/images/<class folder>/<file>.jpg

``root`` may be ``CUB_200_2011`` itself or its parent. Published split: 5,994 train / 5,794 test.
"""
from __future__ import annotations

from pathlib import Path

from aivision.data.base import ImageDataset, ImageRecord
from aivision.data.layout import check_choice, find_base, read_rows, require_path, require_root

LAYOUT = ("<root>/CUB_200_2011/{images.txt, image_class_labels.txt, train_test_split.txt, classes.txt, "
          "images/<class>/*.jpg}")


def _table(base: Path, name: str, columns: int) -> dict[int, list[str]]:
    path = require_path(base / name, "cub200", LAYOUT)
    table: dict[int, list[str]] = {}
    for row in read_rows(path, columns, "cub200"):
        table[int(row[0])] = row[1:]
    return table


def read_cub200(root: str | Path, *, split: str = "train") -> ImageDataset:
    """Read CUB-200-2011.

    Args:
        root: ``CUB_200_2011`` or the folder above it.
        split: ``"train"``, ``"test"`` (published split) or ``"all"`` (the paper's few-shot
            episodes use the whole dataset).

    Returns:
        ``ImageDataset`` with the 200 names of ``classes.txt`` (label = class id - 1) and
        ``meta = {"image_id", "relpath", "split"}`` plus ``"bbox"`` ``(x, y, w, h)`` when
        ``bounding_boxes.txt`` is present.
    """
    root = require_root(root, "cub200", LAYOUT)
    check_choice("cub200", "split", split, ("train", "test", "all"))
    base = find_base(root, "images.txt", ["CUB_200_2011"], "cub200", LAYOUT)
    images = require_path(base / "images", "cub200", LAYOUT, directory=True)
    paths = _table(base, "images.txt", 2)
    labels = _table(base, "image_class_labels.txt", 2)
    is_train = _table(base, "train_test_split.txt", 2)
    classes = _table(base, "classes.txt", 2)
    boxes = _table(base, "bounding_boxes.txt", 5) if (base / "bounding_boxes.txt").is_file() else {}
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise ValueError(f"cub200: class ids in {base / 'classes.txt'} are not 1..{len(classes)}")
    names = [classes[k][0] for k in sorted(classes)]
    records = []
    for image_id in sorted(paths):
        for table, file in ((labels, "image_class_labels.txt"), (is_train, "train_test_split.txt")):
            if image_id not in table:
                raise ValueError(f"cub200: image {image_id} of images.txt has no row in {base / file}")
        part = "train" if is_train[image_id][0] == "1" else "test"
        if split not in ("all", part):
            continue
        label = int(labels[image_id][0]) - 1
        if not 0 <= label < len(names):
            raise ValueError(f"cub200: class {label + 1} of image {image_id} not in {base / 'classes.txt'}")
        meta = {"image_id": image_id, "relpath": paths[image_id][0], "split": part}
        if image_id in boxes:
            meta["bbox"] = tuple(float(v) for v in boxes[image_id][:4])
        records.append(ImageRecord(images / paths[image_id][0], label, None, meta))
    return ImageDataset("cub200", records, names, base)
