"""AudioModality and AudioDataConfig: crops, views, front-end fitting, state, monitor data."""
from pathlib import Path

import pytest
import torch

from aiaudio.data import RandomCrops, open_dataset
from aiaudio.frontend import Frontend
from aiaudio.modality import AudioDataConfig, AudioModality, make_audio_modality
from core import build_encoder
from core.config import ConfigError, from_dict, to_dict
from core.engine.config import PretrainConfig, load_config
from core.config import load_yaml
from core.fileio import safe_load

REPO = Path(__file__).resolve().parents[1]
SR = 16000
SPEC = "synthetic?n_clips=12&seconds=1.5"
FRONTEND = {"n_mels": 32, "top_db": None}
ALL_AUGS = ["pitch_shift", "fade_in", "fade_out", "noise", "time_mask", "time_shift", "time_stretch"]


def data(**overrides) -> dict:
    base = {"dataset": SPEC, "seconds": 1.0, "fit_clips": 6, "frontend": dict(FRONTEND)}
    base.update(overrides)
    return base


def modality(seed: int = 0, **overrides) -> AudioModality:
    return AudioModality(from_dict(AudioDataConfig, data(**overrides), "data"), seed=seed)


def ready(seed: int = 0, **overrides) -> AudioModality:
    m = modality(seed, **overrides)
    m.setup(torch.device("cpu"))
    return m


def waves(m: AudioModality, n: int = 4) -> torch.Tensor:
    ds = m.train_dataset()
    return torch.stack([ds[i]["input"] for i in range(n)])


def augment_with_p(p: float, fade_fraction: float = 0.25) -> dict:
    section = {name: {"p": p} for name in ALL_AUGS}
    section["fade_in"]["max_fraction"] = fade_fraction
    section["fade_out"]["max_fraction"] = fade_fraction
    return section


# ---------------------------------------------------------------------------- config
def test_pretrain_yaml_documents_the_defaults():
    path = REPO / "aiaudio" / "configs" / "pretrain.yaml"
    config = load_config(path)
    assert isinstance(config, PretrainConfig)
    parsed = from_dict(AudioDataConfig, config.data, "data")
    assert parsed == AudioDataConfig()
    assert set(config.data) == set(to_dict(AudioDataConfig()))  # every data key written out
    assert from_dict(AudioDataConfig, to_dict(parsed), "data") == parsed
    # The file writes out every key of every section (so it documents all of them).
    expected = to_dict(PretrainConfig(data=to_dict(AudioDataConfig())))

    def same_keys(written, wanted, where):
        if not isinstance(wanted, dict) or (where.endswith(".kwargs") and not wanted):
            return
        assert set(written) == set(wanted), where
        for key in wanted:
            same_keys(written[key], wanted[key], f"{where}.{key}")

    same_keys(load_yaml(path), expected, "pretrain.yaml")


def test_unknown_data_key_is_named():
    with pytest.raises(ConfigError, match=r"data: unknown key 'secnds'"):
        from_dict(AudioDataConfig, {"secnds": 2.0}, "data")
    with pytest.raises(ConfigError, match=r"data\.augment\.noise: unknown key 'snr'"):
        from_dict(AudioDataConfig, {"augment": {"noise": {"snr": 3}}}, "data")


