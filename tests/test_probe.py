"""Many-shot probe: learned descriptors, model selection on validation, frozen encoder."""
import json

import pytest
import torch
from torch import Tensor, nn

from conftest import FixedDescriptor, tiny_encoder
from core import InvarianceSpace
from core.config import ConfigError, from_dict
from core.downstream.clips import TensorClips, encode_pieces, pool_by_owner
from core.downstream.probe import ProbeConfig, fit_probe, train_probe
from core.downstream.selection import carve_splits, split_train_val
from core.encoders.base import InvarianceEncoder


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread per module


class SignalEncoder(InvarianceEncoder):
    """Inputs ``(B, 1, 1, 6)`` holding values v0..v5; features ``(B, 5)``:

    f0 = (1 - d0) * v0   (entry 0 switches a useful signal off when set to 1)
    f1 = v1 + (1 - d1) * v2   (entry 1 removes the nuisance v2 when set to 1)
    f2..f4 = v3..v5   (noise)
    """

    def __init__(self) -> None:
        super().__init__()
        self.space = InvarianceSpace(["signal", "nuisance"], min_active=1)
        self.name, self.config, self.num_features = "signal", {}, 5
        self.scale = nn.Parameter(torch.ones(5))
        self.register_buffer("shift", torch.zeros(5))

    def forward(self, x: Tensor, inv: Tensor) -> Tensor:
        inv = self.check_descriptor(inv, x)
        v = x.flatten(1)
        d = inv.expand(v.shape[0], -1) if inv.dim() == 1 else inv
        f0 = (1 - d[:, 0]) * v[:, 0]
        f1 = v[:, 1] + (1 - d[:, 1]) * v[:, 2]
        return torch.cat([f0[:, None], f1[:, None], v[:, 3:]], dim=1) * self.scale + self.shift

    def specialise(self, inv: Tensor) -> nn.Module:
        return FixedDescriptor(self, inv)


def _values(n: int, seed: int) -> Tensor:
    v = torch.randn(n, 6, generator=torch.Generator().manual_seed(seed))
    v[:, 2] *= 3.0  # a strong nuisance
    return v


def _clips(v: Tensor, labels: Tensor) -> TensorClips:
    return TensorClips(v.reshape(-1, 1, 1, 6), labels)


def _config(**kw) -> ProbeConfig:
    base = dict(lrs=[0.05], weight_decays=[0.0], epochs=12, batch_size=32)
    return ProbeConfig(**{**base, **kw})


def test_learned_descriptor_moves_the_entry_the_task_needs():
    encoder = SignalEncoder()
    v = _values(160, 0)
    # task A needs v0: the probe makes the encoder sensitive to entry 0 (d0 -> 0)
    for grad in ("backprop", "light"):
        _, result = fit_probe(encoder, _clips(v, (v[:, 0] > 0).long()), _config(grad=grad, micro_batch=8))
        assert result.descriptor[0] < 0.2, (grad, result.descriptor)
        assert result.val_score > 0.85
        assert result.trainable_params == 5 * 2 + 2 + 2  # head + descriptor
    # task B needs v1, which the nuisance v2 corrupts: the probe becomes invariant to it (d1 -> 1)
    _, result = fit_probe(encoder, _clips(v, (v[:, 1] > 0).long()), _config(grad="forward", micro_batch=16))
    assert result.descriptor[1] > 0.8, result.descriptor
    assert all(0.0 <= d <= 1.0 for d in result.descriptor)


def test_frozen_encoder_keeps_parameters_batchnorm_and_mode(audio_space):
    encoder = tiny_encoder("hyper_resnet18", audio_space).train()  # fit must switch to eval itself
    before = {k: t.clone() for k, t in encoder.state_dict().items()}
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(24, 3, 32, 32, generator=gen), torch.arange(24) % 3
    probe, result = fit_probe(encoder, TensorClips(x, y), _config(epochs=2, batch_size=8, lrs=[0.05], grad="light",
                                                                   micro_batch=4))
    after = encoder.state_dict()
    assert any(k.endswith("running_mean") for k in before)
    assert all(torch.equal(before[k], after[k]) for k in before), "encoder weights or BN statistics changed"
    assert all(p.grad is None for p in encoder.parameters())
    assert encoder.training  # mode restored
    assert result.descriptor != [0.5] * audio_space.dim  # the descriptor did learn
    assert result.trainable_params == encoder.num_features * 3 + 3 + audio_space.dim
    scores = probe.predict(encoder, TensorClips(x, y))  # prediction, too, runs in eval mode and restores
    assert scores.shape == (24, 3) and encoder.training
    assert all(torch.equal(before[k], after[k]) for k in before)
    eval_features = encode_pieces(encoder.eval(), x[:4], probe.descriptor)
    assert torch.allclose(encode_pieces(encoder.train(), x[:4], probe.descriptor), eval_features)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_every_gradient_path_fits_the_same_probe(task, audio_space):
    encoder = tiny_encoder("hyper_resnet18", audio_space).double().eval()
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(20, 3, 32, 32, generator=gen, dtype=torch.float64)
    y = torch.arange(20) % 3 if task == "classification" else torch.randn(20, 2, generator=gen, dtype=torch.float64)
    outputs = 3 if task == "classification" else 2
    fits = {}
    for grad, accumulate in (("backprop", True), ("light", True), ("light", False), ("forward", True)):
        config = _config(task=task, epochs=2, batch_size=12, grad=grad, micro_batch=5, lrs=[0.05])
        d, head, trainable = train_probe(encoder, x, y, outputs, config, 0.05, 1e-4, None, accumulate=accumulate)
        fits[(grad, accumulate)] = (d, head.weight.detach(), head.bias.detach())
        assert len(trainable) == 3 and trainable[-1].shape == (audio_space.dim,)
    reference = fits[("backprop", True)]
    assert (reference[0] - 0.5).abs().max() > 1e-3  # four Adam steps moved the descriptor
    for key, fit in fits.items():
        for got, want in zip(fit, reference):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-8, msg=str(key))


