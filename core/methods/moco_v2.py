"""MoCo-v2 with one queue of negatives per descriptor."""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from core.encoders.base import InvarianceEncoder
from core.losses import info_nce
from core.methods.base import MethodConfig, check_step
from core.methods.moco import MomentumMethod
from core.queues import DescriptorQueues


class MoCoV2(MomentumMethod):
    """MoCo-v2: query ``projector(encoder(view1, d))`` against key
    ``momentum_projector(momentum_encoder(view2, d))`` and the queue of descriptor ``d``.

    One direction, as in the original MoCo-v2 (view1 gives queries, view2 keys), so each
    step enqueues exactly the global batch of keys. Keys and queries under different
    descriptors come from different feature extractors, so every binary descriptor has
    its own queue (:class:`core.queues.DescriptorQueues`, width ``proj_out``, length
    ``queue_size``, initial keys seeded by ``seed``). After the loss is computed, the
    L2-normalised keys of all ranks are written into ``queue[d]`` (the loss used a copy of
    the queue, so the backward pass is unaffected). The key encoder's BatchNorm follows
    ``config.batch_norm`` (see :class:`core.methods.moco.MomentumMethod`).

    Args:
        encoder: the invariance encoder (``self.encoder``).
        config: uses ``temperature``, ``proj_*``, ``queue_size``, ``momentum``, ``batch_norm``.
        seed: seeds the initial queues and the shuffle-BN permutations.
    """

    def __init__(self, encoder: InvarianceEncoder, config: MethodConfig, seed: int = 0) -> None:
        super().__init__(encoder, config, seed)
        self.queues = DescriptorQueues(encoder.space, dim=config.proj_out, size=config.queue_size, seed=seed)

    def forward(self, view1: Tensor, view2: Tensor, descriptor: Tensor, step: int
                ) -> tuple[Tensor, dict[str, Tensor]]:
        """InfoNCE loss of one step; enqueues the step's keys into ``queue[descriptor]``.

        Args:
            view1: ``(B, C, H, W)`` query inputs.
            view2: ``(B, C, H, W)`` key inputs.
            descriptor: ``(K,)`` binary descriptor of the step.
            step: global step (seeds shuffle-BN).

        Returns:
            ``(loss, {"loss", "acc"})``; ``acc`` is the fraction of queries whose positive
            logit is the largest among ``1 + queue_size`` logits.
        """
        d = self.check_inputs(view1, view2, descriptor, step)
        return self.query_loss(self.encoder(view1, d), view2, d, step)

    def query_loss(self, features: Tensor, view2: Tensor, d: Tensor, step: int) -> tuple[Tensor, dict[str, Tensor]]:
        """InfoNCE of query features ``(B, num_features)`` against the keys of ``view2``;
        enqueues the keys. Returns ``(loss, {"loss", "acc"})`` as :meth:`forward`."""
        q = self.projector(features)  # (B, proj_out)
        k, k_all = self.momentum_keys(view2, d, step)
        if self.queues.device != q.device:
            self.queues.to(q.device)
        negatives = self.queues.get(d)  # (L, proj_out) copy
        loss = info_nce(q, k, negatives, temperature=self.config.temperature)
        with torch.no_grad():
            qn, kn = F.normalize(q.float(), dim=1), F.normalize(k.float(), dim=1)
            positive = (qn * kn).sum(dim=1, keepdim=True)
            logits = torch.cat([positive, qn @ F.normalize(negatives.float(), dim=1).T], dim=1)
            acc = (logits.argmax(dim=1) == 0).float().mean()
            self.queues.enqueue(d, F.normalize(k_all.float(), dim=1))
        return loss, {"loss": loss.detach().float(), "acc": acc}

    def on_step_end(self, step: int, total_steps: int) -> None:
        """EMA update of the key branch with the constant ``config.momentum``."""
        check_step(step, total_steps)
        self.momentum_update(self.config.momentum)

    def extra_state(self) -> dict[str, Any]:
        """``{"queues": DescriptorQueues.state_dict()}`` (plain data and tensors)."""
        return {"queues": self.queues.state_dict()}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore the queues saved by :meth:`extra_state`.

        Raises:
            ValueError: ``state`` is not ``{"queues": ...}`` or the queues do not match
                (space, dim, size, seed, shapes).
        """
        if not isinstance(state, Mapping) or set(state) != {"queues"}:
            got = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"MoCoV2 extra state must have exactly the key 'queues', got {got}")
        self.queues.load_state_dict(state["queues"])
