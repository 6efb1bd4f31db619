"""Vision augmentation policy: descriptor bits, parameters, pixels, backends, targets, points."""
import math

import pytest
import torch
import torch.nn.functional as F

from aivision.augment import (VISION_AUGMENTATIONS, VisionAugmentConfig, VisionPolicy, sample_params, targets,
                              transform_points)
from aivision.augment.color import adjust_hue, hsv_to_rgb, rgb_to_hsv
from aivision.augment.config import IMAGENET_MEAN, IMAGENET_STD
from aivision.augment.ops import gaussian_blur
from aivision.augment.sampling import JITTER_ORDERS
from aivision.space import GROUPS, INDIVIDUAL, group_space, individual_space
from core.config import ConfigError
from core.invariance import InvarianceSpace

pytestmark = pytest.mark.usefixtures("one_thread")

ALL_ON = {name: 1.0 for name in VISION_AUGMENTATIONS}


def config(size: int = 32, p: dict[str, float] | None = None, **extra) -> VisionAugmentConfig:
    data = {"size": size, "normalize": False, **extra}
    for name, value in (p or {}).items():
        data.setdefault(name, {})["p"] = value
    return VisionAugmentConfig.from_dict(data)


def smooth(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Smooth colourful images (bicubic-upsampled 6x6 noise), ``(n, 3, h, w)`` in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 6, 6, generator=g)
    return F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_params_have_every_augmentation_with_batch_shapes():
    act = torch.ones(5, len(VISION_AUGMENTATIONS), dtype=torch.bool)
    p = sample_params(VisionAugmentConfig(), act, gen(0), image_size=(40, 50))
    assert list(p) == list(VISION_AUGMENTATIONS)
    assert set(p["crop"]) == {"top", "left", "height", "width", "applied"}
    assert set(p["color_jitter"]) == {"brightness", "contrast", "saturation", "hue", "order", "applied"}
    assert set(p["blur"]) == {"sigma", "applied"} and set(p["flip"]) == {"applied"}
    for values in p.values():
        for value in values.values():
            assert value.shape == (5,)
        assert values["applied"].dtype == torch.bool


def test_active_maps_groups_and_individual_entries():
    pol = VisionPolicy(group_space(), config())
    act = pol.active(torch.tensor([1.0, 0.0]), 3)
    assert act.shape == (3, 6) and act[0].tolist() == [True, True, False, False, False, False]
    assert pol.active(torch.tensor([0.4, 0.6]), 1)[0].tolist() == [False, False, True, True, True, True]
    ind = VisionPolicy(individual_space(), config())
    assert ind.active(torch.tensor([1.0, 0, 1, 0, 1]), 1)[0].tolist() == [True, False, True, False, True, False]
    with pytest.raises(ValueError, match="neither a vision augmentation nor a group"):
        VisionPolicy(InvarianceSpace(["crop", "rotate"]), config())
    assert GROUPS == ("spatial", "appearance") and INDIVIDUAL == VISION_AUGMENTATIONS[:5]


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="colour_jitter"):
        VisionAugmentConfig.from_dict({"colour_jitter": {}})
    with pytest.raises(ConfigError, match="blur.p"):
        VisionAugmentConfig.from_dict({"blur": {"p": 1.5}})
    with pytest.raises(ConfigError, match="hue"):
        VisionAugmentConfig.from_dict({"color_jitter": {"hue": 0.7}})
    path = tmp_path / "aug.yaml"
    path.write_text("augment:\n  size: 96\n  solarize: {p: 0.0}\n  backend: torchvision\n")
    cfg = VisionAugmentConfig.from_yaml(path)
    assert (cfg.size, cfg.solarize.p, cfg.backend) == (96, 0.0, "torchvision")


