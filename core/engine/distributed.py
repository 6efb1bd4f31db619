"""Process-level plumbing of the engine: process group, rank agreement, seeds, the resumable
sampler and SIGTERM handling.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; with ``WORLD_SIZE > 1`` the
engine joins (or reuses) the default group: NCCL on CUDA, gloo on CPU. The loss collectives
live in :mod:`core.distributed`.
"""
from __future__ import annotations

import itertools
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

from core.errors import RunError


@dataclass
class DistContext:
    """Where this process sits.

    Attributes:
        rank, world_size, local_rank: from the process group / torchrun (0, 1, 0 alone).
        device: ``cuda:<local_rank>`` when CUDA is available, else CPU.
        owns_group: True when :func:`setup_distributed` created the group (and so destroys it).
    """
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files, logs and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as err:
        raise RuntimeError(f"environment variable {name}={value!r} is not an integer") from err


def setup_distributed() -> DistContext:
    """Join the torchrun process group if ``WORLD_SIZE > 1`` (or reuse an initialised one).

    Returns:
        The context; a single process without a group gets rank 0 of 1.
    """
    cuda = torch.cuda.is_available()
    local_rank = _env_int("LOCAL_RANK", 0)
    owns = False
    if not dist.is_initialized() and _env_int("WORLD_SIZE", 1) > 1:
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if cuda else "gloo", init_method="env://")
        owns = True
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    if cuda:
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return DistContext(rank, world, local_rank, device, owns)


def teardown_distributed(ctx: DistContext) -> None:
    """Destroy the process group if :func:`setup_distributed` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op alone)."""
    if not ctx.distributed:
        return
    if ctx.device.type == "cuda":
        dist.barrier(device_ids=[ctx.device.index])
    else:
        dist.barrier()


def any_rank(flags: Sequence[bool], ctx: DistContext) -> list[bool]:
    """Element-wise OR of boolean ``flags`` over all ranks (every rank must call it)."""
    if not ctx.distributed:
        return [bool(f) for f in flags]
    t = torch.tensor([float(bool(f)) for f in flags], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def run_on_main(ctx: DistContext, action: Callable[[], None], what: str) -> None:
    """Run ``action`` on rank 0 only; every rank must call this. A failure on rank 0 is
    re-raised there and agreed on (one collective), so the other ranks raise too
    (:class:`core.errors.RunError` naming ``what``) instead of waiting for rank 0 forever."""
    failure: BaseException | None = None
    if ctx.is_main:
        try:
            action()
        except Exception as err:  # noqa: BLE001 - re-raised below, once the ranks agree
            failure = err
    (failed,) = any_rank([failure is not None], ctx)
    if failure is not None:
        raise failure
    if failed:
        raise RunError(f"rank 0 failed to {what}; see its message")


def mean_over_ranks(values: dict[str, float], ctx: DistContext) -> dict[str, float]:
    """Average each value over ranks; every rank must pass the same keys."""
    if not ctx.distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {k: v / ctx.world_size for k, v in zip(keys, t.tolist())}


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from non-negative integers, e.g. ``(seed, stream, step, rank)``.

    Equal parts give equal seeds on every machine and rank.
    """
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31 | int(state[1]) >> 1) & (2**63 - 1)


class ResumableSampler(DistributedSampler):
    """``DistributedSampler(shuffle=True, drop_last=True)`` that can start mid-epoch.

    Works without a process group (pass ``num_replicas=1, rank=0``) with the same
    semantics: a permutation seeded by ``seed + epoch``, truncated to a multiple of the
    number of ranks, rank ``r`` taking every ``num_replicas``-th index from ``r``.
    :meth:`set_start` skips the first ``n`` indices of this rank's epoch without loading them.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.start = 0

    @property
    def epoch_length(self) -> int:
        """Indices this rank sees in a whole epoch."""
        return self.num_samples

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` indices of this rank's current epoch."""
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"sampler start must be in [0, {self.num_samples}], got {start}")
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return self.num_samples - self.start


class SigtermFlag:
    """Context manager turning SIGTERM into a flag (``requested``) that the loop checks at the
    end of every step; the previous handler is restored on exit. Only the main thread can
    install handlers: elsewhere the flag simply never rises."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __enter__(self) -> "SigtermFlag":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def ignore_sigterm(worker_id: int) -> None:
    """DataLoader workers ignore SIGTERM (a job scheduler signals the whole process group):
    the main process finishes its step, checkpoints and then shuts the workers down."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
