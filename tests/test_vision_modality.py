"""The vision modality: config, fitted images, views, parameter hooks, and pre-training through
the engine (tiny Hyper-ResNet50 and Prompt-ViT, MoCo-v2 and v3, every named baseline)."""
from pathlib import Path

import pytest
import torch
from PIL import Image

from aivision.augment import VISION_AUGMENTATIONS
from aivision.baselines import BASELINES, baseline_overrides
from aivision.cli import main as aivision_main
from aivision.images import resize_center_crop
from aivision.modality import VisionDataConfig, make_vision_modality
from core import load_encoder
from core.config import ConfigError, from_dict, load_yaml, to_dict
from core.engine import PretrainConfig, load_config, pretrain
from core.engine.views import looc_params, method_inputs

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]
TINY = ["train.batch_size=8", "train.num_workers=0", "train.log_every=1", "train.checkpoint_every=2",
        "encoder.kwargs={width: 4}", "method.proj_hidden=32", "method.proj_out=16", "method.queue_size=64",
        "data.dataset=synthetic?n_images=32&size=32", "data.load_size=32", "data.augment.size=24"]
TINY_VIT = ["encoder.name=prompt_vit_small",
            "encoder.kwargs={img_size: 24, patch_size: 8, embed_dim: 32, depth: 2, num_heads: 2, num_prompts: 4}"]


def tiny_config(run_dir, *extra: str) -> PretrainConfig:
    return load_config(None, [f"run_dir={run_dir}", *TINY, *extra])


@pytest.fixture(scope="module")
def modality(tmp_path_factory):
    m = make_vision_modality(tiny_config(tmp_path_factory.mktemp("run")))
    m.setup(torch.device("cpu"))
    return m


def batch(modality, n=6):
    return torch.stack([modality.train_dataset()[i]["input"] for i in range(n)])


# --------------------------------------------------------------------------- config
def test_pretrain_yaml_documents_every_key_with_its_default():
    path = REPO / "aivision" / "configs" / "pretrain.yaml"
    config = load_config(path)
    assert from_dict(VisionDataConfig, config.data, "data") == VisionDataConfig()
    expected = to_dict(PretrainConfig(data=to_dict(VisionDataConfig())))

    def same_keys(written, wanted, where):
        if not isinstance(wanted, dict) or (where.endswith(".kwargs") and not wanted):
            return
        assert set(written) == set(wanted), where
        for key in wanted:
            same_keys(written[key], wanted[key], f"{where}.{key}")

    same_keys(load_yaml(path), expected, "pretrain.yaml")


@pytest.mark.parametrize("extra, message", [
    (["data.space=[spatial, colour]"], "data.space: unknown entry 'colour'"),
    (["data.dataset=cub200:/nowhere"], r"data.dataset: cannot open dataset 'cub200:/nowhere'"),
    (["data.load_size=4"], "data.load_size must be >= 8"),
    (["data.augment.crop.min_scale=2"], "min_scale"),
])
def test_bad_data_settings_are_named(extra, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        make_vision_modality(tiny_config(tmp_path, *extra))


# ---------------------------------------------------------------------------- data
def test_resize_center_crop_keeps_the_centre_square():
    image = torch.zeros(3, 40, 80, dtype=torch.uint8)
    image[:, :, 20:60] = 255  # the central 40 columns are white
    out = resize_center_crop(image, 20)
    assert out.shape == (3, 20, 20) and out.dtype == torch.uint8
    assert int(out[:, :, 1:-1].min()) == 255 and int(out.min()) > 200  # the centre square (edges antialiased)
    assert resize_center_crop(torch.rand(3, 10, 30), 10).shape == (3, 10, 10)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        resize_center_crop(torch.zeros(1, 8, 8), 4)


def test_train_items_are_fitted_uint8_squares(modality):
    item = modality.train_dataset()[3]
    assert item["input"].shape == (3, 32, 32) and item["input"].dtype == torch.uint8 and item["skipped"] == 0
    assert torch.equal(item["input"], modality.dataset.load(3))  # already 32 x 32: unchanged


def test_unreadable_image_is_named_or_skipped(tmp_path):
    root = tmp_path / "images"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (40, 30), (i * 100, 50, 50)).save(root / cls / f"{i}.png")
    (root / "a" / "0.png").write_bytes(b"not a png")
    config = tiny_config(tmp_path / "run", f"data.dataset=folder:{root}")
    data = make_vision_modality(config).train_dataset()
    with pytest.raises(Exception, match=r"0\.png"):
        data[0]
    skipping = make_vision_modality(tiny_config(tmp_path / "run", f"data.dataset=folder:{root}",
                                                "data.skip_bad=true")).train_dataset()
    item = skipping[0]
    assert item["skipped"] == 1 and item["input"].shape == (3, 32, 32)


# --------------------------------------------------------------------------- views
def test_views_shapes_and_encode_input(modality):
    x = batch(modality)
    v1, v2 = modality.views(x, modality.space.ones(), torch.Generator().manual_seed(0))
    assert v1.shape == v2.shape == (6, 3, 24, 24) and v1.dtype == torch.float32
    assert not torch.allclose(v1, v2)
    plain = modality.encode_input(x)
    assert plain.shape == (6, 3, 24, 24)
    torch.testing.assert_close(plain, modality.encode_input(x))


