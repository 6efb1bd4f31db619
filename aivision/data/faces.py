"""Facial-landmark regression readers: 300W (68 points) and CelebA (5 points).

Targets are normalised by the image size (``x / width``, ``y / height``) and interleaved
``(x0, y0, x1, y1, ...)`` as ``aivision.data.base`` specifies, so they survive any resize of the
whole image. Coordinates are used as stored in the annotation files (300W's ``.pts`` files
count pixels from 1, like Matlab; no offset is applied).
"""
from __future__ import annotations

from pathlib import Path

from aivision.data.base import ImageDataset, ImageRecord
from aivision.data.layout import (check_choice, check_int, docs_ref, find_base, image_size, missing, read_rows,
                                  require_path, require_root)
from aivision.data.splits import grouped_split

W300_LAYOUT = "<root>/300W/{01_Indoor/indoor_NNN.{png,pts}, 02_Outdoor/outdoor_NNN.{png,pts}}"
W300_SETS = ("01_Indoor", "02_Outdoor")
W300_SPLITS = {"train": (0,), "val": (1,), "test": (2,), "trainval": (0, 1), "all": (0, 1, 2)}
CELEBA_LAYOUT = ("<root>/celeba/{img_align_celeba/*.jpg, list_landmarks_align_celeba.txt, list_eval_partition.txt} "
                 "(or the Google Drive layout Img/img_align_celeba, Anno/..., Eval/...)")
CELEBA_SPLITS = {"train": ("0",), "val": ("1",), "valid": ("1",), "test": ("2",), "trainval": ("0", "1"),
                 "all": ("0", "1", "2")}
CELEBA_PARTITIONS = {"0": "train", "1": "val", "2": "test"}


def read_pts(path: Path, dataset: str = "300w") -> list[tuple[float, float]]:
    """Points of an ibug ``.pts`` file (``version: 1``, ``n_points: N``, ``{``, N lines ``x y``, ``}``).

    Raises:
        ValueError: malformed file or a point count that differs from ``n_points`` (names the file).
    """
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    header = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines if ":" in line)}
    try:
        count = int(header["n_points"])
        body = lines[lines.index("{") + 1:lines.index("}")]
        points = [(float(x), float(y)) for x, y in (line.split()[:2] for line in body)]
    except (KeyError, ValueError) as err:
        raise ValueError(f"{dataset}: {path} is not an ibug .pts file (version/n_points header, then "
                         f"{{ x y lines }}): {err}") from err
    if len(points) != count:
        raise ValueError(f"{dataset}: {path} declares n_points {count} but lists {len(points)} points")
    return points


def _normalised(points: list[tuple[float, float]], width: int, height: int) -> tuple[float, ...]:
    return tuple(v for x, y in points for v in (x / width, y / height))


def read_300w(root: str | Path, *, split: str = "train", seed: int = 0) -> ImageDataset:
    """Read 300W (indoor + outdoor, 600 faces) for landmark regression.

    The paper holds out 40 % of each set for testing; here each set (indoor, outdoor) is split
    30/30/40 into train/val/test with ``seed`` (300 images -> 90/90/120 per set).

    Args:
        root: folder holding ``01_Indoor`` and ``02_Outdoor`` (or the folder above ``300W/``).
        split: ``"train"``, ``"val"``, ``"test"``, ``"trainval"`` or ``"all"``.
        seed: seed of the split.

    Returns:
        Regression ``ImageDataset``: targets ``(N, 136)`` = 68 normalised ``(x, y)``;
        ``meta = {"set" ("indoor"/"outdoor"), "size" (w, h), "split"}``.
    """
    root = require_root(root, "300w", W300_LAYOUT)
    check_choice("300w", "split", split, tuple(W300_SPLITS))
    base = find_base(root, W300_SETS[0], ["300W", "300w"], "300w", W300_LAYOUT, directory=True)
    records, groups, count = [], [], None
    for folder in W300_SETS:
        images = sorted(p for p in require_path(base / folder, "300w", W300_LAYOUT, directory=True).iterdir()
                        if p.suffix.lower() in (".png", ".jpg") and not p.name.startswith("."))
        if not images:
            raise FileNotFoundError(f"300w: no .png images in {base / folder}; expected layout: {W300_LAYOUT} "
                                    f"(see {docs_ref('300w')})")
        groups.append(list(range(len(records), len(records) + len(images))))
        for path in images:
            pts = path.with_suffix(".pts")
            if not pts.is_file():
                raise missing("300w", pts, W300_LAYOUT)
            points = read_pts(pts)
            if count is not None and len(points) != count:
                raise ValueError(f"300w: {pts} has {len(points)} points, other files have {count}")
            count = len(points)
            width, height = image_size(path)
            meta = {"set": folder.split("_", 1)[1].lower(), "size": (width, height)}
            records.append(ImageRecord(path, -1, _normalised(points, width, height), meta))
    parts = grouped_split(groups, (0.3, 0.3, 0.4), check_int("300w", "seed", seed))
    names = ("train", "val", "test")
    chosen = []
    for k in W300_SPLITS[split]:
        chosen += [(int(i), names[k]) for i in parts[k]]
    records = [ImageRecord(records[i].path, -1, records[i].target, {**records[i].meta, "split": part})
               for i, part in sorted(chosen)]
    target_names = [f"{axis}{j}" for j in range(count or 0) for axis in "xy"]
    return ImageDataset("300w", records, [], base, task="regression", target_names=target_names)


