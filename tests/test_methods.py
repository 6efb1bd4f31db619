"""SimCLR, MoCo-v2 and MoCo-v3 on a tiny hyper-ResNet18 (single process, CPU)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from core.config import ConfigError, from_dict
from core.losses import info_nce, nt_xent
from core.methods import (
    METHODS, Method, MethodConfig, MoCoV2, MoCoV3, SimCLR, build_method, shuffle_permutation,
)
from core.optim import OptimConfig, build_optimizer
from tests.conftest import tiny_encoder

SMALL = {"proj_layers": 2, "proj_hidden": 32, "proj_out": 16, "pred_hidden": 32, "queue_size": 32}
B = 4
LOG_KEYS = {"simclr": {"loss", "pos_cos"}, "moco_v2": {"loss", "acc"}, "moco_v3": {"loss", "pos_cos"}}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread per module


# The methods fed a plain pair of views; LooC and AugSelf (other inputs) are in test_baselines.py.
PAIR_METHODS = ["moco_v2", "moco_v3", "simclr"]


def make(name: str, space, seed: int = 0, encoder_seed: int = 0, **overrides) -> Method:
    config = MethodConfig(name=name, **{**SMALL, "temperature": 0.2, "momentum": 0.9, **overrides})
    return build_method(tiny_encoder("hyper_resnet18", space, seed=encoder_seed), config, seed=seed)


def views(seed: int = 0, batch: int = B) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, 32, 32, generator=g)
    return x + 0.1 * torch.randn(x.shape, generator=g), x + 0.1 * torch.randn(x.shape, generator=g)


def descriptor(space, active: list[str]) -> torch.Tensor:
    return space.from_active(active)


@pytest.mark.parametrize("name", PAIR_METHODS)
def test_loss_finite_and_gradients_reach_encoder_and_hypernetwork(name, audio_space):
    method = make(name, audio_space)
    assert isinstance(method, METHODS[name])
    v1, v2 = views()
    loss, logs = method(v1, v2, descriptor(audio_space, ["noise", "time_mask", "fade_in"]), step=0)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert set(logs) == LOG_KEYS[name]
    for value in logs.values():
        assert value.dim() == 0 and not value.requires_grad and torch.isfinite(value)
    assert torch.equal(logs["loss"], loss.detach())
    loss.backward()
    params = dict(method.named_parameters())
    # ordinary encoder weights, the descriptor embedding and the kernel generators
    for key in ("encoder.conv1.weight", "encoder.layer1.0.embed.weight",
                "encoder.layer3.1.conv2.generator.hidden.weight", "projector.layers.0.weight"):
        assert params[key].grad is not None and params[key].grad.abs().sum() > 0, key
    if name != "simclr":
        frozen = [p for k, p in params.items() if k.startswith("momentum_")]
        assert frozen and all(not p.requires_grad and p.grad is None for p in frozen)
    if name == "moco_v3":
        assert params["predictor.layers.0.weight"].grad.abs().sum() > 0


def test_simclr_loss_equals_nt_xent_on_projected_features(audio_space):
    method = make("simclr", audio_space, temperature=0.5)
    v1, v2 = views(1)
    d = descriptor(audio_space, ["pitch_shift", "noise"])
    loss, logs = method(v1, v2, d, step=3)
    z = method.projector(method.encoder(torch.cat([v1, v2]), d))
    expected = nt_xent(z[:B], z[B:], temperature=0.5)
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-6)
    cos = F.cosine_similarity(z[:B], z[B:], dim=1).mean()
    torch.testing.assert_close(logs["pos_cos"], cos.detach(), rtol=0, atol=1e-6)
    assert method.extra_state() == {}


def test_moco_v2_enqueues_into_the_steps_queue_only(audio_space):
    method = make("moco_v2", audio_space)
    d, other = descriptor(audio_space, ["noise", "time_shift"]), audio_space.ones()
    queue_before, other_before = method.queues.get(d), method.queues.get(other)
    v1, v2 = views(2)
    loss, logs = method(v1, v2, d, step=0)
    # by hand: the loss against the queue as it was, with the momentum branch's keys
    q = method.projector(method.encoder(v1, d))
    k = method.momentum_projector(method.momentum_encoder(v2, d)).detach()
    torch.testing.assert_close(loss, info_nce(q, k, queue_before, temperature=0.2), rtol=0, atol=1e-6)
    assert 0.0 <= float(logs["acc"]) <= 1.0
    after = method.queues.get(d)
    torch.testing.assert_close(after[:B], F.normalize(k, dim=1), rtol=0, atol=1e-6)
    assert torch.equal(after[B:], queue_before[B:])
    assert method.queues.pointer(d) == B
    assert torch.equal(method.queues.get(other), other_before) and method.queues.pointer(other) == 0
    method(v1, v2, d, step=1)
    assert method.queues.pointer(d) == 2 * B


@pytest.mark.parametrize("name", ["moco_v2", "moco_v3"])
def test_momentum_update_is_the_ema_formula(name, audio_space):
    method = make(name, audio_space, momentum=0.9)
    target = dict(method.momentum_encoder.named_parameters()) | {
        f"p.{k}": p for k, p in method.momentum_projector.named_parameters()}
    online = dict(method.encoder.named_parameters()) | {f"p.{k}": p for k, p in method.projector.named_parameters()}
    assert all(torch.equal(target[k], online[k]) for k in target)  # starts as a copy
    optimizer = build_optimizer(method, OptimConfig(name="sgd", lr=0.5, weight_decay=0.0))
    loss, _ = method(*views(3), audio_space.ones(), step=0)
    loss.backward()
    optimizer.step()
    old = {k: p.detach().clone() for k, p in target.items()}
    assert any(not torch.equal(old[k], online[k]) for k in old)
    step, total = 7, 20
    m = 0.9 if name == "moco_v2" else method.momentum_at(step, total)
    method.on_step_end(step, total)
    for k, p in target.items():
        assert torch.equal(p, m * old[k] + (1 - m) * online[k].detach()), k


def test_moco_v3_momentum_schedule(audio_space):
    method = make("moco_v3", audio_space, momentum=0.99)
    assert method.momentum_at(0, 100) == pytest.approx(0.99, abs=1e-15)
    assert method.momentum_at(50, 100) == pytest.approx(0.995, abs=1e-15)
    assert method.momentum_at(25, 100) == pytest.approx(1 - 0.01 * (1 + math.cos(math.pi / 4)) / 2, abs=1e-15)
    assert method.momentum_at(100, 100) == 1.0 and method.momentum_at(150, 100) == 1.0
    with pytest.raises(ValueError, match="total_steps"):
        method.on_step_end(0, 0)


def test_moco_v3_uses_normalised_symmetric_loss(audio_space):
    method = make("moco_v3", audio_space)
    v1, v2 = views(4)
    d = audio_space.ones()
    loss, _ = method(v1, v2, d, step=0)
    q1 = method.predictor(method.projector(method.encoder(v1, d)))
    q2 = method.predictor(method.projector(method.encoder(v2, d)))
    k1 = method.momentum_projector(method.momentum_encoder(v1, d))
    k2 = method.momentum_projector(method.momentum_encoder(v2, d))

    def ctr(q, k):  # the MoCo-v3 loss with L2 normalisation, written out
        logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T / 0.2
        return F.cross_entropy(logits, torch.arange(B)) * 2 * 0.2

    torch.testing.assert_close(loss, ctr(q1, k2) + ctr(q2, k1), rtol=0, atol=1e-5)
    # queries are L2-normalised: scaling the predictor's output leaves the loss unchanged
    last = method.predictor.layers[-1]
    with torch.no_grad():
        last.weight.mul_(10.0)
        last.bias.mul_(10.0)
    # x10 rounds the weights (float32) and the logits reach 1 / 0.2 = 5: a few eps x 5 apart at most;
    # atol 1e-4 keeps >100x over that, and an unnormalised loss would change by ~1.
    torch.testing.assert_close(method(v1, v2, d, step=0)[0], loss, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", PAIR_METHODS)
def test_checkpoint_round_trip_reproduces_next_loss(name, audio_space, tmp_path):
    method = make(name, audio_space, seed=5)
    descriptors = [audio_space.ones(), descriptor(audio_space, ["noise", "time_shift"])]
    optimizer = build_optimizer(method, OptimConfig(name="sgd", lr=0.1))
    for step, d in enumerate(descriptors * 2):
        loss, _ = method(*views(10 + step), d, step=step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        method.on_step_end(step, 10)
    torch.save({"model": method.state_dict(), "extra": method.extra_state()}, tmp_path / "ckpt.pt")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    if name == "moco_v2":
        assert set(state["extra"]) == {"queues"}
    else:
        assert state["extra"] == {}
    assert any(k.startswith("encoder.") for k in state["model"])
    if name != "simclr":
        assert any(k.startswith("momentum_encoder.") for k in state["model"])

    restored = make(name, audio_space, seed=5, encoder_seed=1)
    restored.load_state_dict(state["model"])
    restored.load_extra_state(state["extra"])
    v1, v2 = views(99)
    expected, _ = method(v1, v2, descriptors[1], step=4)
    got, _ = restored(v1, v2, descriptors[1], step=4)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    if name == "moco_v2":  # without the queues the next loss differs: the test can fail
        fresh = make(name, audio_space, seed=5, encoder_seed=1)
        fresh.load_state_dict(state["model"])
        assert not torch.allclose(fresh(v1, v2, descriptors[1], step=4)[0], expected)


def test_load_extra_state_rejects_foreign_state(audio_space):
    with pytest.raises(ValueError, match="no extra state"):
        make("simclr", audio_space).load_extra_state({"queues": {}})
    with pytest.raises(ValueError, match="queues"):
        make("moco_v2", audio_space).load_extra_state({})
    other = make("moco_v2", audio_space, queue_size=16)
    other.queues.get(audio_space.ones())
    with pytest.raises(ValueError, match="size"):
        make("moco_v2", audio_space).load_extra_state(other.extra_state())


def test_shuffle_bn_in_one_process_is_local_bn(audio_space):
    shuffle = make("moco_v2", audio_space, batch_norm="shuffle")
    local = make("moco_v2", audio_space, batch_norm="local")
    v = views(5)[1]
    k_shuffle, all_shuffle = shuffle.momentum_keys(v, audio_space.ones(), step=3)
    k_local, _ = local.momentum_keys(v, audio_space.ones(), step=3)
    assert shuffle.last_permutation is None
    assert torch.equal(k_shuffle, k_local) and torch.equal(all_shuffle, k_shuffle)
    perm = shuffle_permutation(16, seed=1, step=2)
    assert torch.equal(perm, shuffle_permutation(16, seed=1, step=2))
    assert torch.equal(perm.sort().values, torch.arange(16))
    assert not torch.equal(perm, shuffle_permutation(16, seed=1, step=3))


def test_input_validation(audio_space):
    method = make("simclr", audio_space)
    v1, v2 = views()
    d = audio_space.ones()
    with pytest.raises(ValueError, match=r"view1 must have shape \(B, C, H, W\)"):
        method(v1[0], v2, d, 0)
    with pytest.raises(ValueError, match="view1 and view2 must have the same shape"):
        method(v1, v2[:, :, :16], d, 0)
    with pytest.raises(ValueError, match=r"descriptor must be a tensor of shape \(7,\)"):
        method(v1, v2, d[:5], 0)
    with pytest.raises(ValueError, match=r"descriptor must be a tensor of shape \(7,\)"):
        method(v1, v2, d.expand(B, 7), 0)
    with pytest.raises(ValueError, match="outside"):
        method(v1, v2, d * 2, 0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        method(v1[:1], v2[:1], d, 0)
    with pytest.raises(ValueError, match="step"):
        method(v1, v2, d, -1)
    with pytest.raises(ValueError, match="binary"):  # MoCo-v2 queues exist for binary descriptors only
        make("moco_v2", audio_space)(v1, v2, torch.full((7,), 0.5), 0)


def test_config_and_registry_errors(audio_space):
    encoder = tiny_encoder("hyper_resnet18", audio_space)
    config = MethodConfig()
    config.name = "byol"
    with pytest.raises(ValueError, match="known methods: augself, looc, moco_v2, moco_v3, simclr"):
        build_method(encoder, config)
    with pytest.raises(ConfigError, match="name"):
        MethodConfig(name="byol")
    with pytest.raises(ConfigError, match="temperature"):
        MethodConfig(temperature=0.0)
    with pytest.raises(ConfigError, match="queue_size"):
        MethodConfig(queue_size=0)
    with pytest.raises(ConfigError, match="batch_norm"):
        MethodConfig(batch_norm="global")
    with pytest.raises(ConfigError, match=r"method.*momentum"):
        from_dict(MethodConfig, {"momentum": 1.5}, where="method")
    assert from_dict(MethodConfig, {"name": "moco_v3", "proj_out": 8}, where="method").proj_out == 8
    with pytest.raises(ValueError, match="InvarianceEncoder"):
        SimCLR(torch.nn.Linear(2, 2), MethodConfig())
    with pytest.raises(ValueError, match="seed"):
        MoCoV2(encoder, MethodConfig(**SMALL), seed=-1)
    assert MoCoV3 is METHODS["moco_v3"]
