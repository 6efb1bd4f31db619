"""Small helpers around ``torch.distributed`` used by the contrastive losses.

Every helper degrades to a no-op in a single process (``torch.distributed`` unavailable,
not initialised, or a world of size 1), so the losses are written once and run the same
way under ``python train.py`` and under ``torchrun``.

All ranks must call the gather helpers together and with tensors of the same shape:
``torch.distributed.all_gather`` has no notion of ragged batches (use a sampler with
``drop_last=True`` so every rank holds the same number of samples).
"""
from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True when ``torch.distributed`` is available and a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes in the default group, 1 when not distributed."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """Rank of this process in the default group, 0 when not distributed."""
    return dist.get_rank() if is_distributed() else 0


def _check_gatherable(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1:
        raise ValueError(f"{name} expects a tensor of shape (n, ...), got a 0-d tensor")


def all_gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every rank along dim 0, keeping the autograd graph.

    The backward pass hands each rank the gradient of its own slice summed over the
    contributions of all ranks (every rank's loss may use every rank's keys). This relies
    on ``torch.distributed.nn.functional.all_gather`` whose ``_AllGather.backward`` does a
    reduce-scatter with ``ReduceOp.SUM`` (NCCL/XCCL) or an all-to-all followed by a sum
    over ranks (gloo and other backends).

    Args:
        x: local tensor of shape ``(n, D)`` (any trailing shape works); ``n`` must be the
            same on every rank.

    Returns:
        ``(world_size * n, D)`` with rank ``r``'s rows at ``[r * n, (r + 1) * n)``; in a
        single process ``x`` itself (no copy).

    Raises:
        ValueError: ``x`` is not a tensor with at least one dimension.
    """
    _check_gatherable(x, "all_gather_with_grad")
    if world_size() == 1:
        return x
    # Imported lazily: the module only exists in builds with distributed support.
    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():
        # torch >= 2.6 marks the autograd-aware collectives as deprecated in favour of
        # _functional_collectives, whose all_gather has no backward; keep the old one.
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*all_gather.*")
        parts = all_gather(x)
    return torch.cat(parts, dim=0)


@torch.no_grad()
def all_gather_no_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every rank along dim 0 without gradient (momentum keys).

    Args:
        x: local tensor of shape ``(n, D)``; ``n`` must be the same on every rank.

    Returns:
        ``(world_size * n, D)`` in rank order, detached; in a single process ``x`` itself
        (no copy; detach it yourself if it carries a graph).

    Raises:
        ValueError: ``x`` is not a tensor with at least one dimension.
    """
    _check_gatherable(x, "all_gather_no_grad")
    size = world_size()
    if size == 1:
        return x
    x = x.contiguous()
    parts = [torch.empty_like(x) for _ in range(size)]
    dist.all_gather(parts, x)
    return torch.cat(parts, dim=0)
