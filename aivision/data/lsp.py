"""Leeds Sports Pose reader (``lsp_dataset.zip``, sam.johnson.io/research/lsp.html).

Layout::

    <root>/images/im0001.jpg .. im2000.jpg
    <root>/joints.mat          "joints": 3 x 14 x 2000 (x, y, visibility flag) per joint and image

``root`` may also be the folder above ``lsp_dataset/``. The 14 joints, in order: right ankle,
right knee, right hip, left hip, left knee, left ankle, right wrist, right elbow, right
shoulder, left shoulder, left elbow, left wrist, neck, head top. The extended set (LSPET,
``14 x 3 x 10000``, ``im00001.jpg``) is read the same way.

Invisible joints: LSP annotates every joint, occluded ones at their estimated position, so
the target keeps all 14 ``(x, y)`` (28 outputs, normalised by the image size) whatever the
third row says; that flag is kept unchanged in ``meta["visibility"]`` (14 ints) for users who
want to mask or weight joints.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from aivision.data.base import ImageDataset, ImageRecord
from aivision.data.layout import check_choice, check_int, find_base, image_size, missing, require_path, require_root
from aivision.data.splits import grouped_split

LAYOUT = "<root>/{images/im0001.jpg..im2000.jpg, joints.mat (3x14x2000 x, y, visibility)}"
JOINTS = ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow", "r_shoulder",
          "l_shoulder", "l_elbow", "l_wrist", "neck", "head_top")
SPLITS = {"train": (0,), "test": (1,), "all": (0, 1)}


def load_joints(path: Path) -> np.ndarray:
    """``joints.mat`` as float64 ``(N, 14, 3)`` (x, y, flag), from ``3x14xN`` or ``14x3xN``.

    Raises:
        ValueError: no ``joints`` array or an unexpected shape (names the file).
    """
    from scipy.io import loadmat

    table = loadmat(path)
    if "joints" not in table:
        keys = sorted(k for k in table if not k.startswith("__"))
        raise ValueError(f"lsp: {path} has no 'joints' array (keys: {keys})")
    joints = np.asarray(table["joints"], dtype=np.float64)
    if joints.ndim == 3 and joints.shape[:2] == (3, 14):
        return joints.transpose(2, 1, 0)
    if joints.ndim == 3 and joints.shape[:2] == (14, 3):
        return joints.transpose(2, 0, 1)
    raise ValueError(f"lsp: 'joints' in {path} has shape {joints.shape}, expected 3x14xN or 14x3xN")


def read_lsp(root: str | Path, *, split: str = "train", seed: int = 0) -> ImageDataset:
    """Read Leeds Sports Pose for 14-joint regression.

    The paper tests on 40 % of the images; here a seeded 60/40 train/test split.

    Args:
        root: folder holding ``images/`` and ``joints.mat`` (or the folder above ``lsp_dataset/``).
        split: ``"train"`` (60 %), ``"test"`` (40 %) or ``"all"``.
        seed: seed of the split.

    Returns:
        Regression ``ImageDataset``: targets ``(N, 28)`` = 14 normalised ``(x, y)`` in the
        order of ``JOINTS``; ``meta = {"image_id", "visibility", "size" (w, h), "split"}``.
    """
    root = require_root(root, "lsp", LAYOUT)
    check_choice("lsp", "split", split, tuple(SPLITS))
    base = find_base(root, "joints.mat", ["lsp_dataset"], "lsp", LAYOUT)
    images = require_path(base / "images", "lsp", LAYOUT, directory=True)
    joints = load_joints(base / "joints.mat")
    digits = 4 if (images / "im0001.jpg").is_file() or len(joints) < 10000 else 5
    parts = grouped_split([range(len(joints))], (0.6, 0.4), check_int("lsp", "seed", seed))
    names = ("train", "test")
    chosen = sorted((int(i), names[k]) for k in SPLITS[split] for i in parts[k])
    records = []
    for i, part in chosen:
        path = images / f"im{i + 1:0{digits}d}.jpg"
        if not path.is_file():
            raise missing("lsp", path, LAYOUT)
        width, height = image_size(path)
        target = tuple(float(v) for x, y in joints[i, :, :2] for v in (x / width, y / height))
        meta = {"image_id": i + 1, "visibility": tuple(int(v) for v in joints[i, :, 2]),
                "size": (width, height), "split": part}
        records.append(ImageRecord(path, -1, target, meta))
    target_names = [f"{joint}_{axis}" for joint in JOINTS for axis in "xy"]
    return ImageDataset("lsp", records, [], base, task="regression", target_names=target_names)