def test_descriptor_bits_switch_the_groups(modality):
    x = batch(modality)
    for active, on, off in ((["spatial"], {"crop", "flip"}, {"color_jitter", "grayscale", "blur", "solarize"}),
                            (["appearance"], {"color_jitter"}, {"crop", "flip"})):
        d = modality.space.from_active(active)
        params = modality.sample_params(x, d, torch.Generator().manual_seed(1))
        assert all(not bool(params[name]["applied"].any()) for name in off)
        assert all(bool(params[name]["applied"].any()) for name in on)
    d = modality.space.from_active(["appearance"])
    assert modality.entry_augmentations("spatial") == ("crop", "flip")
    assert modality.entry_augmentations("blur") == ("blur",)
    with pytest.raises(KeyError, match="neither a vision augmentation nor a group"):
        modality.entry_augmentations("rotation")
    assert set(modality.target_dims()) == set(VISION_AUGMENTATIONS)
    targets = modality.param_targets(modality.sample_params(x, d, torch.Generator().manual_seed(2)))
    assert torch.equal(targets["crop"], torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(6, 4))  # identity box


def test_looc_keys_share_the_groups_parameters_on_images(modality):
    x = batch(modality)
    query, key0, (spatial, appearance) = looc_params(modality, x, modality.space.ones(),
                                                     torch.Generator().manual_seed(4), ["spatial", "appearance"])
    for name in ("crop", "flip"):
        assert all(torch.equal(spatial[name][k], query[name][k]) for k in query[name])
    assert not torch.equal(spatial["color_jitter"]["brightness"], query["color_jitter"]["brightness"])
    assert torch.equal(appearance["color_jitter"]["brightness"], query["color_jitter"]["brightness"])
    assert not torch.equal(appearance["crop"]["top"], query["crop"]["top"]) or \
        not torch.equal(appearance["crop"]["height"], query["crop"]["height"])
    inputs = method_inputs("looc", modality, x, modality.space.ones(), torch.Generator().manual_seed(4),
                           ["spatial", "appearance"])
    assert len(inputs["keys"]) == 2 and inputs["keys"][0].shape == (6, 3, 24, 24)
    torch.testing.assert_close(inputs["view1"], modality.render(x, query), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- monitor and state
def test_monitor_data_and_state(tmp_path):
    config = tiny_config(tmp_path, "data.monitor=synthetic?n_images=20&size=32&seed=1&label=colour",
                         "data.monitor_images=10")
    m = make_vision_modality(config)
    train_x, train_y, test_x, test_y = m.monitor_data()
    assert train_x.shape == (5, 3, 32, 32) and test_x.shape == (5, 3, 32, 32) and train_x.dtype == torch.uint8
    assert train_y.dtype == torch.long and int(max(train_y.max(), test_y.max())) < 6
    extra = m.encoder_extra()
    assert extra == {"modality": "vision", "image_size": 24, "load_size": 32, "normalize": True,
                     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    m.load_state_dict(m.state_dict())
    other = make_vision_modality(tiny_config(tmp_path, "data.augment.size=16"))
    with pytest.raises(ConfigError, match=r"differs in \['image_size'\]"):
        other.load_state_dict(m.state_dict())


# -------------------------------------------------------------- through the engine
@pytest.mark.parametrize("encoder, method", [("hyper_resnet50", "moco_v2"), ("prompt_vit", "moco_v2"),
                                             ("prompt_vit", "moco_v3")])
def test_two_step_pretraining_of_tiny_encoders(encoder, method, tmp_path):
    extra = TINY_VIT if encoder == "prompt_vit" else []
    config = tiny_config(tmp_path, "train.steps=2", f"method.name={method}", *extra)
    result = pretrain(config, make_vision_modality(config), progress=False)
    assert result.steps == 2 and all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history)
    loaded = load_encoder(result.encoder_path)
    assert loaded.name == ("hyper_resnet50" if encoder == "hyper_resnet50" else "prompt_vit_small")
    assert list(loaded.space.names) == ["spatial", "appearance"]


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_vision_baseline_trains_two_steps(name, tmp_path):
    config = tiny_config(tmp_path, "train.steps=2", *baseline_overrides(name))
    result = pretrain(config, make_vision_modality(config), progress=False)
    assert result.steps == 2 and all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history)
    descriptors = {tuple(h["descriptor"]) for h in result.history}
    expected = {"moco_appearance": {(0.0, 1.0)}, "moco_spatial": {(1.0, 0.0)}}.get(name)
    if expected is not None:
        assert descriptors == expected
    with pytest.raises(KeyError, match="unknown vision model"):
        baseline_overrides("simsiam")


def test_pretrain_export_and_resume_through_the_cli(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["pretrain", "--no-progress", *TINY, f"run_dir={run}", "train.steps=2", "train.stop_at=1"]
    assert aivision_main(args) == 0
    assert "stopped at step 1" in capsys.readouterr().out
    with pytest.warns(UserWarning, match=r"differs in \['train.stop_at'\]"):
        assert aivision_main(["pretrain", "--no-progress", "--resume", *TINY, f"run_dir={run}", "train.steps=2"]) == 0
    assert (run / "encoder.pt").is_file()
    assert aivision_main(["export", "--checkpoint", str(run / "checkpoints" / "last.pt"),
                          "--out", str(tmp_path / "enc.pt")]) == 0
    assert "extra keys ['image_size', 'load_size', 'mean', 'modality', 'normalize', 'std']" in capsys.readouterr().out
    assert aivision_main(["pretrain", "--no-progress", *TINY, f"run_dir={tmp_path / 'bad'}",
                          "data.space=[spatial, colour]"]) == 2
    assert "data.space: unknown entry 'colour'" in capsys.readouterr().err
