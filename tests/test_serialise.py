"""save_encoder / load_encoder and the atomic writer behind them."""
import os

import pytest
import torch

from core import InvarianceSpace, load_encoder, save_encoder
from core.fileio import atomic_save, safe_load
from tests.conftest import TINY, tiny_encoder


@pytest.mark.parametrize("name", sorted(TINY))
def test_round_trip_gives_identical_features(name, audio_space, tmp_path):
    enc = tiny_encoder(name, audio_space, seed=1).eval()
    path = save_encoder(enc, tmp_path / "enc.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["encoder"] == name and raw["space"]["names"] == list(audio_space.names)
    loaded = load_encoder(path, space=audio_space)
    assert type(loaded) is type(enc) and not loaded.training
    x = torch.randn(2, 3, 32, 32)
    d = audio_space.descriptors[9]
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, d), enc(x, d), atol=0, rtol=0)


def test_hyper_options_survive(audio_space, tmp_path):
    torch.manual_seed(0)
    from core import build_encoder

    enc = build_encoder("hyper_resnet18", audio_space, in_chans=1, width=8, embed_dim=4, hidden_dim=6, generator="full")
    loaded = load_encoder(save_encoder(enc, tmp_path / "e.pt"))
    assert loaded.config == enc.config
    assert loaded.layer1[0].conv1.generator.form == "full"


def test_other_space_is_rejected(audio_space, tmp_path):
    path = save_encoder(tiny_encoder("hyper_resnet18", audio_space), tmp_path / "enc.pt")
    other = InvarianceSpace(["spatial", "appearance"], min_active=1)
    with pytest.raises(ValueError, match=r"enc\.pt.*pitch_shift.*spatial"):
        load_encoder(path, space=other)


def test_missing_corrupt_and_foreign_files(audio_space, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_encoder(tmp_path / "nope.pt")
    path = save_encoder(tiny_encoder("resnet18", audio_space), tmp_path / "enc.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.pt.*corrupt"):
        load_encoder(truncated)
    foreign = tmp_path / "checkpoint.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "step": 3}, foreign)
    with pytest.raises(ValueError, match="checkpoint.pt is not an encoder file"):
        load_encoder(foreign)
    data = torch.load(path, weights_only=True)
    data["state_dict"].pop("net.conv1.weight")
    broken = tmp_path / "broken.pt"
    torch.save(data, broken)
    with pytest.raises(ValueError, match="broken.pt.*do not fit"):
        load_encoder(broken)


class _Explodes:
    """Pickling this raises, like a crash in the middle of torch.save."""

    def __reduce__(self):
        raise RuntimeError("disk went away")


def test_atomic_save_keeps_previous_file_on_failure(tmp_path):
    path = tmp_path / "ckpt.pt"
    atomic_save({"step": 1, "w": torch.ones(3)}, path)
    with pytest.raises(RuntimeError, match="disk went away"):
        atomic_save({"step": 2, "w": torch.zeros(3), "bad": _Explodes()}, path)
    assert safe_load(path, "checkpoint")["step"] == 1
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # no temporary file left behind
