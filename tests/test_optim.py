"""Optimisers (SGD, decoupled AdamW, LARS) and the warm-up + cosine schedule."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from core.config import ConfigError, from_dict
from core.optim import LARS, OptimConfig, build_optimizer, build_scheduler, param_groups


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3))


def set_grads(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g)


def test_param_groups_split_and_skip_frozen():
    model = small_model()
    model[3].bias.requires_grad_(False)
    groups = param_groups(model, 0.1, exclude_norm_and_bias=True)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert [len(g["params"]) for g in groups] == [2, 3]  # 2 weights; bias, bn weight, bn bias
    assert all(p.ndim == 2 for p in groups[0]["params"]) and all(p.ndim == 1 for p in groups[1]["params"])
    single = param_groups(model, 0.1, exclude_norm_and_bias=False)
    assert len(single) == 1 and len(single[0]["params"]) == 5


def test_adamw_is_decoupled():
    model = small_model()
    config = OptimConfig(name="adamw", lr=0.1, weight_decay=0.5)
    optimizer = build_optimizer(model, config)
    assert type(optimizer) is torch.optim.AdamW
    weight, bias = model[0].weight.detach().clone(), model[0].bias.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    assert torch.equal(model[0].weight, weight * (1 - 0.1 * 0.5))  # decay alone, no Adam term
    assert torch.equal(model[0].bias, bias)  # biases are not decayed


def test_sgd_decays_weights_only():
    model = small_model()
    optimizer = build_optimizer(model, OptimConfig(name="sgd", lr=0.1, weight_decay=0.5, momentum=0.9))
    assert type(optimizer) is torch.optim.SGD
    weight, bias = model[0].weight.detach().clone(), model[0].bias.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    torch.testing.assert_close(model[0].weight, weight - 0.1 * 0.5 * weight, rtol=0, atol=1e-7)
    assert torch.equal(model[0].bias, bias)


def test_lars_excludes_bias_and_norm_from_decay_and_adaptation():
    model = small_model()
    reference = copy.deepcopy(model)
    optimizer = build_optimizer(model, OptimConfig(name="lars", lr=0.3, weight_decay=0.1, momentum=0.9))
    assert isinstance(optimizer, LARS)
    one_d = [n for n, p in model.named_parameters() if p.ndim == 1]
    plain = torch.optim.SGD([p for p in reference.parameters() if p.ndim == 1], lr=0.3, momentum=0.9)
    for seed in (1, 2, 3):
        set_grads(model, seed)
        set_grads(reference, seed)
        optimizer.step()
        plain.step()
    ref = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        if name in one_d:
            assert torch.equal(p, ref[name]), name  # plain momentum SGD, no decay, no trust ratio
        else:
            assert not torch.equal(p, ref[name]), name  # weights moved (reference weights stay put)


def test_lars_trust_ratio_matches_hand_formula():
    w0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    w = nn.Parameter(w0.clone())
    lr, wd, eta, momentum = 0.5, 0.01, 0.02, 0.9
    optimizer = LARS([w], lr=lr, momentum=momentum, weight_decay=wd, trust_coefficient=eta)
    g1, g2 = torch.randn(4, 3, generator=torch.Generator().manual_seed(1)), torch.randn(4, 3)

    def update(param, grad):
        ratio = eta * param.norm() / (grad.norm() + wd * param.norm())
        return ratio * (grad + wd * param)

    w.grad = g1
    optimizer.step()
    buf = update(w0, g1)
    expected = w0 - lr * buf
    torch.testing.assert_close(w.detach(), expected, rtol=1e-6, atol=1e-7)
    w.grad = g2
    optimizer.step()
    buf = momentum * buf + update(expected, g2)
    torch.testing.assert_close(w.detach(), expected - lr * buf, rtol=1e-6, atol=1e-7)


def test_lars_zero_weight_uses_unit_ratio():
    w = nn.Parameter(torch.zeros(2, 2))
    w.grad = torch.ones(2, 2)
    LARS([w], lr=0.1, momentum=0.0).step()
    assert torch.isfinite(w).all() and torch.equal(w.detach(), torch.full((2, 2), -0.1))


def lrs(config: OptimConfig, total: int, steps: list[int]) -> list[float]:
    optimizer = build_optimizer(nn.Linear(2, 2), config)
    scheduler = build_scheduler(optimizer, config, total)
    values = {}
    for step in range(max(steps) + 1):
        values[step] = optimizer.param_groups[0]["lr"]
        assert all(g["lr"] == values[step] for g in optimizer.param_groups)
        optimizer.step()
        scheduler.step()
    return [values[s] for s in steps]


def test_warmup_cosine_values():
    config = OptimConfig(name="sgd", lr=0.1, min_lr=0.01, warmup_steps=10)
    got = lrs(config, 110, [0, 5, 10, 60, 85, 110, 130])
    expected = [0.0, 0.05, 0.1, 0.055, 0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi * 0.75)), 0.01, 0.01]
    assert got == pytest.approx(expected, abs=1e-12)
    assert lrs(OptimConfig(lr=0.2), 4, [0, 2, 4]) == pytest.approx([0.2, 0.1, 0.0], abs=1e-12)


def test_scheduler_state_is_weights_only_safe(tmp_path):
    config = OptimConfig(warmup_steps=2)
    optimizer = build_optimizer(nn.Linear(2, 2), config)
    scheduler = build_scheduler(optimizer, config, 10)
    optimizer.step()
    scheduler.step()
    torch.save({"s": scheduler.state_dict(), "o": optimizer.state_dict()}, tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    again = build_scheduler(build_optimizer(nn.Linear(2, 2), config), config, 10)
    again.load_state_dict(state["s"])
    assert again.last_epoch == 1


@pytest.mark.parametrize("kwargs, key", [
    ({"lr": -1.0}, "lr"), ({"lr": 0.0}, "lr"), ({"name": "rmsprop"}, "name"),
    ({"weight_decay": -0.1}, "weight_decay"), ({"momentum": 1.0}, "momentum"),
    ({"betas": (0.9,)}, "betas"), ({"betas": (0.9, 1.5)}, r"betas\[1\]"), ({"eps": 0.0}, "eps"),
    ({"trust_coefficient": -1.0}, "trust_coefficient"), ({"warmup_steps": -1}, "warmup_steps"),
    ({"min_lr": 0.5}, "min_lr"), ({"lr": float("nan")}, "lr"),
])
def test_bad_config_values_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=f"OptimConfig.{key}"):
        OptimConfig(**kwargs)


def test_config_from_yaml_mapping_and_scheduler_errors():
    config = from_dict(OptimConfig, {"name": "lars", "betas": [0.8, 0.9]}, where="optim")
    assert config.betas == (0.8, 0.9) and config.name == "lars"
    with pytest.raises(ConfigError, match=r"optim.*lr"):
        from_dict(OptimConfig, {"lr": -3}, where="optim")
    optimizer = build_optimizer(nn.Linear(2, 2), OptimConfig(warmup_steps=20))
    with pytest.raises(ConfigError, match="warmup_steps"):
        build_scheduler(optimizer, OptimConfig(warmup_steps=20), 10)
    with pytest.raises(ConfigError, match="total_steps"):
        build_scheduler(optimizer, OptimConfig(), 0)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(nn.ReLU(), OptimConfig())
