"""Contrastive losses as pure functions on embeddings.

* :func:`nt_xent` - SimCLR's normalised-temperature cross entropy, with the negatives
  gathered across ranks (gradient-carrying) so a distributed run optimises the same
  objective as one process holding the whole batch.
* :func:`info_nce` - MoCo-v2's InfoNCE against a queue of negatives (the method keeps one
  queue per descriptor, see :mod:`core.queues`).
* :func:`mocov3_loss` - MoCo-v3's symmetrised loss with keys gathered across ranks.

All of them L2-normalise their inputs, so callers pass raw projector/predictor outputs.
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor

from core.distributed import all_gather_no_grad, all_gather_with_grad, rank


def _check_temperature(temperature: float) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    return float(temperature)


def _check_embeddings(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (batch, dim), got {tuple(x.shape)}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must have at least one row and one column, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def _check_same_shape(names: tuple[str, ...], tensors: tuple[Tensor, ...]) -> None:
    for name, x in zip(names, tensors):
        _check_embeddings(name, x)
    shapes = {tuple(x.shape) for x in tensors}
    if len(shapes) != 1:
        listed = ", ".join(f"{n}={tuple(x.shape)}" for n, x in zip(names, tensors))
        raise ValueError(f"{', '.join(names)} must have the same shape, got {listed}")


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.5, gather: bool = True) -> Tensor:
    """SimCLR's NT-Xent loss over the (global) batch of 2N embeddings.

    Each of the 2n local embeddings is an anchor. Its positive is the other view of the
    same sample; its negatives are all remaining 2N - 2 embeddings of the global batch
    (its own similarity is excluded). With ``gather=True`` under ``torch.distributed`` the
    embeddings of all ranks are gathered with gradient, so the sum of the ranks' losses
    equals ``world_size`` times the single-process full-batch loss: averaging gradients
    over ranks (what DistributedDataParallel does) reproduces the full-batch gradient.

    Args:
        z1: ``(n, D)`` local embeddings of the first view.
        z2: ``(n, D)`` local embeddings of the second view (row i pairs with ``z1[i]``).
        temperature: softmax temperature, > 0.
        gather: contrast against every rank's embeddings (True) or only the local ones.

    Returns:
        Scalar: mean cross entropy over the 2n local anchors.

    Raises:
        ValueError: shapes differ or are not ``(n, D)`` with n >= 1, or temperature <= 0.
    """
    _check_same_shape(("z1", "z2"), (z1, z2))
    t = _check_temperature(temperature)
    if not isinstance(gather, bool):
        raise ValueError(f"gather must be a bool, got {gather!r}")
    n = z1.shape[0]
    local = F.normalize(torch.cat([z1, z2], dim=0), dim=1)  # (2n, D): [z1; z2]
    keys = all_gather_with_grad(local) if gather else local  # (2N, D): [z1_r; z2_r] per rank
    offset = 2 * n * (rank() if gather else 0)  # global row of local[0]
    if keys.shape[0] < 2:  # 2N >= 2 always holds for n >= 1; guard against odd gathers
        raise ValueError(f"nt_xent needs at least 2 embeddings in total, got {keys.shape[0]}")
    logits = local @ keys.T / t  # (2n, 2N)
    rows = torch.arange(2 * n, device=local.device)
    self_index = rows + offset
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[rows, self_index] = True
    logits = logits.masked_fill(is_self, float("-inf"))
    positive = offset + (rows + n) % (2 * n)  # z1[i] <-> z2[i] inside this rank's block
    return F.cross_entropy(logits, positive)


def info_nce(q: Tensor, k: Tensor, queue: Tensor, temperature: float = 0.2,
             extra_negatives: Tensor | None = None) -> Tensor:
    """MoCo-v2 InfoNCE: each query against its positive key and a queue of negatives.

    ``k`` and ``queue`` are treated as constants (detached): in MoCo they come from the
    momentum encoder and from earlier steps.

    Args:
        q: ``(B, D)`` queries (gradient flows to them).
        k: ``(B, D)`` positive keys, row i for ``q[i]``.
        queue: ``(L, D)`` negatives; ``L = 0`` leaves only the positive logit.
        temperature: softmax temperature, > 0.
        extra_negatives: ``(B, M, D)`` further negatives of each query alone (LooC: the
            same instance's keys from other embedding spaces), detached like ``k``.

    Returns:
        Scalar: mean cross entropy with the positive at logit index 0.

    Raises:
        ValueError: shape mismatches, non-2-D inputs, or temperature <= 0.
    """
    _check_same_shape(("q", "k"), (q, k))
    t = _check_temperature(temperature)
    if not isinstance(queue, Tensor) or queue.dim() != 2 or queue.shape[1] != q.shape[1]:
        got = tuple(queue.shape) if isinstance(queue, Tensor) else type(queue).__name__
        raise ValueError(f"queue must have shape (L, {q.shape[1]}) to match q, got {got}")
    q = F.normalize(q, dim=1)
    k = F.normalize(k.detach(), dim=1)
    negatives = F.normalize(queue.detach().to(dtype=q.dtype, device=q.device), dim=1)
    positive = (q * k).sum(dim=1, keepdim=True)  # (B, 1)
    parts = [positive]
    if extra_negatives is not None:
        if (not isinstance(extra_negatives, Tensor) or extra_negatives.dim() != 3
                or extra_negatives.shape[0] != q.shape[0] or extra_negatives.shape[2] != q.shape[1]):
            got = tuple(extra_negatives.shape) if isinstance(extra_negatives, Tensor) else type(extra_negatives).__name__
            raise ValueError(f"extra_negatives must have shape ({q.shape[0]}, M, {q.shape[1]}), got {got}")
        own = F.normalize(extra_negatives.detach().to(dtype=q.dtype), dim=2)
        parts.append(torch.einsum("bd,bmd->bm", q, own))  # (B, M)
    logits = torch.cat([*parts, q @ negatives.T], dim=1) / t  # (B, 1 + M + L)
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, labels)


def _mocov3_ctr(q: Tensor, k: Tensor, t: float) -> Tensor:
    """One direction of the MoCo-v3 loss; ``q``, ``k``: ``(n, D)``; returns a scalar."""
    q = F.normalize(q, dim=1)
    k_all = all_gather_no_grad(F.normalize(k.detach(), dim=1))  # (N, D)
    logits = q @ k_all.T / t  # (n, N)
    labels = torch.arange(q.shape[0], device=q.device) + rank() * q.shape[0]
    return F.cross_entropy(logits, labels) * (2.0 * t)


def mocov3_loss(q1: Tensor, q2: Tensor, k1: Tensor, k2: Tensor, temperature: float = 0.2) -> Tensor:
    """Symmetrised MoCo-v3 loss ``ctr(q1, k2) + ctr(q2, k1)``.

    ``ctr(q, k)`` L2-normalises queries and keys (MoCo-v3 needs it; without it the logits
    are unbounded), gathers the keys of all ranks without gradient, and scores each local
    query against all N keys with its own key (global row ``rank * n + i``) as the
    positive. Following MoCo-v3, each cross entropy is multiplied by ``2 * temperature``,
    which keeps the gradient scale roughly independent of the temperature. Each rank's
    loss averages over its own queries, so the mean over ranks equals the single-process
    loss on the whole batch.

    Args:
        q1: ``(n, D)`` predictor outputs for view 1.
        q2: ``(n, D)`` predictor outputs for view 2.
        k1: ``(n, D)`` momentum-encoder outputs for view 1 (treated as constants).
        k2: ``(n, D)`` momentum-encoder outputs for view 2 (treated as constants).
        temperature: softmax temperature, > 0.

    Returns:
        Scalar loss.

    Raises:
        ValueError: the four inputs are not ``(n, D)`` of one shape, or temperature <= 0.
    """
    _check_same_shape(("q1", "q2", "k1", "k2"), (q1, q2, k1, k2))
    t = _check_temperature(temperature)
    return _mocov3_ctr(q1, k2, t) + _mocov3_ctr(q2, k1, t)


def augself_loss(predictions: dict[str, Tensor], targets1: dict[str, Tensor], targets2: dict[str, Tensor],
                 weights: dict[str, float]) -> tuple[Tensor, dict[str, Tensor]]:
    """AugSelf's auxiliary loss: weighted mean squared error of predicted parameter differences.

    Args:
        predictions: name -> ``(B, d)`` predicted ``targets1[name] - targets2[name]``.
        targets1, targets2: name -> ``(B, d)`` augmentation parameters of view 1 and view 2.
        weights: name -> weight; exactly the names to use (each must be in all three maps).

    Returns:
        ``(sum_n w_n * mse_n, {name: mse_n detached})``.

    Raises:
        ValueError: a weighted name missing from an input, or shapes that differ.
    """
    if not weights:
        raise ValueError("augself_loss needs at least one weighted augmentation")
    total: Tensor | None = None
    parts: dict[str, Tensor] = {}
    for name, weight in weights.items():
        for where, table in (("predictions", predictions), ("targets1", targets1), ("targets2", targets2)):
            if name not in table:
                raise ValueError(f"augself_loss: {where} has no entry {name!r} (has {sorted(table)})")
        diff = (targets1[name] - targets2[name]).to(predictions[name].dtype)
        if predictions[name].shape != diff.shape:
            raise ValueError(f"augself_loss: prediction for {name!r} has shape {tuple(predictions[name].shape)}, "
                             f"target difference {tuple(diff.shape)}")
        mse = F.mse_loss(predictions[name], diff.detach())
        parts[name] = mse.detach().float()
        total = weight * mse if total is None else total + weight * mse
    assert total is not None
    return total, parts
