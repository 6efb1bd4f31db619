"""Descriptor BatchNorm: per-corner running statistics, their mixture for continuous
descriptors, and Hyper-ResNet with ``norm="descriptor"`` (specialise, mixed batches,
descriptor gradients, files, a pre-training run)."""
import pytest
import torch
from torch import nn

from aiaudio.modality import make_audio_modality
from core import InvarianceSpace, build_encoder
from core.config import ConfigError
from core.downstream.descriptor_grad import GRAD_MODES, features_with_descriptor_grad
from core.encoders.base import group_descriptors
from core.encoders.descriptor_norm import DescriptorBatchNorm2d, corner_weights, hypercube_corners, make_norm
from core.encoders.serialise import read_encoder_file, save_encoder
from core.engine import pretrain
from core.engine.build import build_run_method
from core.engine.distributed import DistContext
from tests.engine_helpers import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread per module


def _corner_index(d: torch.Tensor) -> int:
    return int(sum(int(v) << (len(d) - 1 - i) for i, v in enumerate(d.tolist())))


def test_corner_weights_are_a_partition_of_unity_and_pick_binary_corners():
    corners = hypercube_corners(3)
    assert corners.shape == (8, 3) and torch.equal(corners[5], torch.tensor([1.0, 0.0, 1.0]))
    d = torch.tensor([[1.0, 0.0, 1.0], [0.2, 0.7, 0.5]])
    w = corner_weights(d, corners)
    assert w.shape == (2, 8) and (w >= 0).all()
    torch.testing.assert_close(w.sum(dim=1), torch.ones(2))
    assert torch.equal(w[0], nn.functional.one_hot(torch.tensor(5), 8).float())
    # multilinear: corner (0, 1, 1) gets (1 - 0.2) * 0.7 * 0.5
    assert w[1, 3].item() == pytest.approx(0.8 * 0.7 * 0.5)


def _two_descriptor_norm(momentum=None):
    """A 2-channel descriptor BatchNorm trained on two corners with different activations."""
    torch.manual_seed(0)
    bn = make_norm("descriptor", 2, 2)
    bn.momentum = momentum
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    gen = torch.Generator().manual_seed(0)
    data = {"a": [3.0 + torch.randn(16, 2, 3, 3, generator=gen) for _ in range(3)],
            "b": [-2.0 + 2.0 * torch.randn(16, 2, 3, 3, generator=gen) for _ in range(2)]}
    bn.train()
    for x in data["a"]:
        bn(x, group_descriptors(a, x.shape[0]))
    for x in data["b"]:
        bn(x, group_descriptors(b, x.shape[0]))
    return bn.eval(), a, b, data


def test_training_updates_only_the_corner_of_the_descriptor():
    bn, a, b, data = _two_descriptor_norm(momentum=None)  # cumulative averages: exact values
    ia, ib = _corner_index(a), _corner_index(b)
    assert bn.corner_weight.tolist() == [0.0, 2.0, 3.0, 0.0] and (ia, ib) == (2, 1)
    for corner, batches in ((ia, data["a"]), (ib, data["b"])):
        means = torch.stack([x.mean(dim=(0, 2, 3)) for x in batches]).mean(0)
        variances = torch.stack([x.transpose(0, 1).reshape(2, -1).var(dim=1) for x in batches]).mean(0)
        torch.testing.assert_close(bn.corner_mean[corner], means)
        torch.testing.assert_close(bn.corner_var[corner], variances)
    # the ordinary running statistics still average over every step
    everything = torch.stack([x.mean(dim=(0, 2, 3)) for x in data["a"] + data["b"]]).mean(0)
    torch.testing.assert_close(bn.running_mean, everything)
    assert int(bn.num_batches_tracked) == 5