def test_selection_never_looks_at_test():
    encoder = SignalEncoder()
    v, w = _values(160, 1), _values(60, 2)
    train = _clips(v, (v[:, 0] + 0.3 * v[:, 3] > 0).long())
    test_labels = (w[:, 0] + 0.3 * w[:, 3] > 0).long()
    config = _config(descriptor="fixed", fixed=[0.0, 1.0], lrs=[1e-3, 0.05], weight_decays=[0.0, 0.1])
    _, right = fit_probe(encoder, train, config, test=_clips(w, test_labels))
    _, flipped = fit_probe(encoder, train, config, test=_clips(w, 1 - test_labels))
    for key in ("lr", "weight_decay", "val_score", "descriptor"):
        assert getattr(right, key) == getattr(flipped, key)
    assert right.metrics["accuracy"] > 0.8
    assert flipped.metrics["accuracy"] == pytest.approx(1 - right.metrics["accuracy"])


def test_carved_validation_equals_passing_the_same_split():
    labels = torch.arange(50) % 4
    tr, va = split_train_val(labels, 0.2, seed=5)
    assert sorted(tr + va) == list(range(50)) and not set(tr) & set(va)
    assert torch.bincount(labels[va]).tolist() == [3, 3, 2, 2]  # round(0.2 * 13) = 3, round(0.2 * 12) = 2
    assert (tr, va) == split_train_val(labels, 0.2, seed=5)
    assert va != split_train_val(labels, 0.2, seed=6)[1]
    encoder = SignalEncoder()
    v = _values(120, 4)
    source = _clips(v, (v[:, 1] > 0).long())
    config = _config(lrs=[0.01, 0.05], seed=7, epochs=6)
    tr, va = split_train_val(source.labels, config.val_fraction, config.seed)
    _, carved = fit_probe(encoder, source, config)
    _, given = fit_probe(encoder, source.subset(tr), config, val=source.subset(va))
    assert (carved.lr, carved.val_score, carved.descriptor) == (given.lr, given.val_score, given.descriptor)


