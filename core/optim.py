"""Optimisers and the learning-rate schedule of pre-training.

* ``sgd``: ``torch.optim.SGD`` with momentum.
* ``adamw``: ``torch.optim.AdamW`` (truly decoupled weight decay: ``p -= lr * wd * p``
  besides the Adam step; the paper's public code built plain Adam instead).
* ``lars``: :class:`LARS`, SGD with momentum and a layer-wise trust ratio.

For all three, biases and normalisation parameters (every parameter with ``ndim <= 1``)
get no weight decay; LARS also leaves them out of the trust-ratio adaptation.
The schedule is a linear warm-up from 0 followed by a cosine from ``lr`` to ``min_lr``.
"""
from __future__ import annotations

import math
import numbers
import typing
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal

import torch
from torch import Tensor, nn

from core.config import ConfigError

OptimName = Literal["sgd", "adamw", "lars"]


def _number(key: str, value: Any, low: float, high: float = math.inf, low_open: bool = False,
            high_open: bool = False) -> float:
    """``value`` as a float inside the given interval, else a ConfigError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"OptimConfig.{key} must be a finite number, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open or high == math.inf else ']'}"
        raise ConfigError(f"OptimConfig.{key} must lie in {interval}, got {value!r}")
    return float(value)


@dataclass
class OptimConfig:
    """Optimiser and schedule (the ``optim:`` section of a config).

    Attributes:
        name: ``"sgd"``, ``"adamw"`` or ``"lars"``.
        lr: base learning rate, already scaled (no batch-size rule is applied).
        weight_decay: decay of weight matrices/kernels (never of biases or norms).
        momentum: SGD / LARS momentum.
        betas: AdamW betas.
        eps: AdamW epsilon.
        trust_coefficient: LARS eta.
        warmup_steps: linear warm-up from 0 over this many steps.
        min_lr: learning rate at the end of the cosine (``<= lr``).
    """

    name: OptimName = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-6
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    trust_coefficient: float = 0.001
    warmup_steps: int = 0
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        allowed = list(typing.get_args(OptimName))
        if self.name not in allowed:
            raise ConfigError(f"OptimConfig.name: {self.name!r} is not one of {allowed}")
        self.lr = _number("lr", self.lr, 0.0, low_open=True)
        self.weight_decay = _number("weight_decay", self.weight_decay, 0.0)
        self.momentum = _number("momentum", self.momentum, 0.0, 1.0, high_open=True)
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise ConfigError(f"OptimConfig.betas must be two numbers, got {self.betas!r}")
        self.betas = tuple(_number(f"betas[{i}]", b, 0.0, 1.0, high_open=True) for i, b in enumerate(self.betas))
        self.eps = _number("eps", self.eps, 0.0, low_open=True)
        self.trust_coefficient = _number("trust_coefficient", self.trust_coefficient, 0.0, low_open=True)
        w = self.warmup_steps
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise ConfigError(f"OptimConfig.warmup_steps must be an int >= 0, got {w!r}")
        self.min_lr = _number("min_lr", self.min_lr, 0.0, self.lr)


def param_groups(model: nn.Module, weight_decay: float, exclude_norm_and_bias: bool) -> list[dict]:
    """Split the trainable parameters of ``model`` into optimiser groups.

    Args:
        model: parameters with ``requires_grad=False`` (e.g. momentum encoders) are skipped.
        weight_decay: decay of the decayed group.
        exclude_norm_and_bias: put every parameter with ``ndim <= 1`` (biases, norm
            scales/shifts) in a second group with ``weight_decay = 0`` and
            ``"exclude": True``.

    Returns:
        Non-empty groups ``{"params", "weight_decay", "exclude"}`` (decayed first).
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"param_groups needs an nn.Module, got {type(model).__name__}")
    decay: list[Tensor] = []
    keep: list[Tensor] = []
    for p in model.parameters():
        if p.requires_grad:
            (keep if exclude_norm_and_bias and p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": float(weight_decay), "exclude": False},
              {"params": keep, "weight_decay": 0.0, "exclude": True}]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameters to optimise")
    return groups


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio (You et al., 2017).

    Per parameter ``w`` with gradient ``g`` in a group with ``trust=True``::

        ratio = eta * ||w|| / (||g|| + wd * ||w||)   (1 when ||w|| or ||g|| is 0)
        d = ratio * (g + wd * w)

    and in a group with ``trust=False`` simply ``d = g + wd * w``. Then, like
    ``torch.optim.SGD``: ``buf = d`` on the first step, else ``buf = momentum * buf + d``;
    ``w -= lr * buf``.

    Args:
        params: parameters or groups (groups may set ``trust``, ``weight_decay``, ...).
        lr: learning rate (> 0).
        momentum: in [0, 1).
        weight_decay: >= 0.
        trust_coefficient: eta (> 0).
        trust: apply the trust ratio (default for groups that do not say).
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001, trust: bool = True) -> None:
        for key, value, ok in (("lr", lr, lr > 0), ("momentum", momentum, 0 <= momentum < 1),
                               ("weight_decay", weight_decay, weight_decay >= 0),
                               ("trust_coefficient", trust_coefficient, trust_coefficient > 0)):
            if not ok:
                raise ValueError(f"LARS {key} is out of range: {value!r}")
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                    "trust_coefficient": trust_coefficient, "trust": trust}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One update of every parameter that has a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            wd, eta, momentum = group["weight_decay"], group["trust_coefficient"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad.add(p, alpha=wd) if wd != 0 else p.grad.clone()
                if group["trust"]:
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(p.grad)
                    ratio = torch.where((w_norm > 0) & (g_norm > 0),
                                        eta * w_norm / (g_norm + wd * w_norm), torch.ones_like(w_norm))
                    d.mul_(ratio)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = d
                else:
                    state["momentum_buffer"].mul_(momentum).add_(d)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """The optimiser ``config.name`` over ``model``'s trainable parameters.

    Biases and norm parameters (``ndim <= 1``) get no weight decay; under LARS they are
    also excluded from the trust ratio (their group has ``trust=False``).
    """
    if not isinstance(config, OptimConfig):
        raise ValueError(f"build_optimizer needs an OptimConfig, got {type(config).__name__}")
    groups = param_groups(model, config.weight_decay, exclude_norm_and_bias=True)
    if config.name == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    if config.name == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps)
    if config.name == "lars":
        for group in groups:
            group["trust"] = not group["exclude"]
        return LARS(groups, lr=config.lr, momentum=config.momentum, trust_coefficient=config.trust_coefficient)
    raise ConfigError(f"OptimConfig.name: unknown optimiser {config.name!r} (allowed: sgd, adamw, lars)")


def lr_factor(step: int, config: OptimConfig, total_steps: int) -> float:
    """Multiplier of ``config.lr`` at ``step``: ``step / warmup_steps`` during warm-up, then
    ``(min_lr + (lr - min_lr) * (1 + cos(pi * t)) / 2) / lr`` with
    ``t = (step - warmup_steps) / (total_steps - warmup_steps)`` clamped to [0, 1]."""
    if step < config.warmup_steps:
        return step / config.warmup_steps
    t = min(1.0, (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
    lr = config.min_lr + (config.lr - config.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
    return lr / config.lr


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0 over ``warmup_steps``, then cosine from ``lr`` to ``min_lr`` at
    ``total_steps`` (constant ``min_lr`` after). Call ``scheduler.step()`` once per step.

    Raises:
        ConfigError: ``total_steps < 1`` or ``warmup_steps > total_steps``.
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ConfigError(f"total_steps must be an int >= 1, got {total_steps!r}")
    if config.warmup_steps > total_steps:
        raise ConfigError(f"OptimConfig.warmup_steps={config.warmup_steps} exceeds total_steps={total_steps}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config, total_steps))