def test_eval_normalises_each_descriptor_with_its_own_statistics():
    bn, a, b, data = _two_descriptor_norm(momentum=None)
    plain = nn.BatchNorm2d(2, momentum=None).train()
    for x in data["a"] + data["b"]:
        plain(x)
    plain.eval()
    with torch.no_grad():
        for d, x in ((a, data["a"][0]), (b, data["b"][0])):
            out = bn(x, group_descriptors(d, x.shape[0]))
            assert out.mean().abs() < 0.3 and (out.std() - 1).abs() < 0.3  # close to standardised
            assert plain(x).mean().abs() > 1.0  # the shared statistics of ordinary BatchNorm are far off
    # a continuous descriptor between the corners gets the moments of the mixture
    half = torch.tensor([0.5, 0.5])  # weight 1/4 on each of the four corners; two never trained
    mean, var = bn.statistics(half)
    rows_mean = torch.stack([bn.running_mean, bn.corner_mean[1], bn.corner_mean[2], bn.running_mean])
    rows_var = torch.stack([bn.running_var, bn.corner_var[1], bn.corner_var[2], bn.running_var])
    torch.testing.assert_close(mean, rows_mean.mean(0))
    torch.testing.assert_close(var, (rows_var + rows_mean ** 2).mean(0) - rows_mean.mean(0) ** 2)


def test_momentum_updates_and_errors():
    bn, _, b, data = _two_descriptor_norm(momentum=0.4)
    # cumulative over a corner's first 1 / momentum = 2.5 updates, then exponential: the
    # second update has rate max(1/2, 0.4), the third max(1/3, 0.4)
    gen = torch.Generator().manual_seed(9)
    extra = -2.0 + 2.0 * torch.randn(16, 2, 3, 3, generator=gen)
    bn.train()(extra, group_descriptors(b, 16))
    m = [x.mean(dim=(0, 2, 3)) for x in (*data["b"], extra)]
    expected = 0.6 * (m[0] + 0.5 * (m[1] - m[0])) + 0.4 * m[2]
    torch.testing.assert_close(bn.corner_mean[_corner_index(b)], expected)
    # the ordinary running statistics keep nn.BatchNorm2d's exponential average from 0
    shared = torch.zeros(2)
    for x in [*data["a"], *data["b"], extra]:
        shared = 0.6 * shared + 0.4 * x.mean(dim=(0, 2, 3))
    torch.testing.assert_close(bn.running_mean, shared)
    with pytest.raises(ValueError, match=r"descriptor length in \[1, 12\]"):
        DescriptorBatchNorm2d(4, 13)
    with pytest.raises(ValueError, match="norm must be one of"):
        make_norm("layer", 4, 2)
    space = InvarianceSpace(["a", "b"], min_active=1)
    with pytest.raises(ValueError, match="norm must be one of"):
        build_encoder("resnet18", space, width=4, norm="layer")
    with pytest.raises(ValueError, match="norm must be one of"):
        build_encoder("hyper_resnet18", space, width=4, norm="layer")
    with pytest.raises(ValueError, match="more than one value per channel"):
        bn.train()(torch.ones(1, 2, 1, 1), group_descriptors(b, 1))


def _trained_encoder(space, dtype=torch.float64):
    """A tiny Hyper-ResNet18 with descriptor BatchNorm after a few training batches on three
    corners, in eval mode."""
    torch.manual_seed(0)
    enc = build_encoder("hyper_resnet18", space, in_chans=3, width=8, norm="descriptor").to(dtype)
    gen = torch.Generator().manual_seed(3)
    enc.train()
    with torch.no_grad():
        for i, row in enumerate((3, 50, 3, 90)):
            x = torch.randn(6, 3, 32, 32, generator=gen, dtype=dtype) * (1 + i)
            enc(x, space.descriptors[row].to(dtype))
    return enc.eval()