def _celeba_file(root: Path, name: str, folders: tuple[str, ...]) -> Path:
    for folder in folders:
        if (root / folder / name).exists():
            return root / folder / name
    raise missing("celeba", root / folders[0] / name, CELEBA_LAYOUT)


def read_celeba(root: str | Path, *, split: str = "train") -> ImageDataset:
    """Read CelebA (aligned and cropped images) for 5-landmark regression.

    Args:
        root: folder holding ``img_align_celeba/`` and the list files, the torchvision root
            (``<root>/celeba/...``) or the Google Drive layout (``Img/``, ``Anno/``, ``Eval/``).
        split: published partition: ``"train"`` (162,770), ``"val"`` (19,867; ``"valid"``
            accepted), ``"test"`` (19,962), ``"trainval"`` or ``"all"``.

    Returns:
        Regression ``ImageDataset``: targets ``(N, 10)`` = left eye, right eye, nose, left and
        right mouth corner ``(x, y)`` from ``list_landmarks_align_celeba.txt``, divided by the
        image size. All aligned CelebA images are 178x218, so the size is read from the first
        image of the split and used for all. ``meta = {"split"}``.
    """
    root = require_root(root, "celeba", CELEBA_LAYOUT)
    check_choice("celeba", "split", split, tuple(CELEBA_SPLITS))
    base = find_base(root, "img_align_celeba", ["celeba", "Img", "celeba/Img"], "celeba", CELEBA_LAYOUT,
                     directory=True)
    images = base / "img_align_celeba"
    top = base.parent if base.name == "Img" else base
    partition = _celeba_file(top, "list_eval_partition.txt", (".", "Eval"))
    landmarks = _celeba_file(top, "list_landmarks_align_celeba.txt", (".", "Anno"))
    wanted = CELEBA_SPLITS[split]
    parts = {row[0]: row[1] for row in read_rows(partition, 2, "celeba")}
    table = read_rows(landmarks, 11, "celeba", skip=2)
    with open(landmarks, encoding="utf-8") as handle:
        handle.readline()
        target_names = handle.readline().split()
    if len(target_names) != 10:
        raise ValueError(f"celeba: {landmarks} line 2 should name the 10 landmark columns, got {target_names}")
    rows = []
    for row in table:
        if row[0] not in parts:
            raise ValueError(f"celeba: {row[0]} of {landmarks} has no row in {partition}")
        if parts[row[0]] in wanted:
            rows.append(row)
    if not rows:
        raise ValueError(f"celeba: no images of split {split!r} in {partition}")
    width, height = image_size(images / rows[0][0])
    records = [ImageRecord(images / row[0], -1,
                           _normalised([(float(row[j]), float(row[j + 1])) for j in range(1, 11, 2)], width, height),
                           {"split": CELEBA_PARTITIONS[parts[row[0]]]}) for row in rows]
    return ImageDataset("celeba", records, [], top, task="regression", target_names=target_names)
