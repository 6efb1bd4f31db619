"""Built-in procedural images: determinism, factor coverage, flip/orientation, colours, files."""
import csv

import numpy as np
import pytest
import torch

from aivision.data.base import ImageDataset, decode_image
from aivision.augment.color import rgb_to_hsv
from aivision.synthetic import (FACTORS, SHAPES, SyntheticImageConfig, SyntheticImages, coverage, factor_names,
                                flip_orientation, palette, read_synthetic, sample_factors, synthesise,
                                write_synthetic)
from core.config import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_deterministic_per_index_whatever_the_batch():
    cfg = SyntheticImageConfig(size=32)
    a, fa = synthesise(range(12), cfg)
    b, fb = synthesise([7, 3], cfg)
    assert a.dtype == torch.uint8 and a.shape == (12, 3, 32, 32)
    assert torch.equal(a[[7, 3]], b) and all(torch.equal(fa[k][[7, 3]], fb[k]) for k in FACTORS)
    again, _ = synthesise(range(12), SyntheticImageConfig(size=32))
    assert torch.equal(a, again)
    other, _ = synthesise(range(12), SyntheticImageConfig(size=32, seed=1))
    assert not torch.equal(a, other)
    assert a.float().std(dim=(2, 3)).min() > 3          # textured, never flat


def test_every_factor_value_occurs():
    cfg = SyntheticImageConfig(size=16)
    _, factors = synthesise(range(400), cfg)
    names = factor_names(cfg)
    assert list(factors) == list(FACTORS) and names["shape"] == list(SHAPES)
    for key in FACTORS:
        assert factors[key].dtype == torch.int64
        counts = torch.bincount(factors[key], minlength=len(names[key]))
        assert len(counts) == len(names[key]) and counts.min() > 0, key


def test_orientation_label_changes_under_horizontal_flip():
    """flip(image with orientation k) == image with orientation flip_orientation(k); only
    the two vertical bins map to themselves, and the other bins really look different."""
    cfg = SyntheticImageConfig(size=48, grid=3)
    n = cfg.n_orientations
    k = torch.arange(n).repeat(len(SHAPES))
    shape = torch.arange(len(SHAPES)).repeat_interleave(n)
    base = {"shape": shape, "colour": torch.zeros_like(k), "position": torch.full_like(k, 4),
            "size": torch.full_like(k, 2)}
    masks = coverage({**base, "orientation": k}, cfg)
    flipped_k = flip_orientation(k, n)
    mirrored = coverage({**base, "orientation": flipped_k}, cfg)
    assert torch.allclose(masks.flip(-1), mirrored, atol=1e-4)
    symmetric = flipped_k == k
    assert sorted(set(k[symmetric].tolist())) == [n // 4, 3 * n // 4]
    diff = (masks - mirrored).abs().sum(dim=(1, 2))
    assert diff[~symmetric].min() > 3.0                  # pixels of coverage that move
    shifted = coverage({**base, "position": torch.full_like(k, 3), "orientation": k}, cfg)
    assert torch.allclose(shifted.flip(-1), coverage({**base, "position": torch.full_like(k, 5),
                                                      "orientation": flipped_k}, cfg), atol=1e-4)


def test_shapes_have_the_requested_colour_at_equal_luma():
    cfg = SyntheticImageConfig(size=48, noise=0.0)
    images, factors = synthesise(range(60), cfg)
    full = coverage(sample_factors(torch.arange(60), cfg), cfg) > 0.999
    colours = palette(cfg)
    for i in range(60):
        inside = images[i][:, full[i]].float() / 255
        assert inside.shape[1] >= 3
        assert torch.allclose(inside.mean(1), colours[factors["colour"][i]], atol=1 / 255)
    luma = colours @ torch.tensor([0.2989, 0.587, 0.114])
    assert torch.allclose(luma, torch.full_like(luma, cfg.luma), atol=1e-5)
    hsv = rgb_to_hsv(colours.view(6, 3, 1, 1)).view(6, 3)
    assert torch.allclose(hsv[:, 0], torch.arange(6) / 6, atol=1e-4) and hsv[:, 1].min() > 0.6
    assert factor_names(cfg)["colour"] == ["red", "yellow", "green", "cyan", "blue", "magenta"]


def test_dataset_follows_the_image_dataset_contract():
    data = read_synthetic(None, n_images="30", size="24", seed="2", label="colour")
    assert isinstance(data, ImageDataset) and len(data) == 30 and data.num_classes == 6
    image, label = data[5]
    assert image.dtype == torch.uint8 and image.shape == (3, 24, 24)
    record = data.records[5]
    assert record.path is None and label == record.meta["colour"] and set(FACTORS) <= set(record.meta)
    images, factors = synthesise(range(30), SyntheticImageConfig(n_images=30, size=24, seed=2))
    assert torch.equal(data.images(), images) and torch.equal(image, images[5])
    assert np.array_equal(data.labels, factors["colour"].numpy())
    assert np.array_equal(data.factor_labels()["shape"], factors["shape"].numpy())
    sub = data.subset([3, 4])
    assert torch.equal(sub.load(1), images[4])
    test = SyntheticImages(SyntheticImageConfig(n_images=5, size=24, seed=2, offset=30), label="color")
    assert [r.meta["index"] for r in test.records] == list(range(30, 35))
    with pytest.raises(ValueError, match="label must be one of"):
        SyntheticImages(SyntheticImageConfig(n_images=2), label="texture")
    with pytest.raises(ConfigError, match="shapes"):
        SyntheticImageConfig(shapes=["hexagon"])


def test_write_synthetic_round_trip(tmp_path):
    cfg = SyntheticImageConfig(n_images=12, size=20, seed=3)
    out = write_synthetic(tmp_path / "synth", cfg, label="shape")
    images, factors = synthesise(range(12), cfg)
    with open(out / "factors.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and list(rows[0]) == ["index", "path", *FACTORS]
    for row in rows:
        i = int(row["index"])
        assert row["path"].split("/")[0] == SHAPES[int(factors["shape"][i])]
        assert torch.equal(decode_image(out / row["path"]), images[i])
        assert all(int(row[k]) == int(factors[k][i]) for k in FACTORS)
    folders = {p.name for p in out.iterdir() if p.is_dir()}
    assert folders <= set(SHAPES) and len(list(out.rglob("*.png"))) == 12