def test_hyper_resnet_descriptor_norm_specialises_and_groups(audio_space):
    enc = _trained_encoder(audio_space)
    assert enc.config["norm"] == "descriptor"
    assert sum(isinstance(m, DescriptorBatchNorm2d) for m in enc.modules()) == 20  # stem, 8 blocks x 2, 3 shortcuts
    table = audio_space.descriptors.double()
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        for d in (table[3], table[50], torch.full((7,), 0.3, dtype=torch.float64)):
            torch.testing.assert_close(enc.specialise(d)(x), enc(x, d), atol=1e-9, rtol=1e-9)
        inv = torch.stack([table[3], table[50], table[3], table[90], table[50]])
        batched = enc(x, inv)
        single = torch.cat([enc(x[i:i + 1], inv[i]) for i in range(5)])
        torch.testing.assert_close(batched, single, atol=1e-9, rtol=1e-9)
        # the statistics differ between descriptors: a stat swap changes the features
        swapped = enc.specialise(table[3])
        swapped.bn1.running_mean.copy_(enc.bn1.statistics(table[50])[0])
        assert (swapped(x) - enc(x, table[3])).abs().max() > 1e-3


def test_descriptor_gradient_flows_through_the_statistics(audio_space):
    enc = _trained_encoder(audio_space)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 3, 32, 32, generator=gen, dtype=torch.float64)
    start = torch.full((audio_space.dim,), 0.4, dtype=torch.float64)
    weights = torch.randn(3, enc.num_features, generator=gen, dtype=torch.float64)
    grads = {}
    for mode in GRAD_MODES:
        d = start.clone().requires_grad_(True)
        (features_with_descriptor_grad(enc, x, d, mode, micro_batch=2) * weights).sum().pow(2).backward()
        grads[mode] = d.grad.clone()
    for mode in ("forward", "light"):
        torch.testing.assert_close(grads[mode], grads["backprop"], rtol=1e-4, atol=1e-8)
    # the statistics alone carry a gradient: kernels fixed, only BatchNorm depends on d
    bn = enc.bn1
    d = start.clone().requires_grad_(True)
    mean, var = bn.statistics(d)
    (mean.sum() + var.sum()).backward()
    assert d.grad.abs().max() > 1e-6
    assert torch.autograd.gradcheck(lambda v: torch.cat(bn.statistics(v)), (start.clone().requires_grad_(True),))


def test_descriptor_norm_round_trips_through_an_encoder_file(audio_space, tmp_path):
    enc = _trained_encoder(audio_space, torch.float32)
    path = save_encoder(enc, tmp_path / "encoder.pt")
    loaded, _ = read_encoder_file(path)
    assert "layer1.0.bn1.corner_mean" in loaded.state_dict() and "bn1.corners" not in loaded.state_dict()
    x = torch.randn(2, 3, 32, 32)
    d = audio_space.descriptors[50]
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, d), enc(x, d), atol=0, rtol=0)


def test_pretraining_with_descriptor_norm_fills_the_drawn_corners(tmp_path):
    config = tiny_config(tmp_path / "run", "train.steps=3", "encoder.kwargs={width: 4, norm: descriptor}")
    result = pretrain(config, make_audio_modality(config), progress=False)
    enc, _ = read_encoder_file(result.encoder_path)
    space: InvarianceSpace = enc.space
    drawn = {_corner_index(torch.tensor(h["descriptor"])) for h in result.history}
    seen = set(torch.nonzero(enc.bn1.corner_weight).flatten().tolist())
    assert seen == drawn and enc.bn1.corner_weight.sum().item() == pytest.approx(3.0)
    assert space.dim == 7 and enc.config["norm"] == "descriptor"


def test_sync_batch_norm_is_refused_with_descriptor_norm(tmp_path):
    """SyncBatchNorm conversion would replace the per-descriptor statistics with shared ones."""
    overrides = ("encoder.kwargs={width: 4, norm: descriptor}", "method.batch_norm=sync")
    config = tiny_config(tmp_path / "run", *overrides)
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    with pytest.raises(ConfigError, match="batch_norm=sync .* norm: descriptor"):
        build_run_method(config, make_audio_modality(config), ctx)
    plain = tiny_config(tmp_path / "run", "encoder.kwargs={width: 4}", "method.batch_norm=sync")
    assert build_run_method(plain, make_audio_modality(plain), ctx) is not None