@pytest.mark.parametrize("descriptor", [[1.0, 0.0], [0.0, 1.0]])
def test_a_zero_bit_never_fires(descriptor):
    pol = VisionPolicy(group_space(), config(p=ALL_ON))
    _, _, p1, p2 = pol.views(smooth(48, 32, 32), torch.tensor(descriptor), gen(1), return_params=True)
    for p in (p1, p2):
        for name in VISION_AUGMENTATIONS:
            on = descriptor[0] if name in ("crop", "flip") else descriptor[1]
            assert bool(p[name]["applied"].all()) == bool(on) and bool(p[name]["applied"].any()) == bool(on)


def test_appearance_off_keeps_colours_exactly():
    colour = torch.tensor([0.8, 0.3, 0.1])
    x = colour.view(1, 3, 1, 1).expand(6, 3, 40, 40).contiguous()
    pol = VisionPolicy(group_space(), config(p=ALL_ON))
    spatial = pol.augment(x, torch.tensor([1.0, 0.0]), gen(2))
    # Resampling a constant image: weights summing to 1 in float32, 1.2e-7 (2 ulp) observed;
    # 1e-5 leaves ~100x for other kernels and is far below a colour change (> 0.05).
    assert torch.allclose(spatial, colour.view(1, 3, 1, 1).expand_as(spatial), atol=1e-5)
    both = pol.augment(x, torch.tensor([1.0, 1.0]), gen(2))
    assert (both - colour.view(1, 3, 1, 1)).abs().amax(dim=(1, 2, 3)).min() > 0.05


def test_spatial_off_keeps_geometry():
    """Appearance ops are per-pixel functions of the value, so a two-level image keeps its
    partition into foreground and background exactly."""
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[4:20, 6:12] = True
    mask[14:18, 12:28] = True                       # an asymmetric 'L'
    x = torch.where(mask, 0.7, 0.2).expand(8, 3, 32, 32).contiguous()
    pol = VisionPolicy(group_space(), config(p={**ALL_ON, "blur": 0.0}))
    out, p = pol.augment(x, torch.tensor([0.0, 1.0]), gen(3), return_params=True)
    assert not p["crop"]["applied"].any() and not p["flip"]["applied"].any()
    for view in out:
        fg, bg = view[:, mask], view[:, ~mask]
        assert torch.allclose(fg, fg[:, :1].expand_as(fg), atol=1e-5)
        assert torch.allclose(bg, bg[:, :1].expand_as(bg), atol=1e-5)
        assert (fg[:, 0] - bg[:, 0]).abs().max() > 0.02


@pytest.mark.parametrize("backend", ["batched", "torchvision"])
def test_same_seed_same_views(backend):
    pol = VisionPolicy(group_space(), config(), backend=backend)
    x = smooth(4, 36, 36)
    a1, a2 = pol.views(x, torch.tensor([1.0, 1.0]), gen(7))
    b1, b2 = pol.views(x, torch.tensor([1.0, 1.0]), gen(7))
    c1, _ = pol.views(x, torch.tensor([1.0, 1.0]), gen(8))
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, a2) and not torch.equal(a1, c1)
    assert a1.shape == (4, 3, 32, 32)


@pytest.mark.parametrize("backend", ["batched", "torchvision"])
def test_flip_mirrors_and_crop_off_keeps_size(backend):
    x = smooth(10, 32, 32)
    pol = VisionPolicy(InvarianceSpace(["flip", "grayscale"]), config(p={"flip": 0.5}), backend=backend)
    out, p = pol.augment(x, torch.tensor([1.0, 0.0]), gen(4), return_params=True)
    flipped = p["flip"]["applied"]
    assert 0 < int(flipped.sum()) < 10
    assert torch.allclose(out[flipped], x[flipped].flip(-1), atol=1e-6)
    assert torch.allclose(out[~flipped], x[~flipped], atol=1e-6)


