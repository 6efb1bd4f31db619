"""Validated configs: core.config.from_dict and the audio augmentation config."""
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from aiaudio.augment.config import AugmentConfig
from aiaudio.augment.sampling import sample_params
from aiaudio.space import AUDIO_AUGMENTATIONS
from core.config import ConfigError, from_dict, load_yaml

DEFAULT_YAML = Path(__file__).resolve().parents[1] / "aiaudio" / "configs" / "augment.yaml"


@dataclass
class Inner:
    rate: float = 1.0
    names: list[str] = field(default_factory=list)


@dataclass
class Outer:
    steps: int = 10
    inner: Inner = field(default_factory=Inner)
    tag: str | None = None


def test_from_dict_fills_defaults_and_coerces():
    cfg = from_dict(Outer, {"steps": 3, "inner": {"rate": 2, "names": ["a"]}})
    assert cfg == Outer(steps=3, inner=Inner(rate=2.0, names=["a"]))
    assert isinstance(cfg.inner.rate, float)
    assert from_dict(Outer, None) == Outer()


def test_unknown_key_names_key_place_and_allowed():
    with pytest.raises(ConfigError, match=r"run\.yaml\.inner: unknown key 'rat'.*allowed: names, rate"):
        from_dict(Outer, {"inner": {"rat": 1}}, "run.yaml")


@pytest.mark.parametrize("data, where", [({"steps": "ten"}, "steps"), ({"steps": True}, "steps"),
                                         ({"inner": {"names": "a"}}, "inner.names"), ({"inner": 3}, "inner")])
def test_wrong_types_name_the_key(data, where):
    with pytest.raises(ConfigError, match=rf"config\.{where}"):
        from_dict(Outer, data)


def test_load_yaml_errors_name_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_yaml(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(ConfigError, match="list.yaml: expected a mapping"):
        load_yaml(listy)


def test_shipped_yaml_equals_defaults():
    assert AugmentConfig.from_yaml(DEFAULT_YAML) == AugmentConfig()


def test_augment_config_section_and_errors(tmp_path):
    f = tmp_path / "aug.yaml"
    f.write_text("augment:\n  backend: audiomentations\n  noise: {min_snr_db: 10}\n")
    cfg = AugmentConfig.from_yaml(f)
    assert cfg.backend == "audiomentations" and cfg.noise.min_snr_db == 10.0 and cfg.noise.max_snr_db == 30.0
    f.write_text("noise: {snr: 10}\n")
    with pytest.raises(ConfigError, match=r"aug\.yaml\.noise: unknown key 'snr'"):
        AugmentConfig.from_yaml(f)
    with pytest.raises(ConfigError, match="backend"):
        AugmentConfig.from_dict({"backend": "sox"})
    with pytest.raises(ConfigError, match=r"p must be in \[0, 1\]"):
        AugmentConfig.from_dict({"time_mask": {"p": 1.5}})
    with pytest.raises(ConfigError, match="not one of"):
        AugmentConfig.from_dict({"fade_in": {"shapes": ["cosine"]}})
    with pytest.raises(ConfigError, match="min_rate"):
        AugmentConfig.from_dict({"time_stretch": {"min_rate": 0.0}})


def test_sample_params_ranges_probability_and_determinism():
    cfg = AugmentConfig.from_dict({"time_shift": {"p": 0.5}})
    active = torch.ones(4000, 7, dtype=torch.bool)
    active[:, AUDIO_AUGMENTATIONS.index("noise")] = False
    p = sample_params(cfg, active, torch.Generator().manual_seed(1))
    assert set(p) == set(AUDIO_AUGMENTATIONS)
    assert not p["noise"]["applied"].any()
    assert abs(p["time_shift"]["applied"].float().mean().item() - 0.5) < 0.03
    assert abs(p["pitch_shift"]["applied"].float().mean().item() - 0.8) < 0.03
    assert p["pitch_shift"]["semitones"].abs().max() <= 15 and p["pitch_shift"]["semitones"].std() > 7
    assert (p["time_mask"]["fraction"] <= 0.125).all()
    assert (p["time_mask"]["start"] + p["time_mask"]["fraction"] <= 1.0 + 1e-6).all()
    rate = p["time_stretch"]["rate"]
    assert rate.min() >= 0.5 and rate.max() <= 1.5
    assert set(p["fade_in"]["shape"].tolist()) == {0, 1, 2}
    again = sample_params(cfg, active, torch.Generator().manual_seed(1))
    for name in p:
        for key in p[name]:
            assert torch.equal(p[name][key], again[name][key])
    with pytest.raises(ValueError, match=r"\(B, 7\)"):
        sample_params(cfg, torch.ones(3, 5, dtype=torch.bool), torch.Generator())
