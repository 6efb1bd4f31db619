"""Vision classification readers on tiny copies of each dataset in its published layout.

Regression readers (300W, LSP, CelebA) and the split helpers: test_vision_readers_regression.py;
specs, registry and docs sections: test_vision_readers_specs.py.
"""
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from aivision.data import (ArrayImageDataset, ImageDataset, read_caltech101, read_cifar10, read_cifar100,
                           read_class_list, read_cub200, read_dtd, read_fc100, read_flowers102, read_folder,
                           read_imagenet100, read_pets, read_plant_disease)
from aivision.data.imagenet100 import DEFAULT_CLASSES

pytestmark = pytest.mark.usefixtures("one_thread")


def image(path: Path, width: int = 6, height: int = 4, value: int = 0) -> Path:
    """A tiny RGB image file (format from the suffix); pixel (y, x, c) = value + 10*c + x."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.zeros((height, width, 3), np.uint8) + value
    array += (np.arange(3) * 10)[None, None, :].astype(np.uint8) + np.arange(width, dtype=np.uint8)[None, :, None]
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), "PNG")
    Image.fromarray(array).save(path, format=fmt)
    return path


def lines(path: Path, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(r + "\n" for r in rows))
    return path


# ------------------------------------------------------------------------------ ImageNet-100

def test_shipped_imagenet100_list_is_cmc():
    wnids = read_class_list(DEFAULT_CLASSES)
    assert len(wnids) == 100 == len(set(wnids))
    assert all(re.fullmatch(r"n\d{8}", w) for w in wnids)
    assert wnids[:3] == ["n02869837", "n01749939", "n02488291"] and wnids[-1] == "n02090622"


def test_imagenet100_default_list_tree_and_split(tmp_path):
    wnids = read_class_list(DEFAULT_CLASSES)
    for k, w in enumerate(wnids):
        image(tmp_path / "train" / w / f"{w}_{k}.JPEG", value=k)
    image(tmp_path / "train" / wnids[0] / f"{wnids[0]}_extra.JPEG")
    image(tmp_path / "train" / "n99999999" / "n99999999_1.JPEG")  # an ImageNet-1k class not in the list
    (tmp_path / "train" / wnids[1] / "notes.txt").write_text("x")
    data = read_imagenet100(tmp_path)
    assert len(data) == 101 and data.class_names == sorted(wnids) and data.num_classes == 100
    assert "n99999999" not in data.class_names
    first = data.class_names.index(wnids[0])
    assert (data.labels == first).sum() == 2
    assert data.records[0].meta == {"relpath": f"{data.class_names[0]}/{data.class_names[0]}_"
                                    f"{wnids.index(data.class_names[0])}.JPEG", "split": "train"}
    x = data.load(0)
    assert x.shape == (3, 4, 6) and x.dtype == torch.uint8
    with pytest.raises(FileNotFoundError, match=r"imagenet100: folder .*val not found.*#imagenet100"):
        read_imagenet100(tmp_path, split="val")


def test_imagenet100_custom_list_val_and_errors(tmp_path):
    listing = lines(tmp_path / "mine.txt", ["# my classes", "n00000002", "", "n00000001"])
    for w in ("n00000001", "n00000002", "n00000003"):
        for k in range(2):
            image(tmp_path / "val" / w / f"ILSVRC2012_val_{w}_{k}.JPEG", 5, 7)
    data = read_imagenet100(tmp_path, split="val", classes=str(listing))
    assert data.class_names == ["n00000001", "n00000002"] and data.labels.tolist() == [0, 0, 1, 1]
    assert data.load(3).shape == (3, 7, 5)
    assert read_imagenet100(tmp_path, split="val", classes=["n00000003"]).labels.tolist() == [0, 0]
    with pytest.raises(FileNotFoundError, match=r"class folder .*n00000009 not found"):
        read_imagenet100(tmp_path, split="val", classes=["n00000001", "n00000009"])
    flat = tmp_path / "flat"
    for k in range(3):
        image(flat / "val" / f"ILSVRC2012_val_{k:08d}.JPEG")
    with pytest.raises(FileNotFoundError, match=r"holds 3 images directly.*per class.*<wnid>"):
        read_imagenet100(flat, split="val")
    with pytest.raises(ValueError, match=r"split='test' is not one of \['train', 'val'\]"):
        read_imagenet100(tmp_path, split="test")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_imagenet100(tmp_path, split="val", classes=str(tmp_path / "nope.txt"))


# ------------------------------------------------------------------------------ CIFAR / FC100

def cifar_batch(n: int, labels: list[int], seed: int, bytes_keys: bool, label_key: str = "labels") -> dict:
    data = np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)
    names = [f"img_{seed}_{i}.png" for i in range(n)]
    batch = {"batch_label": "b", label_key: labels, "data": data, "filenames": names}
    return {(k.encode() if bytes_keys else k): v for k, v in batch.items()}


@pytest.fixture
def cifar10_root(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    for k in range(1, 6):
        (base / f"data_batch_{k}").write_bytes(pickle.dumps(cifar_batch(3, [k % 10, 0, 9], k, k % 2 == 0), protocol=2))
    (base / "test_batch").write_bytes(pickle.dumps(cifar_batch(2, [3, 4], 9, False)))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (base / "batches.meta").write_bytes(pickle.dumps({b"label_names": [n.encode() for n in names],
                                                      b"num_vis": 3072}, protocol=2))
    return tmp_path


def test_cifar10(cifar10_root):
    data = read_cifar10(cifar10_root)
    assert isinstance(data, ArrayImageDataset) and len(data) == 15 and data.num_classes == 10
    assert data.class_names[:2] == ["airplane", "automobile"]
    assert data.labels.tolist() == [1, 0, 9, 2, 0, 9, 3, 0, 9, 4, 0, 9, 5, 0, 9]
    batch2 = pickle.loads((cifar10_root / "cifar-10-batches-py" / "data_batch_2").read_bytes())
    x = data.load(4)
    assert x.dtype == torch.uint8 and x.shape == (3, 32, 32)
    assert torch.equal(x, torch.from_numpy(batch2[b"data"][1].reshape(3, 32, 32)))
    assert data.records[4].meta == {"row": 4, "filename": "img_2_1.png", "split": "train"}
    test = read_cifar10(cifar10_root / "cifar-10-batches-py", split="test")
    assert test.labels.tolist() == [3, 4] and test.records[1].meta["split"] == "test"
    sub = data.subset([4]).with_classes(["airplane"])
    assert len(sub) == 1 and torch.equal(sub.load(0), x)
    (cifar10_root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"data_batch_3 not found.*#cifar10"):
        read_cifar10(cifar10_root)


def test_cifar100_fine_and_coarse(tmp_path):
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    for split, seed in (("train", 1), ("test", 2)):
        batch = cifar_batch(4, [5, 6, 7, 99], seed, False, "fine_labels")
        batch["coarse_labels"] = [0, 1, 1, 19]
        (base / split).write_bytes(pickle.dumps(batch, protocol=2))
    (base / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"f{i}" for i in range(100)],
                                              "coarse_label_names": [f"c{i}" for i in range(20)]}))
    fine = read_cifar100(tmp_path)
    assert fine.num_classes == 100 and fine.labels.tolist() == [5, 6, 7, 99] and fine.class_names[99] == "f99"
    coarse = read_cifar100(tmp_path, split="test", labels="coarse")
    assert coarse.num_classes == 20 and coarse.labels.tolist() == [0, 1, 1, 19]
    with pytest.raises(ValueError, match="labels='medium'"):
        read_cifar100(tmp_path, labels="medium")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickles_that_name_other_code_are_refused(cifar10_root):
    (cifar10_root / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({"data": _Evil(), "labels": []}))
    with pytest.raises(ValueError, match=r"test_batch is not a pickle of numpy arrays.*refusing .*builtins.print"):
        read_cifar10(cifar10_root, split="test")


def test_fc100(tmp_path):
    base = tmp_path / "FC100"
    base.mkdir()
    rng = np.random.default_rng(0)
    arrays = {}
    for split, ids in (("train", [0, 1]), ("val", [2, 3]), ("test", [58, 4, 58, 12, 4])):
        arrays[split] = rng.integers(0, 256, (len(ids), 32, 32, 3), dtype=np.uint8)
        (base / f"FC100_{split}.pickle").write_bytes(pickle.dumps({"data": arrays[split], "labels": ids}, protocol=2))
    data = read_fc100(tmp_path)
    assert data.class_names == ["4", "12", "58"] and data.labels.tolist() == [2, 0, 2, 1, 0]
    assert [r.meta["cifar100_label"] for r in data.records] == [58, 4, 58, 12, 4]
    assert torch.equal(data.load(3), torch.from_numpy(arrays["test"][3]).permute(2, 0, 1))
    assert len(read_fc100(base, split="val")) == 2 and read_fc100(base, split="train").class_names == ["0", "1"]
    (base / "FC100_val.pickle").unlink()
    with pytest.raises(FileNotFoundError, match=r"FC100_val.pickle not found.*#fc100"):
        read_fc100(base, split="val")


# ------------------------------------------------------------------------------ Oxford VGG sets

@pytest.fixture
def flowers_root(tmp_path):
    base = tmp_path / "flowers-102"
    for i in range(1, 8):
        image(base / "jpg" / f"image_{i:05d}.jpg", 8, 5 + i)
    scipy.io.savemat(base / "imagelabels.mat", {"labels": np.array([[1, 2, 102, 1, 2, 102, 1]], np.uint8)})
    splits = {"trnid": [[1, 2]], "valid": [[3, 4]], "tstid": [[5, 6, 7]]}
    scipy.io.savemat(base / "setid.mat", {k: np.array(v, np.uint16) for k, v in splits.items()})
    return tmp_path


def test_flowers102_matches_torchvision(flowers_root):
    from torchvision.datasets import Flowers102

    class NoChecksum(Flowers102):
        def _check_integrity(self):
            return True

    for split, ids in (("train", [1, 2]), ("val", [3, 4]), ("test", [5, 6, 7])):
        data = read_flowers102(flowers_root, split=split)
        reference = NoChecksum(str(flowers_root), split=split)
        assert [r.path for r in data.records] == list(reference._image_files)
        assert data.labels.tolist() == list(reference._labels)
        assert [r.meta["image_id"] for r in data.records] == ids
    data = read_flowers102(flowers_root / "flowers-102", split="trainval")
    assert data.labels.tolist() == [0, 1, 101, 0] and data.num_classes == 102
    assert data.class_names[0] == "pink primrose" and data.load(3).shape == (3, 9, 8)
    (flowers_root / "flowers-102" / "imagelabels.mat").unlink()
    with pytest.raises(FileNotFoundError, match=r"imagelabels.mat not found.*#flowers102"):
        read_flowers102(flowers_root)


@pytest.fixture
def dtd_root(tmp_path):
    base = tmp_path / "dtd" / "dtd"
    files = {c: [f"{c}/{c}_{k:04d}.jpg" for k in range(3)] for c in ("banded", "zigzagged", "dotted")}
    for c, names in files.items():
        for n in names:
            image(base / "images" / n)
    for p in (1, 2):
        for k, split in enumerate(("train", "val", "test")):
            lines(base / "labels" / f"{split}{p}.txt", [names[(k + p) % 3] for names in files.values()])
    return tmp_path


def test_dtd_matches_torchvision(dtd_root):
    from torchvision.datasets import DTD

    for split in ("train", "val", "test"):
        for partition in (1, 2):
            data = read_dtd(dtd_root, split=split, partition=partition)
            reference = DTD(str(dtd_root), split=split, partition=partition)
            assert [r.path for r in data.records] == list(reference._image_files)
            assert data.labels.tolist() == list(reference._labels) and data.class_names == reference.classes
    data = read_dtd(dtd_root / "dtd" / "dtd", split="trainval", partition=2)
    assert data.class_names == ["banded", "dotted", "zigzagged"] and len(data) == 6
    assert [r.meta["split"] for r in data.records] == ["train"] * 3 + ["val"] * 3
    assert data.records[0].meta["relpath"] == "banded/banded_0002.jpg"
    with pytest.raises(ValueError, match="partition=11"):
        read_dtd(dtd_root, partition=11)
    (dtd_root / "dtd" / "dtd" / "labels" / "val2.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"labels/val2.txt not found.*#dtd"):
        read_dtd(dtd_root / "dtd", split="val", partition=2)


@pytest.fixture
def pets_root(tmp_path):
    base = tmp_path / "oxford-iiit-pet"
    trainval = ["Abyssinian_1 1 1 1", "american_bulldog_10 2 2 1", "Abyssinian_2 1 1 1"]
    test = ["american_bulldog_11 2 2 1", "yorkshire_terrier_3 3 2 25"]
    lines(base / "annotations" / "trainval.txt", trainval)
    lines(base / "annotations" / "test.txt", test)
    for row in trainval + test:
        image(base / "images" / f"{row.split()[0]}.jpg")
    return tmp_path


def test_pets_matches_torchvision(pets_root):
    from torchvision.datasets import OxfordIIITPet

    data = read_pets(pets_root)
    reference = OxfordIIITPet(str(pets_root))
    assert [r.path for r in data.records] == list(reference._images)
    assert data.labels.tolist() == list(reference._labels) == [0, 1, 0]
    assert data.class_names[:2] == reference.classes == ["Abyssinian", "American Bulldog"]
    assert data.class_names == ["Abyssinian", "American Bulldog", "Yorkshire Terrier"]
    assert data.records[1].meta == {"image_id": "american_bulldog_10", "species": "dog", "breed_id": 1,
                                    "split": "trainval"}
    test = read_pets(pets_root / "oxford-iiit-pet", split="test")
    assert test.labels.tolist() == [1, 2] and len(read_pets(pets_root, split="train")) == 3
    (pets_root / "oxford-iiit-pet" / "annotations" / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"annotations/test.txt not found.*#pets"):
        read_pets(pets_root, split="test")


# ------------------------------------------------------------------------------ Caltech101, CUB

@pytest.fixture
def caltech_root(tmp_path):
    base = tmp_path / "caltech101" / "101_ObjectCategories"
    for c, n in (("BACKGROUND_Google", 3), ("Faces", 5), ("Faces_easy", 4), ("accordion", 6), ("yin_yang", 2)):
        for k in range(1, n + 1):
            image(base / c / f"image_{k:04d}.jpg")
    return tmp_path


def test_caltech101_matches_torchvision_and_splits_per_class(caltech_root):
    from torchvision.datasets import Caltech101

    everything = read_caltech101(caltech_root, split="all", train_per_class=3)
    reference = Caltech101(str(caltech_root))
    assert everything.class_names == reference.categories == ["Faces", "Faces_easy", "accordion", "yin_yang"]
    assert everything.labels.tolist() == list(reference.y)
    assert [int(r.path.stem.split("_")[1]) for r in everything.records] == list(reference.index)
    train = read_caltech101(caltech_root, split="train", train_per_class=3, seed=5)
    test = read_caltech101(caltech_root / "caltech101", split="test", train_per_class=3, seed=5)
    assert np.bincount(train.labels).tolist() == [3, 3, 3, 2]  # yin_yang has only 2: all train
    assert np.bincount(test.labels, minlength=4).tolist() == [2, 1, 3, 0]
    train_paths, test_paths = {r.path for r in train.records}, {r.path for r in test.records}
    assert not train_paths & test_paths and len(train_paths | test_paths) == len(everything) == 17
    assert {r.meta["split"] for r in train.records} == {"train"} and {r.meta["split"] for r in test.records} == {"test"}
    again = read_caltech101(caltech_root / "caltech101" / "101_ObjectCategories", train_per_class=3, seed=5)
    assert [r.path for r in again.records] == [r.path for r in train.records]
    seeds = {tuple(r.path for r in read_caltech101(caltech_root, train_per_class=3, seed=s).records) for s in range(4)}
    assert len(seeds) > 1
    assert len(read_caltech101(caltech_root)) == 17  # default 30 per class: everything is training
    with pytest.raises(FileNotFoundError, match=r"101_ObjectCategories not found.*#caltech101"):
        read_caltech101(caltech_root / "caltech101" / "101_ObjectCategories" / "Faces")


@pytest.fixture
def cub_root(tmp_path):
    base = tmp_path / "CUB_200_2011"
    files = ["001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg",
             "001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg",
             "200.Common_Yellowthroat/Common_Yellowthroat_0055_190967.jpg"]
    lines(base / "images.txt", [f"{i} {f}" for i, f in enumerate(files, 1)])
    lines(base / "image_class_labels.txt", ["1 1", "2 1", "3 200"])
    lines(base / "train_test_split.txt", ["1 0", "2 1", "3 1"])
    lines(base / "classes.txt", [f"{k} {k:03d}.class_{k}" for k in range(1, 200)] + ["200 200.Common_Yellowthroat"])
    lines(base / "bounding_boxes.txt", ["1 60.0 27.0 325.0 304.0", "2 139.0 30.0 153.0 264.0", "3 1.0 2.0 3.0 4.0"])
    for f in files:
        image(base / "images" / f, 9, 7)
    return tmp_path


def test_cub200(cub_root):
    train = read_cub200(cub_root)
    assert len(train) == 2 and train.num_classes == 200 and train.labels.tolist() == [0, 199]
    assert train.class_names[0] == "001.class_1" and train.class_names[199] == "200.Common_Yellowthroat"
    relpath = "001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg"
    assert train.records[0].meta == {"image_id": 2, "relpath": relpath, "split": "train",
                                     "bbox": (139.0, 30.0, 153.0, 264.0)}
    assert train.load(1).shape == (3, 7, 9)
    test = read_cub200(cub_root / "CUB_200_2011", split="test")
    assert [r.meta["image_id"] for r in test.records] == [1] and len(read_cub200(cub_root, split="all")) == 3
    (cub_root / "CUB_200_2011" / "train_test_split.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"CUB_200_2011/train_test_split.txt not found.*#cub200"):
        read_cub200(cub_root)
    with pytest.raises(FileNotFoundError, match=r"images.txt not found.*also looked for .*CUB_200_2011/images.txt"):
        read_cub200(cub_root / "CUB_200_2011" / "images")


# ------------------------------------------------------------------------------ folders

def test_plant_disease_layouts_and_background(tmp_path):
    top = tmp_path / "Plant_leave_diseases_dataset_without_augmentation"
    for c, n in (("Apple___Apple_scab", 2), ("Tomato___healthy", 1), ("Background_without_leaves", 1)):
        for k in range(n):
            image(top / c / f"image ({k}).JPG")
    data = read_plant_disease(tmp_path)
    assert data.class_names == ["Apple___Apple_scab", "Tomato___healthy"] and data.labels.tolist() == [0, 0, 1]
    assert data.root == top and data.load(2).shape == (3, 4, 6)
    assert read_plant_disease(top, background=True).num_classes == 3
    with pytest.raises(FileNotFoundError, match=r"with_augmentation not found.*#plant_disease"):
        read_plant_disease(tmp_path, augmented=True)
    image(tmp_path / "raw" / "color" / "Corn___healthy" / "a.jpg")
    assert read_plant_disease(tmp_path / "raw").class_names == ["Corn___healthy"]
    with pytest.raises(FileNotFoundError, match="no class folders with images"):
        read_plant_disease(top / "Tomato___healthy")
    augmented = tmp_path / "aug"
    image(augmented / "Plant_leave_diseases_dataset_with_augmentation" / "Apple___healthy" / "a_flip.JPG")
    assert read_plant_disease(augmented, augmented=True).class_names == ["Apple___healthy"]
    with pytest.raises(FileNotFoundError, match="holds only Plant_leave_diseases_dataset_with_aug.*augmented=true"):
        read_plant_disease(augmented)


def test_folder_reader(tmp_path):
    image(tmp_path / "cats" / "a.png", value=7)
    image(tmp_path / "cats" / "more" / "b.JPG")
    image(tmp_path / "dogs" / "c.jpeg")
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    data = read_folder(tmp_path)
    assert isinstance(data, ImageDataset) and data.class_names == ["cats", "dogs"] and data.labels.tolist() == [0, 0, 1]
    assert [r.meta["relpath"] for r in data.records] == ["cats/a.png", "cats/more/b.JPG", "dogs/c.jpeg"]
    x = data.load(0)
    assert x[:, 0, 2].tolist() == [9, 19, 29]  # PNG is lossless: value 7 + x 2 + 10*c
    assert len(read_folder(tmp_path, extensions="png")) == 1
    with pytest.raises(FileNotFoundError, match=r"no images.*#folder"):
        read_folder(tmp_path / "empty")