def test_grayscale_and_solarize_on_pixels():
    x = smooth(4, 32, 32)
    gray = VisionPolicy(InvarianceSpace(["grayscale", "flip"]), config(p={"grayscale": 1.0}))
    out = gray.augment(x, torch.tensor([1.0, 0.0]), gen(0))
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])
    expected = (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])
    assert torch.allclose(out[:, 0], expected, atol=1e-5)
    sol = VisionPolicy(InvarianceSpace(["solarize", "flip"]), config(p={"solarize": 1.0}))
    out = sol.augment(x, torch.tensor([1.0, 0.0]), gen(0))
    assert torch.allclose(out, torch.where(x >= 0.5, 1 - x, x), atol=1e-6)
    assert (x >= 0.5).any() and (x < 0.5).any()


def test_blur_reduces_high_frequency_energy_monotonically():
    noise = torch.rand(1, 3, 48, 48, generator=gen(5)).expand(5, 3, 48, 48)
    sigmas = torch.tensor([0.1, 0.5, 1.0, 1.5, 2.0])
    out = gaussian_blur(noise, sigmas, 11)
    energy = ((out[..., 1:, :] - out[..., :-1, :]) ** 2).mean(dim=(1, 2, 3)) + \
        ((out[..., 1:] - out[..., :-1]) ** 2).mean(dim=(1, 2, 3))
    assert torch.all(energy[1:] < energy[:-1]), energy
    assert torch.allclose(out[0], noise[0], atol=1e-4)          # sigma 0.1: nearly the identity
    assert torch.allclose(out.mean(dim=(1, 2, 3)), noise.mean(dim=(1, 2, 3)), atol=0.01)


@pytest.mark.parametrize("image_size", [(60, 80), None])
def test_crop_boxes_inside_the_image_with_scale_and_ratio_in_range(image_size):
    act = torch.ones(800, 6, dtype=torch.bool)
    p = sample_params(VisionAugmentConfig(), act, gen(6), image_size=image_size)["crop"]
    h_px, w_px = image_size or (1, 1)
    top, left, height, width = (p[k].double() for k in ("top", "left", "height", "width"))
    assert top.min() >= 0 and left.min() >= 0 and height.min() > 0 and width.min() > 0
    assert (top + height).max() <= 1 + 1e-6 and (left + width).max() <= 1 + 1e-6
    area, ratio = height * width, (width * w_px) / (height * h_px)
    slack = 2.5 / min(h_px, w_px) if image_size else 1e-6       # whole-pixel rounding
    assert area.min() >= 0.2 - slack and area.max() <= 1.0 + 1e-6
    assert ratio.min() >= 0.75 * (1 - slack) - 1e-6 and ratio.max() <= 4 / 3 * (1 + slack) + 1e-6
    assert area.std() > 0.15 and top.std() > 0.05
    if image_size:
        for value, side in ((top, h_px), (height, h_px), (left, w_px), (width, w_px)):
            assert torch.allclose(value * side, torch.round(value * side), atol=1e-4)


def test_colour_and_blur_parameters_in_range():
    act = torch.ones(500, 6, dtype=torch.bool)
    p = sample_params(VisionAugmentConfig(), act, gen(9))
    cj = p["color_jitter"]
    for key in ("brightness", "contrast", "saturation"):
        assert cj[key].min() >= 0.6 and cj[key].max() <= 1.4 and cj[key].std() > 0.1
    assert cj["hue"].abs().max() <= 0.1 and cj["hue"].std() > 0.03
    assert cj["order"].min() >= 0 and cj["order"].max() < len(JITTER_ORDERS)
    assert len(set(cj["order"].tolist())) == 24
    assert p["blur"]["sigma"].min() >= 0.1 and p["blur"]["sigma"].max() <= 2.0
    for name, prob in (("crop", 1.0), ("flip", 0.5), ("color_jitter", 0.8), ("grayscale", 0.2),
                       ("blur", 0.5), ("solarize", 0.1)):
        assert abs(p[name]["applied"].float().mean().item() - prob) < 0.06
    fixed = sample_params(config(color_jitter={"random_order": False}), act[:20], gen(9))
    assert fixed["color_jitter"]["order"].eq(0).all()


