"""Encoder files with extras, encoders read from training checkpoints, and the export command."""
import argparse

import pytest
import torch

from core import load_encoder, save_encoder
from core.cli import run_cli
from core.encoders.serialise import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, read_encoder_file
from core.engine.cli import add_pretrain_commands
from core.fileio import atomic_save
from core.methods import MethodConfig, build_method
from tests.conftest import tiny_encoder

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread per module


EXTRA = {"frontend": {"config": {"n_mels": 32}, "mean": [0.5], "std": [2.0]}, "sample_rate": 16000,
         "stats": torch.arange(3.0)}


def features(encoder, seed=0):
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return encoder.eval()(x, encoder.space.descriptors[5])


def fake_checkpoint(method, space, path, extra=EXTRA, version=CHECKPOINT_VERSION):
    """A checkpoint with the engine's layout (only the fields the readers use are real)."""
    encoder = method.encoder
    payload = {"format": CHECKPOINT_FORMAT, "version": version, "step": 3, "epoch": 0, "batch_in_epoch": 3,
               "config": {}, "encoder_meta": {"encoder": encoder.name, "config": dict(encoder.config),
                                              "space": space.to_dict(), "extra": extra},
               "model": method.state_dict(), "optimizer": {}, "scheduler": {}, "scaler": {},
               "method_extra": {}, "modality": {}, "rng": {}}
    return atomic_save(payload, path)


def test_extra_round_trips_and_old_files_give_empty_extra(audio_space, tmp_path):
    enc = tiny_encoder("hyper_resnet18", audio_space, seed=2)
    path = save_encoder(enc, tmp_path / "enc.pt", extra=EXTRA)
    raw = torch.load(path, weights_only=True)
    assert raw["extra"]["sample_rate"] == 16000
    loaded, extra = read_encoder_file(path, space=audio_space)
    assert extra["frontend"] == EXTRA["frontend"] and torch.equal(extra["stats"], EXTRA["stats"])
    torch.testing.assert_close(features(loaded), features(enc), atol=0, rtol=0)
    del raw["extra"]  # a file written before extras existed
    torch.save(raw, tmp_path / "old.pt")
    assert read_encoder_file(tmp_path / "old.pt")[1] == {}
    assert read_encoder_file(save_encoder(enc, tmp_path / "none.pt"))[1] == {}


def test_extra_must_be_plain_data(audio_space, tmp_path):
    enc = tiny_encoder("resnet18", audio_space)
    with pytest.raises(TypeError, match=r"extra\.frontend\.fn holds a function"):
        save_encoder(enc, tmp_path / "e.pt", extra={"frontend": {"fn": features}})
    with pytest.raises(TypeError, match="keys must be strings"):
        save_encoder(enc, tmp_path / "e.pt", extra={1: "x"})
    assert not (tmp_path / "e.pt").exists()


def test_load_encoder_reads_training_checkpoints(audio_space, tmp_path):
    torch.manual_seed(0)
    method = build_method(tiny_encoder("hyper_resnet18", audio_space, seed=4),
                          MethodConfig(proj_hidden=16, proj_out=8), seed=0)
    path = fake_checkpoint(method, audio_space, tmp_path / "last.pt")
    loaded = load_encoder(path, space=audio_space)
    torch.testing.assert_close(features(loaded), features(method.encoder), atol=0, rtol=0)
    encoder, extra = read_encoder_file(path)
    assert extra["sample_rate"] == 16000 and not encoder.training
    assert not any(k.startswith("projector") for k in encoder.state_dict())


def test_checkpoint_errors_name_the_file(audio_space, tmp_path):
    method = build_method(tiny_encoder("resnet18", audio_space), MethodConfig(proj_hidden=16, proj_out=8))
    with pytest.raises(ValueError, match=r"v9\.pt has version 9"):
        load_encoder(fake_checkpoint(method, audio_space, tmp_path / "v9.pt", version=9))
    data = torch.load(fake_checkpoint(method, audio_space, tmp_path / "c.pt"), weights_only=True)
    data["model"] = {k: v for k, v in data["model"].items() if not k.startswith("encoder.")}
    torch.save(data, tmp_path / "headless.pt")
    with pytest.raises(ValueError, match=r"headless\.pt holds no encoder weights"):
        load_encoder(tmp_path / "headless.pt")
    torch.save({"format": "something-else"}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match=r"foreign\.pt is not an encoder file .* nor a training checkpoint"):
        read_encoder_file(tmp_path / "foreign.pt")


def _export(argv):
    parser = argparse.ArgumentParser(prog="t")
    add_pretrain_commands(parser.add_subparsers(dest="command"), lambda cfg: None)
    return run_cli(parser, ["export", *argv])


def test_export_command_writes_a_loadable_encoder_with_extra(audio_space, tmp_path, capsys):
    method = build_method(tiny_encoder("hyper_resnet18", audio_space, seed=7), MethodConfig(proj_hidden=16, proj_out=8))
    ckpt = fake_checkpoint(method, audio_space, tmp_path / "last.pt")
    assert _export(["--checkpoint", str(ckpt), "--out", str(tmp_path / "out" / "encoder.pt")]) == 0
    assert "wrote" in capsys.readouterr().out
    raw = torch.load(tmp_path / "out" / "encoder.pt", weights_only=True)
    assert raw["format"] == "amortised-invariance-encoder" and raw["extra"]["sample_rate"] == 16000
    torch.testing.assert_close(features(load_encoder(tmp_path / "out" / "encoder.pt")), features(method.encoder),
                               atol=0, rtol=0)
    assert _export(["--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.pt")]) == 2  # user's fix
    err = capsys.readouterr().err
    assert err.startswith("t export: error: ") and "missing.pt does not exist" in err and not (tmp_path / "x.pt").exists()
