"""One MoCo-v2 queue of negatives per binary descriptor.

Keys produced under descriptor ``d`` are only meaningful as negatives for queries produced
under the same ``d`` (the encoder is a different feature extractor for every descriptor),
so MoCo-v2 with amortised invariances keeps a separate FIFO queue per descriptor. With 120
descriptors, 65536 entries and 128 dimensions that would be 4 GB, so a queue is only
allocated the first time its descriptor is used.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from core.invariance import InvarianceSpace

# Seeds of different descriptors must never collide: a space has < 2**20 descriptors.
_SEED_STRIDE = 2**21
_SEED_MODULUS = 2**63


class DescriptorQueues:
    """Lazily allocated FIFO queues of negative keys, one per binary descriptor.

    A fresh queue holds random unit vectors drawn from a ``torch.Generator`` seeded from
    ``(seed, index of the descriptor in space.descriptors)``, so the same run always starts
    from the same queues, whatever order the descriptors are first used in.

    Args:
        space: the invariance space whose binary descriptors key the queues.
        dim: key width D.
        size: queue length L (number of negatives per descriptor).
        seed: non-negative int for the initial random keys.
    """

    def __init__(self, space: InvarianceSpace, dim: int, size: int = 65536, seed: int = 0) -> None:
        if not isinstance(space, InvarianceSpace):
            raise ValueError(f"space must be an InvarianceSpace, got {type(space).__name__}")
        for name, value, minimum in (("dim", dim, 1), ("size", size, 1), ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"DescriptorQueues {name} must be an int >= {minimum}, got {value!r}")
        self.space = space
        self.dim = dim
        self.size = size
        self.seed = seed
        self.device = torch.device("cpu")
        self._queues: dict[int, Tensor] = {}
        self._pointers: dict[int, int] = {}

    # ------------------------------------------------------------------ lookup
    def index(self, descriptor: Tensor) -> int:
        """Row of a binary descriptor ``(K,)`` in ``space.descriptors``.

        Raises:
            ValueError: wrong shape, non-binary entries, or not an admissible descriptor of
                the space; the message spells out the descriptor.
        """
        d = self.space.check(descriptor)
        if d.dim() != 1:
            raise ValueError(
                f"DescriptorQueues takes one descriptor of shape ({self.space.dim},), got {tuple(d.shape)}"
            )
        values = d.detach().cpu()
        if not bool(((values == 0) | (values == 1)).all()):
            raise ValueError(
                f"DescriptorQueues keeps queues for binary descriptors only; got {self.space.describe(d)}"
            )
        return self.space.index_of(values)

    def _queue(self, descriptor: Tensor) -> tuple[int, Tensor]:
        idx = self.index(descriptor)
        if idx not in self._queues:
            generator = torch.Generator().manual_seed((self.seed * _SEED_STRIDE + idx) % _SEED_MODULUS)
            init = torch.randn(self.size, self.dim, generator=generator)
            self._queues[idx] = F.normalize(init, dim=1).to(self.device)
            self._pointers[idx] = 0
        return idx, self._queues[idx]

    def get(self, descriptor: Tensor) -> Tensor:
        """The negatives for ``descriptor``, allocating its queue on first use.

        Returns:
            ``(size, dim)`` snapshot (a copy, so a later :meth:`enqueue` cannot modify a
            tensor that autograd saved for the backward pass).
        """
        return self._queue(descriptor)[1].clone()

    def pointer(self, descriptor: Tensor) -> int:
        """Row the next key for ``descriptor`` is written to (0 for a fresh queue)."""
        return self._pointers.get(self.index(descriptor), 0)

    @torch.no_grad()
    def enqueue(self, descriptor: Tensor, keys: Tensor) -> None:
        """Write ``keys`` (detached) into the queue of ``descriptor``, oldest entries first out.

        Keys are written from the pointer on, wrapping around the end. When ``B > size``
        only the newest ``size`` keys survive, exactly as if all were written one by one.

        Args:
            descriptor: ``(K,)`` binary descriptor.
            keys: ``(B, dim)`` keys (stored as given; normalise them before if you want).
        """
        if not isinstance(keys, Tensor) or keys.dim() != 2 or keys.shape[1] != self.dim:
            got = tuple(keys.shape) if isinstance(keys, Tensor) else type(keys).__name__
            raise ValueError(f"enqueue expects keys of shape (B, {self.dim}), got {got}")
        idx, queue = self._queue(descriptor)
        count = keys.shape[0]
        if count == 0:
            return
        ptr = self._pointers[idx]
        start = ptr
        if count > self.size:  # earlier keys would be overwritten within this very call
            start = (ptr + count - self.size) % self.size
            keys = keys[-self.size :]
        rows = (start + torch.arange(keys.shape[0], device=queue.device)) % self.size
        queue[rows] = keys.detach().to(device=queue.device, dtype=queue.dtype)
        self._pointers[idx] = (ptr + count) % self.size

    # ----------------------------------------------------------------- storage
    def __len__(self) -> int:
        """Number of queues allocated so far."""
        return len(self._queues)

    def __repr__(self) -> str:
        return (
            f"DescriptorQueues(dim={self.dim}, size={self.size}, seed={self.seed}, "
            f"{len(self)}/{len(self.space.descriptors)} allocated, device={self.device})"
        )

    def to(self, device: torch.device | str) -> "DescriptorQueues":
        """Move every allocated queue (and future ones) to ``device``; returns ``self``."""
        self.device = torch.device(device)
        self._queues = {i: q.to(self.device) for i, q in self._queues.items()}
        return self

    def state_dict(self) -> dict[str, Any]:
        """Plain data and tensors only (loads with ``torch.load(weights_only=True)``).

        Like ``nn.Module.state_dict`` the queue tensors are the live ones, not copies.
        """
        return {
            "space": self.space.to_dict(),
            "dim": self.dim,
            "size": self.size,
            "seed": self.seed,
            "queues": {str(i): q for i, q in sorted(self._queues.items())},
            "pointers": {str(i): p for i, p in sorted(self._pointers.items())},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore queues and pointers exactly from :meth:`state_dict`.

        Raises:
            ValueError: missing keys, a different space, dim, size or seed, or a queue of
                the wrong shape or pointer out of range.
        """
        expected = {"space", "dim", "size", "seed", "queues", "pointers"}
        if not isinstance(state, Mapping) or set(state) != expected:
            got = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"queue state must have keys {sorted(expected)}, got {got}")
        mine = self.space.to_dict()
        if dict(state["space"]) != mine:
            raise ValueError(f"queue state is for space {dict(state['space'])}, these queues use {mine}")
        for name in ("dim", "size", "seed"):
            if state[name] != getattr(self, name):
                raise ValueError(
                    f"queue state has {name}={state[name]!r} but these queues have {name}={getattr(self, name)!r}"
                )
        if set(state["queues"]) != set(state["pointers"]):
            raise ValueError(
                f"queue state lists queues {sorted(state['queues'])} but pointers {sorted(state['pointers'])}"
            )
        count = len(self.space.descriptors)
        queues: dict[int, Tensor] = {}
        pointers: dict[int, int] = {}
        for key, tensor in state["queues"].items():
            if not str(key).isdigit() or not 0 <= int(key) < count:
                raise ValueError(f"queue state has queue {key!r}; descriptor indices run 0..{count - 1}")
            if not isinstance(tensor, Tensor) or tuple(tensor.shape) != (self.size, self.dim):
                got = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
                raise ValueError(f"queue {key} must have shape ({self.size}, {self.dim}), got {got}")
            ptr = state["pointers"][key]
            if isinstance(ptr, bool) or not isinstance(ptr, int) or not 0 <= ptr < self.size:
                raise ValueError(f"pointer of queue {key} must be an int in [0, {self.size}), got {ptr!r}")
            queues[int(key)] = tensor.detach().to(self.device).clone()
            pointers[int(key)] = ptr
        self._queues, self._pointers = queues, pointers
