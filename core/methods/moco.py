"""Momentum-encoder machinery shared by MoCo-v2 and MoCo-v3, including shuffle-BN.

The key branch is a frozen deep copy of the encoder and projector (``momentum_encoder``,
``momentum_projector``), updated after every optimiser step by an exponential moving
average of the online weights. Its parameters are ordinary submodule state, so they are
part of ``state_dict()`` and of every checkpoint. BatchNorm running statistics of the key
branch are its own (computed by its forward passes), as in MoCo; only parameters follow
the EMA.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import Tensor

from core.distributed import all_gather_no_grad, rank, world_size
from core.encoders.base import InvarianceEncoder
from core.methods.base import Method, MethodConfig, build_projector

_SHUFFLE_SALT = 0x5348_5546_4C45  # keeps shuffle-BN streams apart from other (seed, step) uses
_SEED_MODULUS = 2**63


def shuffle_permutation(n: int, seed: int, step: int) -> Tensor:
    """The shuffle-BN permutation of ``n`` gathered samples at ``step``.

    Drawn from a ``torch.Generator`` seeded by ``(seed, step)`` only, so every rank draws
    the same permutation without communicating.

    Returns:
        ``(n,)`` int64 CPU permutation of ``0..n-1``.
    """
    generator = torch.Generator().manual_seed((seed * 2**32 + step + _SHUFFLE_SALT) % _SEED_MODULUS)
    return torch.randperm(n, generator=generator)


def ema_update_(targets: list[Tensor], sources: list[Tensor], momentum: float) -> None:
    """In place ``t = momentum * t + (1 - momentum) * s`` for every pair (no autograd)."""
    with torch.no_grad():
        torch._foreach_mul_(targets, momentum)
        torch._foreach_add_(targets, torch._foreach_mul([s.detach() for s in sources], 1.0 - momentum))


def cosine_momentum(base: float, step: int, total_steps: int) -> float:
    """MoCo-v3/BYOL schedule: ``1 - (1 - base) * (1 + cos(pi * t)) / 2`` with
    ``t = min(step, total_steps) / total_steps``, i.e. ``base`` at step 0 and 1 at the end."""
    t = min(max(step, 0), total_steps) / total_steps
    return 1.0 - (1.0 - base) * (1.0 + math.cos(math.pi * t)) / 2.0


class MomentumMethod(Method):
    """A method with an online encoder + projector and their momentum (key) copies.

    ``config.batch_norm`` controls the key branch's BatchNorm:

    * ``"shuffle"``: shuffle-BN. The key inputs of all ranks are gathered, permuted with
      :func:`shuffle_permutation` ``(seed, step)`` (the same on every rank), each rank
      encodes its slice of the permuted batch, and the gathered keys are un-permuted, so a
      sample's key is normalised with statistics of other samples than its query. In a
      single process there is nothing to shuffle across and it behaves exactly like
      ``"local"`` (a permutation inside one BatchNorm batch changes nothing).
    * ``"sync"``: the engine converts every BatchNorm of the method to SyncBatchNorm
      (``nn.SyncBatchNorm.convert_sync_batchnorm``) before wrapping it in DDP; the method
      itself does nothing special.
    * ``"local"``: plain per-rank BatchNorm.

    Attributes:
        last_permutation: the ``(W * B,)`` CPU permutation used by the last shuffled key
            pass, or ``None`` when no shuffle happened (kept for inspection and tests).
    """

    def __init__(self, encoder: InvarianceEncoder, config: MethodConfig, seed: int = 0) -> None:
        super().__init__(encoder, config, seed)
        self.projector = build_projector(encoder, config)
        self.momentum_encoder = copy.deepcopy(encoder)
        self.momentum_projector = copy.deepcopy(self.projector)
        for p in list(self.momentum_encoder.parameters()) + list(self.momentum_projector.parameters()):
            p.requires_grad_(False)
        self.last_permutation: Tensor | None = None

    def _parameter_pairs(self) -> tuple[list[Tensor], list[Tensor]]:
        online = list(self.encoder.parameters()) + list(self.projector.parameters())
        target = list(self.momentum_encoder.parameters()) + list(self.momentum_projector.parameters())
        return target, online

    def momentum_update(self, momentum: float) -> None:
        """EMA of the key branch: ``p_k = momentum * p_k + (1 - momentum) * p_q`` (parameters only)."""
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1], got {momentum}")
        target, online = self._parameter_pairs()
        ema_update_(target, online, momentum)

    def _key_branch(self, x: Tensor, descriptor: Tensor) -> Tensor:
        return self.momentum_projector(self.momentum_encoder(x, descriptor))

    @torch.no_grad()
    def momentum_keys(self, view: Tensor, descriptor: Tensor, step: int) -> tuple[Tensor, Tensor]:
        """Keys of ``view`` from the momentum branch, with shuffle-BN when configured.

        Args:
            view: ``(B, C, H, W)`` local key inputs (same B on every rank).
            descriptor: ``(K,)`` descriptor of the step.
            step: global step (seeds the shuffle permutation).

        Returns:
            ``(local, global)``: this rank's keys ``(B, proj_out)`` and every rank's keys
            ``(W * B, proj_out)`` in rank order (``global`` is ``local`` in one process).
            Raw projector outputs, not normalised.
        """
        size = world_size()
        if self.config.batch_norm != "shuffle" or size == 1:
            self.last_permutation = None
            local = self._key_branch(view, descriptor)
            return local, all_gather_no_grad(local)
        batch = view.shape[0]
        inputs = all_gather_no_grad(view)  # (W*B, C, H, W)
        perm = shuffle_permutation(inputs.shape[0], self.seed, step)
        self.last_permutation = perm
        perm = perm.to(view.device)
        mine = slice(rank() * batch, (rank() + 1) * batch)
        shuffled = all_gather_no_grad(self._key_branch(inputs[perm[mine]], descriptor))  # row j: key of inputs[perm[j]]
        keys = torch.empty_like(shuffled)
        keys[perm] = shuffled  # un-permute: row perm[j] <- key of inputs[perm[j]]
        return keys[mine], keys
