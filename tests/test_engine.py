"""The pre-training loop on real synthetic audio: run layout, metrics, checkpoints, export,
descriptor seeding, the sampler, the k-NN monitor and the non-finite-loss stop."""
import argparse
import csv

import pytest
import torch
from torch.utils.data import DistributedSampler

from aiaudio.modality import make_audio_modality
from core import InvarianceSpace, load_encoder
from core.config import ConfigError
from core.encoders.serialise import read_encoder_file
from core.engine import NonFiniteLossError, descriptor_for_step, load_config, pretrain
from core.engine.cli import add_pretrain_commands
from core.engine.distributed import ResumableSampler, derive_seed
from core.engine.metrics import descriptor_text
from core.engine.monitor import knn_accuracy, knn_predict, monitor_descriptors
from tests.engine_helpers import HookedModality, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread per module

MONITOR = ["monitor.every=2", "monitor.k=3", "data.monitor=synthetic?n_clips=24&seconds=0.5&label=family",
           "data.monitor_clips=24"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One 4-step AI-SimCLR run with the monitor on and a DataLoader worker (shared by the
    tests that only read it)."""
    run_dir = tmp_path_factory.mktemp("engine") / "run"
    config = tiny_config(run_dir, "train.steps=4", "train.checkpoint_every=1", "train.keep_checkpoints=2",
                         "train.num_workers=1", *MONITOR)
    modality = make_audio_modality(config)
    result = pretrain(config, modality, progress=False)
    return config, modality, result


def read_rows(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def test_run_directory_layout(run):
    config, _, result = run
    root = result.run_dir
    assert result.steps == 4 and result.stopped is None
    assert sorted(p.name for p in (root / "checkpoints").iterdir()) == ["last.pt", "step_0000003.pt", "step_0000004.pt"]
    assert result.checkpoint == root / "checkpoints" / "last.pt" and result.encoder_path == root / "encoder.pt"
    assert load_config(root / "config.yaml") == config  # resolved config round-trips
    assert any(p.name.startswith("events.out.tfevents") for p in (root / "tensorboard").iterdir())
    assert (root / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in root.rglob("*.tmp")]


def test_metrics_csv_columns_and_rows(run):
    config, modality, result = run
    columns, rows = read_rows(result.run_dir / "metrics.csv")
    assert columns == ["step", "epoch", "loss", "lr", "samples_per_s", "descriptor", "pos_cos", "knn_ones"]
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert [int(r["epoch"]) for r in rows] == [0, 0, 0, 0]  # 32 clips / batch 8 = 4 batches per epoch
    for row, h in zip(rows, result.history):
        assert row["descriptor"] == descriptor_text(torch.tensor(h["descriptor"]))
        assert float(row["loss"]) == pytest.approx(h["loss"], rel=1e-5)
        assert float(row["samples_per_s"]) > 0
    assert [bool(r["knn_ones"]) for r in rows] == [False, True, False, True]
    assert all(0.0 <= float(r["knn_ones"]) <= 1.0 for r in rows if r["knn_ones"])


def test_descriptors_are_seeded_by_seed_and_step(run):
    config, modality, result = run
    space = modality.space
    for h in result.history:
        expected = descriptor_for_step(config, space, h["step"] - 1)
        assert h["descriptor"] == expected.tolist()
        space.index_of(expected)  # one of the space's binary descriptors
    assert len({tuple(h["descriptor"]) for h in result.history}) > 1
    lrs = [h["lr"] for h in result.history]
    assert lrs[0] == pytest.approx(config.optim.lr) and lrs == sorted(lrs, reverse=True)  # cosine decay
    fixed = load_config(None, ["descriptor.mode=fixed"])
    assert descriptor_for_step(fixed, space, 7).tolist() == [1.0] * space.dim
    half = load_config(None, ["descriptor.mode=fixed", f"descriptor.fixed={[0.5] * space.dim}"])
    assert descriptor_for_step(half, space, 0).tolist() == [0.5] * space.dim


def test_ones_fraction_mixes_the_all_ones_descriptor_into_the_draws():
    from aiaudio.space import audio_space

    space = audio_space()
    uniform = load_config(None, [])
    mixed = load_config(None, ["descriptor.ones_fraction=0.5"])
    ones = space.ones().tolist()
    drawn = [descriptor_for_step(mixed, space, step).tolist() for step in range(400)]
    share = sum(d == ones for d in drawn) / len(drawn)
    assert 0.4 < share < 0.6                                         # 0.5 + 1/120 of the rest, 400 draws
    assert all(space.index_of(torch.tensor(d)) >= 0 for d in drawn)  # still binary descriptors of the space
    assert [descriptor_for_step(mixed, space, s).tolist() for s in range(20)] == drawn[:20]   # seeded by step
    # 0 keeps the uniform draws exactly as before
    plain = [descriptor_for_step(uniform, space, step).tolist() for step in range(400)]
    assert sum(d == ones for d in plain) < 12
    # fixed mode ignores it; values outside [0, 1) are refused
    fixed = load_config(None, ["descriptor.mode=fixed", "descriptor.ones_fraction=0.3"])
    assert descriptor_for_step(fixed, space, 3).tolist() == ones
    for bad in ("1.0", "-0.1", "true"):
        with pytest.raises(ConfigError, match="descriptor.ones_fraction"):
            load_config(None, [f"descriptor.ones_fraction={bad}"])


def test_checkpoint_contents_load_weights_only(run):
    config, modality, result = run
    ckpt = torch.load(result.checkpoint, weights_only=True)
    for key in ("format", "version", "step", "epoch", "batch_in_epoch", "config", "encoder_meta", "model",
                "optimizer", "scheduler", "scaler", "method_extra", "modality", "rng"):
        assert key in ckpt
    assert (ckpt["format"], ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]) == (
        "amortised-invariance-checkpoint", 4, 0, 4)
    assert set(ckpt["rng"]) == {"torch", "cuda", "numpy", "python"}
    assert ckpt["config"]["train"]["steps"] == 4 and ckpt["encoder_meta"]["encoder"] == "hyper_resnet18"
    assert ckpt["encoder_meta"]["extra"] == modality.encoder_extra()
    state = result.method.state_dict()
    assert all(torch.equal(ckpt["model"][k], v) for k, v in state.items())
    assert torch.load(result.run_dir / "checkpoints" / "step_0000003.pt", weights_only=True)["step"] == 3


def test_export_round_trip_gives_the_methods_features(run, tmp_path):
    config, modality, result = run
    parser = argparse.ArgumentParser()
    add_pretrain_commands(parser.add_subparsers(dest="command"), make_audio_modality)
    args = parser.parse_args(["export", "--checkpoint", str(result.checkpoint), "--out", str(tmp_path / "enc.pt")])
    assert args.func(args) == 0
    encoder, extra = read_encoder_file(tmp_path / "enc.pt", space=modality.space)
    assert extra == modality.encoder_extra() and "frontend" in extra
    x = modality.encode_input(torch.stack([modality.train_dataset()[i]["input"] for i in range(4)]))
    d = modality.space.descriptors[17]
    reference = result.method.encoder.eval()
    with torch.no_grad():
        expected = reference(x, d)
        torch.testing.assert_close(encoder(x, d), expected, atol=0, rtol=0)
        torch.testing.assert_close(load_encoder(result.encoder_path)(x, d), expected, atol=0, rtol=0)
    reference.train()


def test_non_finite_loss_stops_with_step_and_descriptor(tmp_path):
    config = tiny_config(tmp_path / "nan", "train.steps=5", "train.checkpoint_every=2")

    def poison(call, v1, v2):
        return (torch.full_like(v1, float("nan")), v2) if call == 3 else (v1, v2)

    modality = HookedModality(make_audio_modality(config), on_views=poison)
    expected = modality.space.describe(descriptor_for_step(config, modality.space, 2))
    with pytest.raises(NonFiniteLossError) as err:
        pretrain(config, modality, progress=False)
    message = str(err.value)
    assert "at step 3" in message and expected in message and "step 2" in message
    ckpt_dir = tmp_path / "nan" / "checkpoints"
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["last.pt", "step_0000002.pt"]
    assert torch.load(ckpt_dir / "last.pt", weights_only=True)["step"] == 2
    assert [int(r["step"]) for r in read_rows(tmp_path / "nan" / "metrics.csv")[1]] == [1, 2]
    assert not (tmp_path / "nan" / "encoder.pt").exists()


def test_run_dir_and_data_errors(tmp_path, run):
    _, _, result = run
    config = load_config(result.run_dir / "config.yaml")
    with pytest.raises(FileExistsError, match="already holds checkpoints; resume that run"):
        pretrain(config, make_audio_modality(config), progress=False)
    fresh = tiny_config(tmp_path / "fresh")
    with pytest.raises(FileNotFoundError, match=r"cannot resume: no checkpoint .*fresh/checkpoints/last\.pt"):
        pretrain(fresh, make_audio_modality(fresh), resume=True, progress=False)
    big = tiny_config(tmp_path / "big", "train.batch_size=64")
    with pytest.raises(ConfigError, match="holds 32 items: too few for train.batch_size=64"):
        pretrain(big, make_audio_modality(big), progress=False)
    wrong = tiny_config(tmp_path / "wrong", "descriptor.mode=fixed", "descriptor.fixed=[1, 0]")
    with pytest.raises(ConfigError, match=r"descriptor\.fixed \[1\.0, 0\.0\]: .*shape \(2,\)"):
        pretrain(wrong, make_audio_modality(wrong), progress=False)
    bad_encoder = tiny_config(tmp_path / "enc", "encoder.name=resnet9")
    with pytest.raises(ConfigError, match="encoder: cannot build 'resnet9'"):
        pretrain(bad_encoder, make_audio_modality(bad_encoder), progress=False)


def test_resumable_sampler_matches_distributed_sampler_and_skips():
    data = list(range(23))
    for replicas in (1, 2):
        for rank in range(replicas):
            ours = ResumableSampler(data, replicas, rank, seed=5)
            ref = DistributedSampler(data, num_replicas=replicas, rank=rank, shuffle=True, seed=5, drop_last=True)
            for epoch in (0, 3):
                ours.set_epoch(epoch)
                ref.set_epoch(epoch)
                full = list(ref)
                ours.set_start(0)
                assert list(ours) == full and len(ours) == len(full) == 23 // replicas
                ours.set_start(4)
                assert list(ours) == full[4:] and len(ours) == len(full) - 4
    a, b = ResumableSampler(data, 2, 0, 1), ResumableSampler(data, 2, 1, 1)
    assert not set(a) & set(b)  # ranks see disjoint samples
    with pytest.raises(ValueError, match=r"sampler start must be in \[0, 11\]"):
        a.set_start(12)
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3) != derive_seed(1, 2, 4)
    assert 0 <= derive_seed(2**40, 9) < 2**63


def test_knn_monitor_votes():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1, 2])
    test = torch.tensor([[2.0, 0.1], [0.05, 3.0], [-1.0, 0.05]])
    assert knn_predict(train, labels, test, k=1).tolist() == [0, 1, 2]
    assert knn_predict(train, labels, test, k=3).tolist() == [0, 1, 1]  # two class-1 votes beat the nearest (class 2)
    # a 1-1 tie between classes 0 and 1 goes to the more similar neighbour
    assert knn_predict(train[:4], labels[:4], torch.tensor([[0.7, 0.6]]), k=2).tolist() == [0]
    assert knn_accuracy(train, labels, test, torch.tensor([0, 1, 2]), k=1) == 1.0
    assert knn_accuracy(train, labels, test, torch.tensor([0, 1, 2]), k=50) == pytest.approx(2 / 3)  # k clipped to 5


def test_monitor_descriptors(audio_space):
    assert list(monitor_descriptors(audio_space, "ones")) == ["knn_ones"]
    loo = monitor_descriptors(audio_space, "leave_one_out")
    assert list(loo)[1:] == [f"knn_no_{name}" for name in audio_space.names]
    assert loo["knn_no_noise"].tolist() == [1, 1, 1, 0, 1, 1, 1]
    tight = InvarianceSpace(["a", "b"], min_active=2)  # dropping one entry leaves too few active
    assert list(monitor_descriptors(tight, "leave_one_out")) == ["knn_ones"]