def test_backends_agree_with_crop_on():
    """Same parameters, two implementations. The batched path samples the same points as
    torchvision's bilinear resize but without antialiasing; on smooth images that leaves a
    mean absolute difference ~1e-3 (tolerance 0.02 = 5 grey levels of 255)."""
    x = smooth(12, 44, 36)
    cfg = config(32, p={**ALL_ON, "flip": 0.5, "grayscale": 0.3, "blur": 0.5, "solarize": 0.3})
    batched = VisionPolicy(group_space(), cfg, backend="batched")
    reference = VisionPolicy(group_space(), cfg, backend="torchvision")
    vb, p = batched.augment(x, torch.tensor([1.0, 1.0]), gen(10), return_params=True)
    vt = reference.apply(x, p)
    assert vb.shape == vt.shape == (12, 3, 32, 32)
    assert (vb - vt).abs().mean() < 0.02
    normed = VisionPolicy(group_space(), config(32, normalize=True), backend="torchvision")
    vn, pn = VisionPolicy(group_space(), config(32, normalize=True)).augment(x, torch.ones(2), gen(1),
                                                                             return_params=True)
    assert (vn - normed.apply(x, pn)).abs().mean() < 0.1           # = 0.02 / std


def test_backends_agree_exactly_with_crop_off():
    x = smooth(12, 32, 32)
    cfg = config(32, p={**ALL_ON, "crop": 0.0, "flip": 0.5, "grayscale": 0.3, "blur": 0.5, "solarize": 0.0})
    vb, p = VisionPolicy(group_space(), cfg).augment(x, torch.ones(2), gen(11), return_params=True)
    vt = VisionPolicy(group_space(), cfg, backend="torchvision").apply(x, p)
    assert p["color_jitter"]["applied"].all() and p["blur"]["applied"].any()
    # Two float32 implementations (HSV divides by the chroma): 1.1e-6 apart on [0, 1] pixels;
    # 1e-3 leaves ~900x and is still well below a mismatched parameter (>= 1e-2).
    assert (vb - vt).abs().max() < 1e-3


@pytest.mark.parametrize("backend", ["batched", "torchvision"])
def test_views_have_the_output_size_for_any_input(backend):
    x = (smooth(3, 40, 56) * 255).round().to(torch.uint8)
    pol = VisionPolicy(group_space(), config(24), backend=backend)
    for d in ([0.0, 1.0], [1.0, 1.0], [0.0, 0.0]):
        assert pol.augment(x, torch.tensor(d), gen(0)).shape == (3, 3, 24, 24)
    assert pol.plain(x).shape == (3, 3, 24, 24)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        pol.augment(x[:, :1], torch.ones(2), gen(0))


def test_apply_is_deterministic_and_matches_augment():
    x = smooth(5, 40, 40)
    pol = VisionPolicy(group_space(), config())
    view, p = pol.augment(x, torch.ones(2), gen(12), return_params=True)
    assert torch.equal(pol.apply(x, p), view) and torch.equal(pol.apply(x, p), pol.apply(x, p))


def test_transform_points_match_drawn_dots():
    size, side = 48, 80
    img = torch.zeros(3, side, side)
    pixels = [(22, 25), (55, 33), (37, 60)]                        # (col, row) of the red, green, blue dot
    for c, (px, py) in enumerate(pixels):
        img[c, py - 1:py + 2, px - 1:px + 2] = 1.0
    x = img.expand(16, 3, side, side).contiguous()
    cfg = config(size, p={"flip": 0.5}, crop={"min_scale": 0.4})
    view, p = VisionPolicy(group_space(), cfg).augment(x, torch.tensor([1.0, 0.0]), gen(13), return_params=True)
    points = torch.tensor([[(px + 0.5) / side, (py + 0.5) / side] for px, py in pixels]).expand(16, 3, 2)
    moved = transform_points(points, p)
    centres = (torch.arange(size) + 0.5) / size
    checked = 0
    for b in range(16):
        for c in range(3):
            pred = moved[b, c]
            if not bool(((pred > 0.1) & (pred < 0.9)).all()):
                continue
            w = view[b, c]
            found = torch.stack([(w.sum(0) * centres).sum(), (w.sum(1) * centres).sum()]) / w.sum()
            assert torch.allclose(found, pred, atol=0.6 / size), (b, c, found, pred)
            checked += 1
    assert checked >= 20 and p["flip"]["applied"].any() and not p["flip"]["applied"].all()


