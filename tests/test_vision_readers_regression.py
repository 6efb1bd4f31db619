"""Vision regression readers (300W, LSP, CelebA) and the seeded split helpers, on tiny copies."""
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from aivision.data import (grouped_split, open_image_dataset, per_class_split, read_300w, read_celeba, read_lsp,
                           read_pts, split_sizes)

pytestmark = pytest.mark.usefixtures("one_thread")


def image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(path)
    return path


def write_pts(path: Path, points: np.ndarray) -> Path:
    body = "".join(f"{x:.3f} {y:.3f}\n" for x, y in points)
    path.write_text(f"version: 1\nn_points:  {len(points)}\n{{\n{body}}}\n")
    return path


# ------------------------------------------------------------------------------ split helpers

def test_split_helpers():
    assert split_sizes(300, (0.3, 0.3, 0.4)) == [90, 90, 120]
    assert split_sizes(2000, (0.6, 0.4)) == [1200, 800] and split_sizes(10, (0.3, 0.3, 0.4)) == [3, 3, 4]
    with pytest.raises(ValueError, match="sum to 1"):
        split_sizes(10, (0.5, 0.6))
    parts = grouped_split([range(0, 10), range(10, 17)], (0.3, 0.3, 0.4), seed=1)
    assert [len(p) for p in parts] == [3 + 2, 3 + 2, 4 + 3]
    assert sorted(np.concatenate(parts).tolist()) == list(range(17))
    again = grouped_split([range(10), range(10, 17)], (0.3, 0.3, 0.4), 1)
    assert [p.tolist() for p in parts] == [p.tolist() for p in again]
    train, test = per_class_split([0, 0, 0, 1, 1, 2], per_class=2, seed=0)
    assert np.bincount(np.asarray([0, 0, 0, 1, 1, 2])[train]).tolist() == [2, 2, 1] and len(test) == 1
    with pytest.raises(ValueError, match=">= 1"):
        per_class_split([0], 0, 0)


# ------------------------------------------------------------------------------ 300W

@pytest.fixture
def w300_root(tmp_path):
    rng = np.random.default_rng(0)
    points = {}
    for folder, stem in (("01_Indoor", "indoor"), ("02_Outdoor", "outdoor")):
        for k in range(1, 11):
            width, height = 10 + k, 20 - k
            path = image(tmp_path / "300W" / folder / f"{stem}_{k:03d}.png", width, height)
            points[path.name] = (rng.uniform(1, [width, height], size=(68, 2)).round(3), width, height)
            write_pts(path.with_suffix(".pts"), points[path.name][0])
    return tmp_path, points


def test_300w_targets_and_seeded_split_per_set(w300_root):
    root, points = w300_root
    parts = {s: read_300w(root, split=s, seed=3) for s in ("train", "val", "test")}
    for name, size in (("train", 6), ("val", 6), ("test", 8)):
        data = parts[name]
        assert len(data) == size and data.task == "regression" and data.class_names == []
        sets = [r.meta["set"] for r in data.records]
        assert sets.count("indoor") == sets.count("outdoor") == size // 2  # 3/3/4 of each set of 10
        assert {r.meta["split"] for r in data.records} == {name}
    paths = [{r.path for r in parts[s].records} for s in parts]
    assert not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])
    assert len(paths[0] | paths[1] | paths[2]) == 20
    again = read_300w(root / "300W", split="test", seed=3)
    assert [r.path for r in again.records] == [r.path for r in parts["test"].records]
    assert len({tuple(r.path for r in read_300w(root, split="test", seed=s).records) for s in range(4)}) > 1
    assert len(read_300w(root, split="trainval", seed=3)) == 12 and len(read_300w(root, split="all")) == 20

    data = parts["test"]
    targets = data.targets
    assert targets.shape == (8, 136) and targets.dtype == np.float32
    assert data.target_names[:3] == ["x0", "y0", "x1"] and len(data.target_names) == 136
    for i, record in enumerate(data.records):
        raw, width, height = points[record.path.name]
        expected = (raw / np.array([width, height])).reshape(-1)
        np.testing.assert_allclose(targets[i], expected, rtol=1e-6)
        assert record.meta["size"] == (width, height)
    x = data.load(0)
    assert x.dtype == torch.uint8 and x.shape == (3, data.records[0].meta["size"][1], data.records[0].meta["size"][0])


def test_300w_bad_or_missing_files(w300_root):
    root, _ = w300_root
    pts = root / "300W" / "02_Outdoor" / "outdoor_004.pts"
    pts.write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    with pytest.raises(ValueError, match=r"outdoor_004.pts declares n_points 68 but lists 1"):
        read_300w(root)
    assert len(read_pts(write_pts(pts, np.ones((68, 2))))) == 68
    pts.unlink()
    with pytest.raises(FileNotFoundError, match=r"300w: file .*outdoor_004.pts not found.*#300w"):
        read_300w(root)
    with pytest.raises(FileNotFoundError, match=r"01_Indoor not found"):
        read_300w(root / "300W" / "02_Outdoor")


# ------------------------------------------------------------------------------ LSP

@pytest.fixture
def lsp_root(tmp_path):
    base = tmp_path / "lsp_dataset"
    n = 10
    sizes = [(20 + i, 30 - i) for i in range(n)]
    for i, (w, h) in enumerate(sizes):
        image(base / "images" / f"im{i + 1:04d}.jpg", w, h)
    rng = np.random.default_rng(1)
    joints = np.zeros((3, 14, n))
    joints[0] = rng.uniform(0, 20, (14, n))
    joints[1] = rng.uniform(0, 20, (14, n))
    joints[2] = rng.integers(0, 2, (14, n))
    joints[0, 0, 0] = -3.5  # annotated outside the image: kept as is
    scipy.io.savemat(base / "joints.mat", {"joints": joints})
    return tmp_path, joints, sizes