def test_descriptor_modes_give_descriptors_of_the_right_kind():
    encoder = SignalEncoder()
    space = encoder.space
    v = _values(160, 5)
    source = _clips(v, (v[:, 0] > 0).long())
    _, fixed = fit_probe(encoder, source, _config(descriptor="fixed", fixed=[0.25, 1.0]))
    assert fixed.descriptor == [0.25, 1.0] and fixed.trainable_params == 12
    _, ones = fit_probe(encoder, source, _config(descriptor="fixed"))
    assert ones.descriptor == [1.0, 1.0] and ones.val_score < 0.75  # the signal is switched off
    _, corner = fit_probe(encoder, source, _config(descriptor="best_corner"))
    assert corner.descriptor == [0.0, 1.0]  # the only corner keeping the signal
    space.index_of(torch.tensor(corner.descriptor))  # a binary descriptor of the space
    _, limited = fit_probe(encoder, source, _config(descriptor="best_corner"),
                           corners=torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    assert limited.descriptor in ([1.0, 0.0], [1.0, 1.0])
    probe, quant = fit_probe(encoder, source, _config(descriptor="quantised", bits=2))
    levels = torch.tensor(quant.descriptor) * 3
    assert torch.allclose(levels, levels.round(), atol=1e-6) and quant.descriptor[0] <= 1 / 3
    assert torch.equal(probe.descriptor, torch.tensor(quant.descriptor))
    assert quant.trainable_params == 14


def test_regression_reaches_high_r2_on_a_linear_problem():
    encoder = SignalEncoder()
    v, w = _values(200, 6), _values(80, 7)

    def targets(u: Tensor) -> Tensor:  # large scale and offset: standardisation matters
        return torch.stack([2 * u[:, 0] - u[:, 1] + 3, u[:, 0] + 0.5 * u[:, 1]], dim=1) * 100 + 1000

    probe, result = fit_probe(encoder, _clips(v, targets(v)), _config(task="regression", epochs=20),
                              test=_clips(w, targets(w)))
    assert set(result.metrics) == {"r2"}
    assert result.metrics["r2"] > 0.9 and result.val_score > 0.9
    assert result.descriptor[0] < 0.3 and result.descriptor[1] > 0.7  # keep v0, drop the nuisance
    assert probe.target_mean.shape == (2,) and float(probe.target_mean.mean()) == pytest.approx(1150, abs=60)
    assert probe.predict(encoder, _clips(w, targets(w))).shape == (80, 2)


def test_clips_vote_over_their_pieces_and_result_is_json():
    encoder = SignalEncoder()
    gen = torch.Generator().manual_seed(8)
    counts = [1 + int(c) for c in torch.randint(0, 3, (90,), generator=gen)]
    labels = torch.arange(90) % 3
    pieces = [torch.randn(c, 1, 1, 6, generator=gen) + labels[i].float() for i, c in enumerate(counts)]
    for clip in pieces:
        clip[:, 0, 0, 1] += 2 * float(clip[0, 0, 0, 1] > 0)
    source = TensorClips(pieces, labels, class_names=["a", "b", "c", "d"])
    probe, result = fit_probe(encoder, source, _config(descriptor="fixed"), test=source)
    assert probe.head.out_features == 4  # class count from the names
    x, owner = source.pieces(range(90))
    manual = pool_by_owner(probe.head(encode_pieces(encoder, x, probe.descriptor)).softmax(1), owner, 90)
    torch.testing.assert_close(probe.predict(encoder, source), manual)
    assert set(result.metrics) == {"accuracy", "mean_class_accuracy"} and result.metrics["accuracy"] > 0.6
    data = json.loads(json.dumps(result.to_dict()))
    assert data["descriptor_names"] == ["signal", "nuisance"] and data["wall_s"] > 0 and data["peak_mb"] > 0


@pytest.mark.parametrize("values, message", [
    ({"task": "ranking"}, "task"), ({"descriptor": "random"}, "descriptor"), ({"grad": "reverse"}, "grad"),
    ({"lrs": []}, "lrs"), ({"lrs": [0.0]}, "lrs"), ({"weight_decays": [-1.0]}, "weight_decays"),
    ({"bits": 0}, "bits"), ({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"),
    ({"micro_batch": 0}, "micro_batch"), ({"val_fraction": 1.0}, "val_fraction"),
    ({"descriptor_lr": -0.1}, "descriptor_lr"), ({"fixed": [1.0, 0.0]}, "descriptor='fixed'"),
    ({"descriptor": "fixed", "fixed": [1.5, 0.0]}, r"\[0, 1\]"), ({"batchsize": 8}, "unknown key 'batchsize'"),
])
def test_bad_config_values_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(ProbeConfig, values, where="probe")


def test_bad_fit_arguments_are_named():
    encoder = SignalEncoder()
    v = _values(40, 9)
    labels = (v[:, 0] > 0).long()
    with pytest.raises(ValueError, match="has 1 entries but the encoder's space has 2"):
        fit_probe(encoder, _clips(v, labels), _config(descriptor="fixed", fixed=[1.0]))
    with pytest.raises(ValueError, match="classification needs"):
        fit_probe(encoder, _clips(v, labels.float()[:, None]), _config())
    with pytest.raises(ValueError, match="regression needs float"):
        fit_probe(encoder, _clips(v, labels), _config(task="regression"))
    with pytest.raises(ValueError, match="not one of the space"):
        fit_probe(encoder, _clips(v, labels), _config(descriptor="best_corner"), corners=torch.tensor([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="only used with descriptor='best_corner'"):
        fit_probe(encoder, _clips(v, labels), _config(), corners=torch.tensor([[1.0, 1.0]]))
    with pytest.raises(TypeError, match="ProbeConfig"):
        fit_probe(encoder, _clips(v, labels), {"epochs": 1})


def test_carve_splits_cuts_each_class_in_order_and_keeps_one_for_training():
    labels = torch.tensor([0] * 10 + [1] * 3 + [2])
    rest, first, second = carve_splits(labels, [0.3, 0.5], seed=1)
    assert sorted(rest + first + second) == list(range(14))
    assert [int((labels[first] == c).sum()) for c in range(3)] == [3, 1, 0]   # round(0.3 n)
    assert [int((labels[second] == c).sum()) for c in range(3)] == [5, 1, 0]  # round(0.5 n), capped at n - 1 - taken
    assert 13 in rest  # a class of one clip stays in the remainder
    assert carve_splits(labels, [0.3, 0.5], seed=1) == [rest, first, second]
    plain = carve_splits(labels, [0.5], seed=1, stratify=False)
    assert len(plain[1]) == 7 and sorted(plain[0] + plain[1]) == list(range(14))


def test_hand_built_encoder_specialises_like_a_fixed_descriptor():
    encoder, x = SignalEncoder(), _values(4, 0).view(4, 1, 1, 6)
    d = torch.tensor([0.0, 1.0])
    assert torch.equal(encoder.specialise(d)(x), encoder(x, d))