@pytest.mark.parametrize("section, message", [
    ({"seconds": 0.0}, r"data\.seconds must be > 0"),
    ({"sample_rate": 22050}, r"data\.frontend\.sample_rate \(16000\) must equal data\.sample_rate \(22050\)"),
    ({"augment": {"backend": "audiomentations"}}, r"data\.augment\.backend .* disagrees with data\.backend"),
    ({"space": ["pitch_shift", "reverb"]}, r"data\.space: unknown entry 'reverb'"),
    ({"space": ["frequency", "time"], "min_active": 3}, r"min_active"),
    ({"monitor_test_fraction": 1.0}, r"data\.monitor_test_fraction"),
])
def test_bad_data_values_are_named(section, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(AudioDataConfig, section, "data")


@pytest.mark.parametrize("spec", ["nosuchset:/x", "esc50:/does/not/exist", "synthetic?n_clips=0"])
def test_dataset_that_fails_to_open_names_the_spec(spec):
    with pytest.raises(ConfigError) as err:
        modality(dataset=spec)
    assert "data.dataset" in str(err.value) and spec in str(err.value)


def test_make_audio_modality_uses_data_section_and_seed():
    config = load_config(None, ["seed=3", f"data.dataset={SPEC}", "data.seconds=1.0", "data.frontend.n_mels=32"])
    m = make_audio_modality(config)
    assert m.seed == 3 and m.crops.seed == 3 and m.config.frontend.n_mels == 32
    assert m.space.dim == 7 and len(m.space.descriptors) == 120
    bad = load_config(None, ["data.sconds=1.0"])
    with pytest.raises(ConfigError, match=r"data: unknown key 'sconds'"):
        make_audio_modality(bad)


# ----------------------------------------------------------------------- data
def test_train_dataset_items_and_epochs():
    m = modality(dataset="synthetic?n_clips=4&seconds=2")
    ds = m.train_dataset()
    item = ds[1]
    assert set(item) == {"input", "skipped"} and item["skipped"] == 0
    assert item["input"].shape == (SR,) and item["input"].dtype == torch.float32
    assert torch.equal(ds[1]["input"], item["input"])  # deterministic
    ds.set_epoch(1)
    assert not torch.equal(ds[1]["input"], item["input"])  # 1 s crops of 2 s clips move per epoch
    ds.set_epoch(0)
    assert torch.equal(ds[1]["input"], item["input"])


def test_views_shapes_device_and_encoder_forward():
    m = ready()
    x = waves(m)
    g = torch.Generator().manual_seed(0)
    v1, v2 = m.views(x, m.space.sample(g), g)
    frames = 1 + SR // 512
    assert v1.shape == v2.shape == (4, 1, 32, frames) and v1.dtype == torch.float32
    assert m.encode_input(x).shape == (4, 1, 32, frames)
    name, kwargs = m.default_encoder()
    assert (name, kwargs) == ("hyper_resnet18", {"in_chans": 1})
    encoder = build_encoder(name, m.space, **kwargs, width=8)
    assert encoder(v1, m.space.ones()).shape == (4, encoder.num_features)


def test_views_need_setup():
    m = modality()
    with pytest.raises(RuntimeError, match="setup"):
        m.views(torch.zeros(2, SR), m.space.ones(), torch.Generator())


def test_views_with_p_zero_equal_clean_input():
    m = ready(augment=augment_with_p(0.0))
    x = waves(m)
    clean = m.encode_input(x)
    v1, v2 = m.views(x, m.space.ones(), torch.Generator().manual_seed(1))
    assert torch.allclose(v1, clean, atol=1e-5) and torch.allclose(v2, clean, atol=1e-5)


def test_only_descriptor_bits_are_applied():
    # Every augmentation fires with p=1 when allowed; the descriptor allows only the fades
    # (each at most a quarter of the clip), so the middle frames must stay as they were.
    m = ready(augment=augment_with_p(1.0, fade_fraction=0.25))
    x = waves(m)
    clean = m.encode_input(x)
    d = m.space.from_active(["fade_in", "fade_out"])
    v1, v2 = m.views(x, d, torch.Generator().manual_seed(2))
    frames = clean.shape[-1]
    middle = slice(frames // 4 + 2, frames - frames // 4 - 2)
    for view in (v1, v2):
        assert torch.allclose(view[..., middle], clean[..., middle], atol=1e-4)
        assert (view[..., :2] - clean[..., :2]).abs().amax() > 0.1   # faded in
        assert (view[..., -2:] - clean[..., -2:]).abs().amax() > 0.1  # faded out
    assert not torch.allclose(v1, v2)  # independent parameters per view
    # With the time group on, the middle changes too.
    w1, _ = m.views(x, m.space.from_active(["time_shift", "time_stretch"]), torch.Generator().manual_seed(2))
    assert (w1[..., middle] - clean[..., middle]).abs().amax() > 0.1


def test_views_deterministic_given_generator_seed():
    m = ready()
    x = waves(m)
    d = m.space.ones()
    a = m.views(x, d, torch.Generator().manual_seed(7))
    b = m.views(x, d, torch.Generator().manual_seed(7))
    c = m.views(x, d, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.allclose(a[0], c[0])


def test_reference_backend_makes_views_too():
    m = ready(backend="audiomentations", augment={"backend": "audiomentations", **augment_with_p(0.0)})
    x = waves(m, 2)
    v1, _ = m.views(x, m.space.ones(), torch.Generator().manual_seed(0))
    assert torch.allclose(v1, m.encode_input(x), atol=1e-5)


# ---------------------------------------------------------------- front end / state
def test_frontend_fit_is_deterministic_and_uses_first_epoch0_crops():
    a, b = modality(), modality()
    b.train_dataset().set_epoch(5)  # the engine may have moved the training set on
    a.setup(torch.device("cpu"))
    b.setup(torch.device("cpu"))
    assert a.state_dict() == b.state_dict()  # what every rank computes independently
    crops = RandomCrops(open_dataset(SPEC), 1.0, seed=0)
    manual = Frontend(a.config.frontend).fit([torch.stack([crops[i]["wave"] for i in range(6)])])
    assert torch.allclose(a.frontend.normaliser.mean, manual.normaliser.mean, atol=1e-5)
    assert torch.allclose(a.frontend.normaliser.std, manual.normaliser.std, atol=1e-5)
    assert a.state_dict() != ready(seed=1).state_dict()  # other crops, other statistics


def test_state_dict_round_trip_without_refit(tmp_path):
    source = ready()
    path = tmp_path / "state.pt"
    torch.save(source.state_dict(), path)
    state = safe_load(path, "modality state")  # weights_only loading
    restored = modality(seed=4, dataset="synthetic?n_clips=8&seconds=1&seed=9")  # a refit would differ
    restored.load_state_dict(state)
    restored.setup(torch.device("cpu"))
    assert restored.state_dict() == source.state_dict()
    x = waves(source)
    assert torch.equal(restored.encode_input(x), source.encode_input(x))


def test_load_state_dict_rejects_other_frontend_settings():
    state = ready().state_dict()
    other = modality(frontend={**FRONTEND, "n_mels": 64})
    with pytest.raises(ConfigError, match="n_mels"):
        other.load_state_dict(state)
    with pytest.raises(ConfigError, match="frontend"):
        other.load_state_dict({"wrong": 1})


def test_encoder_extra_rebuilds_the_input_pipeline():
    m = ready()
    extra = m.encoder_extra()
    assert extra["sample_rate"] == SR and extra["seconds"] == 1.0
    x = waves(m)
    assert torch.equal(Frontend.from_dict(extra["frontend"])(x), m.encode_input(x))
    with pytest.raises(RuntimeError, match="setup"):
        modality().encoder_extra()


# -------------------------------------------------------------------- monitor
def test_monitor_data_shapes_labels_and_split():
    assert ready().monitor_data() is None
    spec = "synthetic?n_clips=30&label=pitch&seed=1&seconds=1"
    m = ready(monitor=spec, monitor_clips=20, monitor_test_fraction=0.25)
    train_x, train_y, test_x, test_y = m.monitor_data()
    assert train_x.shape == (15, SR) and test_x.shape == (5, SR)
    assert train_y.dtype == test_y.dtype == torch.int64 and train_y.shape == (15,) and test_y.shape == (5,)
    dataset = open_dataset(spec)
    pitch = torch.as_tensor(dataset.labels)
    # Each monitor wave is one of the dataset's clips (same length: the crop is the clip).
    clips = torch.stack([torch.from_numpy(dataset.load(i)) for i in range(len(dataset))])
    matched = []
    for x, y in ((train_x, train_y), (test_x, test_y)):
        same = (x[:, None, :] == clips[None]).all(-1)
        assert bool(same.any(1).all())
        match = same.float().argmax(1)
        assert torch.equal(pitch[match], y)
        matched += match.tolist()
    assert len(set(matched)) == 20  # train and test hold different clips
    assert torch.equal(m.monitor_data()[0], train_x)  # cached, same every call
    again = ready(monitor=spec, monitor_clips=20, monitor_test_fraction=0.25).monitor_data()
    assert all(torch.equal(u, v) for u, v in zip(again, (train_x, train_y, test_x, test_y)))
    with pytest.raises(ConfigError, match=r"data\.monitor.*nosuch"):
        ready(monitor="nosuch:/x").monitor_data()


# ----------------------------------------------------------------- end to end
def test_pretrain_and_export_commands_on_tiny_synthetic_config(tmp_path, capsys):
    from aiaudio.cli import main
    from core import load_encoder
    from core.encoders.serialise import read_encoder_file

    run_dir = tmp_path / "run"
    overrides = [f"run_dir={run_dir}", "train.steps=2", "train.batch_size=4", "train.num_workers=0",
                 "encoder.kwargs.width=8", "method.proj_hidden=32", "method.proj_out=16",
                 f"data.dataset={SPEC}", "data.seconds=1.0", "data.fit_clips=4", "data.frontend.n_mels=32",
                 "data.frontend.top_db=null"]
    config = str(REPO / "aiaudio" / "configs" / "pretrain.yaml")
    assert main(["pretrain", "--config", config, "--no-progress", *overrides]) == 0
    for name in ("config.yaml", "metrics.csv", "encoder.pt", "loss.png", "checkpoints/last.pt"):
        assert (run_dir / name).is_file(), name
    assert load_yaml(run_dir / "config.yaml")["data"]["frontend"]["n_mels"] == 32
    out = tmp_path / "exported.pt"
    assert main(["export", "--checkpoint", str(run_dir / "checkpoints" / "last.pt"), "--out", str(out)]) == 0
    encoder, extra = read_encoder_file(out)
    assert encoder.name == "hyper_resnet18" and list(encoder.space.names) == ALL_AUGS
    assert extra["sample_rate"] == SR and extra["seconds"] == 1.0
    # The exported front end is the one fitted in the run (first 4 crops of epoch 0).
    reference = ready(fit_clips=4)
    assert extra["frontend"] == reference.state_dict()["frontend"]
    x = waves(reference, 2)
    assert load_encoder(out)(Frontend.from_dict(extra["frontend"])(x), encoder.space.ones()).shape == (2, encoder.num_features)
    # A bad data key is reported by the CLI as a config error that names it.
    assert main(["pretrain", "--config", config, f"run_dir={tmp_path / 'bad'}", "data.secnds=1"]) == 2
    assert "unknown key 'secnds'" in capsys.readouterr().err
