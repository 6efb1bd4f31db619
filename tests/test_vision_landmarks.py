"""Landmark targets of a regression reader (300W layout) stay on their landmarks through the
downstream input pipeline (whole-image resize of a non-square image) and through the random
resized crop + flip of pre-training (``transform_points``)."""
import numpy as np
import pytest
import torch
from PIL import Image

from aivision.augment import VisionAugmentConfig, VisionPolicy, transform_points
from aivision.clips import ImageClips
from aivision.data import open_image_dataset
from aivision.space import group_space

pytestmark = pytest.mark.usefixtures("one_thread")
WIDTH, HEIGHT = 120, 80  # not square: a centre crop would move normalised coordinates
DOTS = [(20, 15), (70, 40), (100, 62)]  # (column, row) of the red, green and blue dot


@pytest.fixture
def faces(tmp_path):
    """One 300W image (indoor and outdoor each) with three coloured dots at landmarks 0..2."""
    for folder, stem in (("01_Indoor", "indoor"), ("02_Outdoor", "outdoor")):
        pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        for c, (col, row) in enumerate(DOTS):
            pixels[row - 2:row + 3, col - 2:col + 3, c] = 255
        path = tmp_path / "300W" / folder / f"{stem}_001.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        points = [(col + 0.5, row + 0.5) for col, row in DOTS] + [(60.0, 40.0)] * 65  # pixel centres
        body = "".join(f"{x:.3f} {y:.3f}\n" for x, y in points)
        path.with_suffix(".pts").write_text(f"version: 1\nn_points:  68\n{{\n{body}}}\n")
    return open_image_dataset(f"300w:{tmp_path / '300W'}?split=all")


def centroids(image: torch.Tensor) -> torch.Tensor:
    """Brightness-weighted centre ``(3, 2)`` of each colour channel, normalised (x, y)."""
    side_y, side_x = image.shape[-2:]
    ys, xs = (torch.arange(side_y) + 0.5) / side_y, (torch.arange(side_x) + 0.5) / side_x
    w = image.float()
    return torch.stack([(w.sum(1) * xs).sum(1), (w.sum(2) * ys).sum(1)], dim=1) / w.sum((1, 2)).unsqueeze(1)


def test_targets_are_normalised_landmarks(faces):
    targets = torch.from_numpy(faces.targets).view(len(faces), 68, 2)
    expected = torch.tensor([[(c + 0.5) / WIDTH, (r + 0.5) / HEIGHT] for c, r in DOTS])
    torch.testing.assert_close(targets[0, :3], expected)
    torch.testing.assert_close(centroids(faces.load(0)), expected, atol=0.5 / HEIGHT, rtol=0)


def test_downstream_resize_keeps_landmarks_on_their_dots(faces):
    clips = ImageClips(faces, image_size=48, normalize=False)
    x, _ = clips.pieces([0])
    assert x.shape == (1, 3, 48, 48)
    targets = clips.labels[0].view(68, 2)[:3]
    torch.testing.assert_close(centroids(x[0]), targets, atol=1.0 / 48, rtol=0)


def test_crop_and_flip_move_landmarks_with_the_pixels(faces):
    image = faces.load(0).float().div(255)
    n = 16
    x = image.expand(n, *image.shape).contiguous()
    config = VisionAugmentConfig.from_dict({"size": 64, "normalize": False, "flip": {"p": 0.5},
                                            "crop": {"min_scale": 0.5}})
    policy = VisionPolicy(group_space(), config)
    view, params = policy.augment(x, torch.tensor([1.0, 0.0]), torch.Generator().manual_seed(3), return_params=True)
    targets = torch.from_numpy(faces.targets[0]).view(68, 2)[:3]
    moved = transform_points(targets.expand(n, 3, 2), params)
    flipped = params["flip"]["applied"].bool()
    assert flipped.any() and not flipped.all()
    checked = 0
    for b in range(n):
        for c in range(3):
            if not bool(((moved[b, c] > 0.1) & (moved[b, c] < 0.9)).all()):
                continue  # the crop cut this dot away (or to the border)
            torch.testing.assert_close(centroids(view[b])[c], moved[b, c], atol=1.5 / 64, rtol=0)
            checked += 1
    assert checked >= n  # most dots stay inside the crops
