"""LooC: Leave-one-out Contrastive Learning (Xiao et al., 2021), for any augmentation space.

A shared backbone feeds ``n + 1`` projection heads, each an embedding space with its own
MoCo queue. For a query view ``q`` the engine renders (``core.engine.views``, input kind
``"looc"``) a key ``k_0`` with every augmentation parameter resampled and, for each of the
``n`` entries ``j`` in ``looc_entries``, a key ``k_j`` that reuses the query's parameters
for entry ``j``'s augmentations and resamples the rest.

* Head 0 is invariant to everything: every key of the instance is a positive
  (InfoNCE of ``q`` with each ``k_m`` against queue 0, averaged over ``m``).
* Head ``j`` is sensitive to entry ``j``: its positive is ``k_j`` (same entry-``j``
  parameters as the query); the instance's other keys, which differ from the query in
  entry ``j``, are extra negatives next to queue ``j``.

The loss is the mean over heads. LooC transfers the backbone feature (use a plain
``resnet18``/``resnet50`` encoder); LooC++ uses ``looc_resnet18``/``looc_resnet50``, whose
last stage is repeated per head, and transfers the concatenation of every branch.
Pre-training keeps every augmentation on: the descriptor must be all ones
(``descriptor.mode: fixed``).
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.encoders.base import InvarianceEncoder
from core.heads import projector
from core.invariance import InvarianceSpace
from core.losses import info_nce
from core.methods.base import MethodConfig
from core.methods.moco_v2 import MoCoV2
from core.queues import DescriptorQueues


def looc_entries(config: MethodConfig, space: InvarianceSpace) -> list[str]:
    """``config.looc_entries``, or every entry of the space when None.

    Entries may be space entries or any augmentation group the modality knows
    (``Modality.entry_augmentations`` resolves them; the engine checks them at start-up).
    """
    return list(space.names) if config.looc_entries is None else list(config.looc_entries)


class LooC(MoCoV2):
    """LooC / LooC++ with ``len(looc_entries) + 1`` heads and one queue per head.

    Momentum update, queue checkpointing and shuffle-BN come from :class:`MoCoV2`; the
    queues are keyed by the heads (``head_space``) instead of the descriptor.

    Args:
        encoder: a plain encoder (LooC) or a ``looc_resnet*`` with one branch per head (LooC++).
        config: uses ``looc_entries``, ``temperature``, ``proj_*``, ``queue_size``,
            ``momentum``, ``batch_norm``.
        seed: seeds the initial queues and the shuffle-BN permutations.

    Attributes:
        looc_entries: the space entries with a head of their own (head ``j + 1`` for entry ``j``).
        head_space: names of the heads, ``["all", *looc_entries]``; its one-hot descriptors key
            the per-head queues.

    Entries: space entries or modality groups (audio ``frequency``/``time`` on the 7-entry
    space), each resolved to augmentations by ``Modality.entry_augmentations``.
    """

    inputs = "looc"

    def __init__(self, encoder: InvarianceEncoder, config: MethodConfig, seed: int = 0) -> None:
        super().__init__(encoder, config, seed)
        self.looc_entries = looc_entries(config, encoder.space)
        heads = len(self.looc_entries) + 1
        branches = getattr(encoder, "branches", None)
        if branches is not None and branches != heads:
            raise ValueError(f"LooC++: encoder {encoder.name} has {branches} branches but LooC has {heads} heads "
                             f"(all + {self.looc_entries}); set encoder.kwargs.branches: {heads}")
        width = encoder.num_features // branches if branches else encoder.num_features
        self.projector = nn.ModuleList(
            projector(width, hidden_dim=config.proj_hidden, out_dim=config.proj_out, num_layers=config.proj_layers)
            for _ in range(heads))
        self.momentum_projector = copy.deepcopy(self.projector)
        for p in self.momentum_projector.parameters():
            p.requires_grad_(False)
        self.head_space = InvarianceSpace(["all", *self.looc_entries], min_active=1)
        self.queues = DescriptorQueues(self.head_space, dim=config.proj_out, size=config.queue_size, seed=seed)

    # ------------------------------------------------------------ embeddings
    def _branches(self, encoder: InvarianceEncoder, x: Tensor, d: Tensor) -> list[Tensor]:
        if hasattr(encoder, "forward_branches"):
            return encoder.forward_branches(x, d)
        return [encoder(x, d)] * len(self.projector)

    def _embed(self, encoder: InvarianceEncoder, heads: nn.ModuleList, x: Tensor, d: Tensor) -> list[Tensor]:
        """Head ``h``'s projection ``(B, proj_out)`` of ``x`` for every head."""
        return [head(f) for head, f in zip(heads, self._branches(encoder, x, d))]

    def _key_branch(self, x: Tensor, descriptor: Tensor) -> Tensor:
        """Every head's key, concatenated: ``(N, heads * proj_out)``."""
        return torch.cat(self._embed(self.momentum_encoder, self.momentum_projector, x, descriptor), dim=1)

    def _head(self, h: int) -> Tensor:
        return self.head_space.from_active([self.head_space.names[h]])

    # -------------------------------------------------------------- training
    def forward(self, view1: Tensor, view2: Tensor, descriptor: Tensor, step: int,
                keys: Sequence[Tensor] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """LooC loss of one step; enqueues each head's positive keys into its queue.

        Args:
            view1: ``(B, C, H, W)`` query views.
            view2: ``(B, C, H, W)`` keys with every parameter resampled.
            descriptor: ``(K,)``, all ones.
            step: global step (seeds shuffle-BN).
            keys: ``n`` tensors ``(B, C, H, W)``; ``keys[j]`` shares the query's parameters
                of ``looc_entries[j]``.

        Returns:
            ``(loss, logs)``: ``loss`` is the mean over heads; logs hold ``loss_<head>`` and
            ``acc`` (head 0's top-1 against its queue).
        """
        d = self.check_inputs(view1, view2, descriptor, step)
        n = len(self.looc_entries)
        if keys is None or len(keys) != n or any(k.shape != view1.shape for k in keys):
            got = "none" if keys is None else [tuple(k.shape) for k in keys]
            raise ValueError(f"LooC needs {n} key views of shape {tuple(view1.shape)} (one per entry "
                             f"{self.looc_entries}), got {got}")
        if not bool((d == 1).all()):
            raise ValueError(f"LooC pre-trains with every augmentation on; got descriptor "
                             f"[{self.encoder.space.describe(d)}] (set descriptor.mode: fixed)")
        batch, heads, width = view1.shape[0], n + 1, self.config.proj_out
        queries = self._embed(self.encoder, self.projector, view1, d)
        local, everyone = self.momentum_keys(torch.cat([view2, *keys]), d, step)
        k = local.view(n + 1, batch, heads, width)  # k[m, :, h]: key of view m in head h
        if self.queues.device != view1.device:
            self.queues.to(view1.device)
        queues = [self.queues.get(self._head(h).to(view1.device)) for h in range(heads)]
        per_head = [torch.stack([info_nce(queries[0], k[m, :, 0], queues[0], self.config.temperature)
                                 for m in range(n + 1)]).mean()]
        for j in range(1, heads):
            others = [m for m in range(n + 1) if m != j]
            extra = k[others, :, j].transpose(0, 1)  # (B, n, proj_out)
            per_head.append(info_nce(queries[j], k[j, :, j], queues[j], self.config.temperature,
                                     extra_negatives=extra))
        loss = torch.stack(per_head).mean()
        with torch.no_grad():
            gathered = everyone.view(-1, n + 1, batch, heads, width)
            for h in range(heads):
                self.queues.enqueue(self._head(h), F.normalize(gathered[:, h, :, h].reshape(-1, width).float(), dim=1))
            q0, k0 = F.normalize(queries[0].float(), dim=1), F.normalize(k[0, :, 0].float(), dim=1)
            logits = torch.cat([(q0 * k0).sum(1, keepdim=True), q0 @ F.normalize(queues[0].float(), dim=1).T], 1)
            acc = (logits.argmax(dim=1) == 0).float().mean()
        logs = {"loss": loss.detach().float(), "acc": acc}
        logs.update({f"loss_{name}": value.detach().float() for name, value in zip(self.head_space.names, per_head)})
        return loss, logs
