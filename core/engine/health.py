"""Numerical health of a pre-training run: when the loop must stop as diverged.

The model *state* is every floating-point parameter and buffer of the method (BatchNorm
running statistics included: with a far too large learning rate they reach 1e28 while the
parameters and the normalised contrastive loss stay moderate). A step may update the
weights only when its loss and the global L2 norm of its gradients are finite: both are
checked after ``backward`` and before the optimiser step, so a non-finite gradient never
reaches the weights. The state a step starts from must be healthy too: its global L2 norm
(computed in float64, so it overflows only if an entry is not finite) is finite and at
most ``train.max_param_growth`` times its value at initialisation. The state a step
produced is therefore checked at the next step's check and, on a checkpoint step, before
the checkpoint is written; the checkpoint writer itself refuses any non-finite tensor
(:mod:`core.engine.checkpoint`). The per-step checks cost two fused norm reductions and
share the loss's one device sync.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import Tensor

from core.errors import RunError


class NonFiniteLossError(RunError, RuntimeError):
    """The loss became NaN or infinite; the message names the step and the descriptor."""


class TrainingDivergedError(NonFiniteLossError):
    """Gradients or parameters became non-finite, or the parameters diverged; the message
    names the step, its descriptor and the last good checkpoint."""


def global_norm(tensors: Iterable[Tensor]) -> Tensor:
    """The L2 norm of all floating-point ``tensors`` together, as a float64 0-d tensor on the
    first tensor's device (no device sync); ``nan`` or ``inf`` only when an entry is."""
    groups: dict[torch.device, list[Tensor]] = {}
    for t in tensors:
        if t.is_floating_point() and t.numel():
            groups.setdefault(t.device, []).append(t.detach())
    if not groups:
        return torch.zeros((), dtype=torch.float64)
    first = next(iter(groups))
    norms = []
    for items in groups.values():
        try:
            parts = torch._foreach_norm(items, 2, dtype=torch.float64)  # one fused kernel per device
        except (RuntimeError, TypeError):
            parts = [torch.linalg.vector_norm(t, dtype=torch.float64) for t in items]
        norms += [n.to(first) for n in parts]
    return torch.linalg.vector_norm(torch.stack(norms))


def model_state(module: torch.nn.Module) -> list[Tensor]:
    """The floating-point parameters and buffers of ``module`` (what :class:`Health` checks)."""
    return [*module.parameters(), *(b for b in module.buffers() if b.is_floating_point())]


class Health:
    """The divergence criterion of one run.

    Args:
        initial: the global norm of the model state at initialisation (before any checkpoint
            is restored).
        max_growth: ``train.max_param_growth``; None = only finiteness.
    """

    def __init__(self, initial: float, max_growth: float | None) -> None:
        self.initial, self.max_growth = float(initial), max_growth

    def param_fault(self, norm: float) -> str | None:
        """What is wrong with a model state of global norm ``norm``, or None when it is healthy."""
        if not math.isfinite(norm):
            return f"parameters or buffers not finite (global norm {norm})"
        if self.max_growth is not None and norm > self.max_growth * self.initial:
            return (f"parameters diverged (global norm of parameters and buffers {norm:.3g}, "
                    f"{norm / max(self.initial, 1e-30):.3g} times its initial {self.initial:.3g}; "
                    f"train.max_param_growth={self.max_growth:g})")
        return None
