"""save_encoder / load_encoder and the atomic writer behind them, and the checks a file
passes before its encoder is built (meta-device shapes, finite weights, named errors)."""
import os
import re

import pytest
import torch

from core import InvarianceSpace, load_encoder, save_encoder
from core.encoders.serialise import EncoderFileError
from core.errors import UserError
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


# ------------------------------------------------------- checks before anything is built

SIZE_OPTION = {"prompt_vit_small": "embed_dim", "prompt_vit_base": "embed_dim"}  # the others: width


def edited(path, out, edit):
    """A copy of the encoder file ``path`` with its payload changed by ``edit(data)``."""
    data = torch.load(path, weights_only=True)
    edit(data)
    torch.save(data, out)
    return out


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_encoder_builds_on_the_meta_device(name, audio_space):
    with torch.device("meta"):
        meta = tiny_encoder(name, audio_space)
    real = tiny_encoder(name, audio_space)
    assert all(v.is_meta for v in meta.state_dict().values())
    assert {k: v.shape for k, v in meta.state_dict().items()} == {k: v.shape for k, v in real.state_dict().items()}


@pytest.mark.parametrize("name", sorted(TINY))
def test_config_that_disagrees_with_the_weights_names_tensor_and_shapes(name, audio_space, tmp_path):
    path = save_encoder(tiny_encoder(name, audio_space), tmp_path / "enc.pt")
    option = SIZE_OPTION.get(name, "width")
    bad = edited(path, tmp_path / "edited.pt", lambda d: d["config"].update({option: 2 * d["config"][option]}))
    with pytest.raises(EncoderFileError, match=r"edited\.pt: weights do not fit .*tensor '[\w.]+' should have shape "
                                               r"\[.*\] but the file stores \[.*\]"):
        load_encoder(bad)


@pytest.mark.parametrize(("name", "option"), [("prompt_vit_small", "depth"), ("looc_resnet18", "branches")])
def test_config_asking_for_many_more_layers_stops_the_meta_build(name, option, audio_space, tmp_path):
    path = save_encoder(tiny_encoder(name, audio_space), tmp_path / "enc.pt")
    bad = edited(path, tmp_path / "deep.pt", lambda d: d["config"].update({option: 2000}))
    with pytest.raises(EncoderFileError, match=rf"deep\.pt: its config {name}\(.*{option}=2000.*\) describes a model "
                                               r"far larger than the \d+ tensors the file stores"):
        load_encoder(bad)


@pytest.mark.parametrize("name", sorted(TINY))
def test_non_finite_weights_are_refused_naming_the_tensor(name, audio_space, tmp_path):
    path = save_encoder(tiny_encoder(name, audio_space), tmp_path / "enc.pt")
    state = torch.load(path, weights_only=True)["state_dict"]
    key = [k for k, v in state.items() if v.is_floating_point()][-1]
    for value in (float("nan"), float("-inf")):
        bad = edited(path, tmp_path / "bad.pt", lambda d: d["state_dict"][key].view(-1)[0].fill_(value))
        with pytest.raises(EncoderFileError, match=rf"bad\.pt: tensor '{re.escape(key)}' holds 1 NaN or infinite"):
            load_encoder(bad)


def _corruptions(path, tmp_path):
    """(file, what the message must say) for every kind of damaged or foreign file."""
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:4000])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x02not a torch file" * 100)
    torch.save({"model": {"w": torch.zeros(1)}}, tmp_path / "foreign.pt")
    directory = tmp_path / "run_dir"
    directory.mkdir()
    cases = [(truncated, "corrupt or not a torch file"), (garbage, "corrupt or not a torch file"),
             (tmp_path / "foreign.pt", "not an encoder file"), (directory, "is a directory"),
             (tmp_path / "missing.pt", "does not exist")]
    edits = {
        "no_state.pt": (lambda d: d.pop("state_dict"), r"lacks keys \['state_dict'\]"),
        "unknown.pt": (lambda d: d.update(encoder="resnet9000"), "unknown architecture 'resnet9000'"),
        "bad_space.pt": (lambda d: d.update(space={"names": []}), "space record is malformed"),
        "text_width.pt": (lambda d: d["config"].update(width="wide"), "does not build"),
        "pretrained.pt": (lambda d: d["config"].update(pretrained="/elsewhere/vit.pth"), "'pretrained'"),
        "not_tensor.pt": (lambda d: d["state_dict"].update({"conv1.weight": [1.0, 2.0]}), "'conv1.weight' is a list"),
        "extra_key.pt": (lambda d: d["state_dict"].update(stray=torch.zeros(1)), "stores tensor 'stray'"),
    }
    for file, (edit, message) in edits.items():
        cases.append((edited(path, tmp_path / file, edit), message))
    return cases


def test_every_corruption_is_a_user_error_naming_the_file(audio_space, tmp_path):
    path = save_encoder(tiny_encoder("hyper_resnet18", audio_space), tmp_path / "enc.pt")
    for file, message in _corruptions(path, tmp_path):
        with pytest.raises(UserError) as caught:
            load_encoder(file)
        assert str(file) in str(caught.value) and re.search(message, str(caught.value)), (file, caught.value)
        assert "\n" not in str(caught.value)
    with pytest.raises(EncoderFileError, match=r"enc\.pt was trained for the space"):
        load_encoder(path, space=InvarianceSpace(["spatial", "appearance"]))