def test_targets_encode_identity_when_not_applied():
    x = smooth(40, 32, 32)
    pol = VisionPolicy(InvarianceSpace(list(VISION_AUGMENTATIONS)), config())
    _, p = pol.augment(x, torch.tensor([1.0, 1, 1, 1, 1, 1]), gen(14), return_params=True)
    t = targets(p)
    assert {k: v.shape for k, v in t.items()} == {"crop": (40, 4), "flip": (40, 1), "color_jitter": (40, 4),
                                                  "grayscale": (40, 1), "blur": (40, 1), "solarize": (40, 1)}
    cj, blur = p["color_jitter"]["applied"], p["blur"]["applied"]
    assert cj.any() and not cj.all() and blur.any() and not blur.all()
    assert torch.equal(t["color_jitter"][~cj], torch.tensor([1.0, 1, 1, 0]).expand(int((~cj).sum()), 4))
    assert torch.allclose(t["color_jitter"][cj, 3], p["color_jitter"]["hue"][cj])
    assert torch.equal(t["blur"][~blur], torch.zeros(int((~blur).sum()), 1))
    assert torch.allclose(t["blur"][blur, 0], p["blur"]["sigma"][blur])
    assert torch.equal(t["flip"][:, 0], p["flip"]["applied"].float())
    assert torch.allclose(t["crop"][:, 2] * t["crop"][:, 3],
                          p["crop"]["height"] * p["crop"]["width"])
    _, off = pol.augment(x, torch.zeros(6), gen(14), return_params=True)
    t0 = targets(off)
    assert torch.equal(t0["crop"], torch.tensor([0.0, 0, 1, 1]).expand(40, 4))
    assert all(t0[k].abs().sum() == 0 for k in ("flip", "grayscale", "blur", "solarize"))
    assert math.isclose(float(t0["color_jitter"].sum()), 40 * 3.0)


def test_hsv_round_trip_and_fast_hue_agree():
    x = smooth(3, 16, 16, seed=4)
    # float32 HSV divides by the chroma (small on smooth images), amplifying rounding: 7.8e-7
    # observed on [0, 1] pixels; 1e-4 leaves ~130x, a wrong conversion is off by >= 1e-2.
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-4)
    shift = torch.tensor([-0.3, 0.05, 0.5])
    hsv = rgb_to_hsv(x)
    hsv[:, 0] = torch.remainder(hsv[:, 0] + shift.view(-1, 1, 1), 1.0)
    assert torch.allclose(adjust_hue(x, shift), hsv_to_rgb(hsv), atol=1e-4)
    grey = torch.full((1, 3, 4, 4), 0.4)
    assert torch.equal(adjust_hue(grey, torch.tensor([0.2])), grey)


def test_per_image_descriptors_and_plain_view():
    pol = VisionPolicy(group_space(), config(p=ALL_ON, normalize=True))
    x = smooth(4, 40, 40)
    d = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    _, p = pol.augment(x, d, gen(15), return_params=True)
    assert p["crop"]["applied"].tolist() == [True, False, True, False]
    assert p["color_jitter"]["applied"].tolist() == [False, True, True, False]
    plain = pol.plain(x)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    resized = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(plain * std + mean, resized, atol=1e-5)
    with pytest.raises(ValueError, match="batch has 3 images"):
        pol.augment(x[:3], d, gen(0))
