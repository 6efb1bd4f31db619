"""Vision dataset specs: the registry, ``open_image_dataset`` options and errors, the docs sections."""
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aivision.data import READERS, open_image_dataset, parse_spec, read_cifar100

pytestmark = pytest.mark.usefixtures("one_thread")

DOCS = Path(__file__).resolve().parents[1] / "docs" / "vision_datasets.md"


def image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(path)
    return path


@pytest.fixture
def caltech_root(tmp_path):
    for c, n in (("BACKGROUND_Google", 1), ("Faces", 3), ("accordion", 4)):
        for k in range(1, n + 1):
            image(tmp_path / "101_ObjectCategories" / c / f"image_{k:04d}.jpg")
    return tmp_path


def test_parse_spec_and_registry():
    assert set(READERS) == {"imagenet100", "cifar10", "cifar100", "flowers102", "dtd", "pets", "caltech101",
                            "cub200", "fc100", "plant_disease", "300w", "lsp", "celeba", "folder", "synthetic"}
    assert parse_spec("dtd:/data/dtd?split=val&partition=3") == ("dtd", "/data/dtd", {"split": "val", "partition": 3})
    assert parse_spec("FOLDER:C:\\img\\x:y") == ("folder", "C:\\img\\x:y", {})
    assert parse_spec("lsp:/d?seed=2&x=0.5&y=true&z=none&w=a,b") == (
        "lsp", "/d", {"seed": 2, "x": 0.5, "y": True, "z": None, "w": ["a", "b"]})
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet1k'.*available: imagenet100, cifar10.*cub200:"):
        parse_spec("imagenet1k:/x")
    with pytest.raises(ValueError, match="key=value"):
        parse_spec("dtd:/x?split")
    with pytest.raises(ValueError, match="given twice"):
        parse_spec("dtd:/x?split=val&split=test")


def test_open_image_dataset_options_and_errors(caltech_root):
    train = open_image_dataset(f"caltech101:{caltech_root}?train_per_class=2&seed=3")
    assert train.name == "caltech101" and train.labels.tolist() == [0, 0, 1, 1]
    assert len(open_image_dataset(f"caltech101:{caltech_root}?split=test&train_per_class=2&seed=3")) == 3
    with pytest.raises(ValueError, match=r"no option 'splits'; its options: \['split', 'train_per_class', 'seed'\]"):
        open_image_dataset(f"caltech101:{caltech_root}?splits=all")
    with pytest.raises(ValueError, match=r"caltech101: split='val' is not one of \['train', 'test', 'all'\]"):
        open_image_dataset(f"caltech101:{caltech_root}?split=val")
    with pytest.raises(ValueError, match=r"caltech101: seed='abc' must be an integer"):
        open_image_dataset(f"caltech101:{caltech_root}?seed=abc")
    with pytest.raises(ValueError, match=r"train_per_class=0 must be an integer >= 1"):
        open_image_dataset(f"caltech101:{caltech_root}?train_per_class=0")
    with pytest.raises(ValueError, match=r"cub200 needs a root folder.*#cub200"):
        open_image_dataset("cub200")
    with pytest.raises(FileNotFoundError, match=r"cub200: folder .*nowhere not found.*#cub200"):
        open_image_dataset(f"cub200:{caltech_root / 'nowhere'}")


def test_imagenet100_spec_with_one_class_and_cifar100_meta_message(tmp_path):
    image(tmp_path / "train" / "n01440764" / "n01440764_1.JPEG")
    data = open_image_dataset(f"imagenet100:{tmp_path}?classes=n01440764")
    assert data.class_names == ["n01440764"] and len(data) == 1
    with pytest.raises(FileNotFoundError, match=r"cifar100: file .*/meta not found.*cifar-100-python/meta"):
        read_cifar100(tmp_path)


def test_every_reader_has_a_docs_section():
    text = DOCS.read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (\S+)$", text, flags=re.M))
    assert set(READERS) <= headings