def test_lsp_targets_visibility_and_split(lsp_root):
    root, joints, sizes = lsp_root
    train, test = read_lsp(root, seed=2), read_lsp(root / "lsp_dataset", split="test", seed=2)
    assert len(train) == 6 and len(test) == 4 and len(read_lsp(root, split="all")) == 10
    ids = [r.meta["image_id"] for r in train.records] + [r.meta["image_id"] for r in test.records]
    assert sorted(ids) == list(range(1, 11))
    assert [r.meta["image_id"] for r in read_lsp(root, seed=2).records] == [r.meta["image_id"] for r in train.records]
    assert len({tuple(r.meta["image_id"] for r in read_lsp(root, seed=s).records) for s in range(4)}) > 1
    everything = read_lsp(root, split="all")
    targets = everything.targets
    assert targets.shape == (10, 28) and everything.target_names[:2] == ["r_ankle_x", "r_ankle_y"]
    for i, record in enumerate(everything.records):
        w, h = sizes[i]
        expected = np.stack([joints[0, :, i] / w, joints[1, :, i] / h], axis=1).reshape(-1)
        np.testing.assert_allclose(targets[i], expected, rtol=1e-6)  # invisible joints included
        assert record.meta["visibility"] == tuple(int(v) for v in joints[2, :, i])
        assert record.path.name == f"im{i + 1:04d}.jpg" and record.meta["size"] == (w, h)
    assert targets[0, 0] == pytest.approx(-3.5 / 20)
    assert everything.load(3).shape == (3, 27, 23)


def test_lsp_transposed_joints_and_missing_files(lsp_root):
    root, joints, _ = lsp_root
    mat = root / "lsp_dataset" / "joints.mat"
    scipy.io.savemat(mat, {"joints": joints.transpose(1, 0, 2)})  # LSPET stores 14 x 3 x N
    np.testing.assert_allclose(read_lsp(root, split="all").targets[4, :2],
                               [joints[0, 0, 4] / 24, joints[1, 0, 4] / 26], rtol=1e-6)
    scipy.io.savemat(mat, {"joints": joints[:2]})
    with pytest.raises(ValueError, match=r"shape \(2, 14, 10\), expected 3x14xN"):
        read_lsp(root)
    scipy.io.savemat(mat, {"joints": joints})
    (root / "lsp_dataset" / "images" / "im0007.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"lsp: file .*im0007.jpg not found.*#lsp"):
        read_lsp(root, split="all")
    mat.unlink()
    with pytest.raises(FileNotFoundError, match=r"joints.mat not found"):
        read_lsp(root)


# ------------------------------------------------------------------------------ CelebA

LANDMARK_HEADER = ("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
                   "leftmouth_x leftmouth_y rightmouth_x rightmouth_y")


def celeba_files(images: Path, anno: Path, evals: Path) -> np.ndarray:
    names = [f"{i:06d}.jpg" for i in range(1, 7)]
    for name in names:
        image(images / name, 17, 21)
    marks = np.arange(60).reshape(6, 10) % 17 + 1
    anno.mkdir(parents=True, exist_ok=True)
    evals.mkdir(parents=True, exist_ok=True)
    rows = [f"{n} " + " ".join(f"{v:>4d}" for v in m) for n, m in zip(names, marks)]
    (anno / "list_landmarks_align_celeba.txt").write_text(f"6\n{LANDMARK_HEADER}\n" + "\n".join(rows) + "\n")
    (evals / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, [0, 0, 0, 1, 2, 2])))
    return marks


def test_celeba_torchvision_layout(tmp_path):
    base = tmp_path / "celeba"
    marks = celeba_files(base / "img_align_celeba", base, base)
    train = read_celeba(tmp_path)
    assert len(train) == 3 and train.task == "regression" and train.target_names == LANDMARK_HEADER.split()
    expected = (marks[:3] / np.tile([17, 21], 5)).astype(np.float32)
    np.testing.assert_allclose(train.targets, expected, rtol=1e-6)
    assert train.load(0).shape == (3, 21, 17)
    assert [r.path.name for r in read_celeba(base, split="test").records] == ["000005.jpg", "000006.jpg"]
    assert len(read_celeba(base, split="valid")) == len(read_celeba(base, split="val")) == 1
    assert [r.meta["split"] for r in read_celeba(base, split="all").records] == ["train"] * 3 + ["val", "test", "test"]
    (base / "list_eval_partition.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"celeba: file .*celeba/list_eval_partition.txt not found.*#celeba"):
        read_celeba(tmp_path)


def test_celeba_google_drive_layout_and_spec(tmp_path):
    marks = celeba_files(tmp_path / "Img" / "img_align_celeba", tmp_path / "Anno", tmp_path / "Eval")
    data = open_image_dataset(f"celeba:{tmp_path}?split=trainval")
    assert len(data) == 4 and data.root == tmp_path
    np.testing.assert_allclose(data.targets[3], marks[3] / np.tile([17, 21], 5), rtol=1e-6)
    with pytest.raises(ValueError, match=r"split='dev' is not one of"):
        open_image_dataset(f"celeba:{tmp_path}?split=dev")
    with pytest.raises(FileNotFoundError, match=r"img_align_celeba not found"):
        read_celeba(tmp_path / "Anno")
