"""The invariance space: which augmentations a descriptor talks about.

A descriptor ``i`` is a float vector of shape ``(K,)`` with one entry per augmentation
(1 = invariant to it, 0 = sensitive to it). Pre-training only sees binary descriptors with
at least ``min_active`` ones; downstream tasks learn continuous descriptors in ``[0, 1]^K``.
"""
from __future__ import annotations

import itertools
from typing import Iterable, Mapping, Sequence

import torch
from torch import Tensor

# Enumerating 2^K vectors is only sensible for small K; every space in the paper has K <= 7.
MAX_ENUMERABLE_DIM = 20


class InvarianceSpace:
    """A named set of K augmentations and the binary descriptors used in pre-training.

    Args:
        names: augmentation names, in descriptor order (e.g. the audio space's seven).
        min_active: binary descriptors with fewer active entries are excluded from
            :attr:`descriptors` and never sampled (the all-zero vector always is).

    Example:
        >>> space = InvarianceSpace(["spatial", "appearance"], min_active=1)
        >>> space.descriptors.tolist()
        [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    """

    def __init__(self, names: Sequence[str], min_active: int = 1) -> None:
        names = tuple(names)
        if not names:
            raise ValueError("InvarianceSpace needs at least one augmentation name")
        for name in names:
            if not isinstance(name, str) or not name:
                raise ValueError(f"InvarianceSpace names must be non-empty strings, got {name!r}")
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"InvarianceSpace names must be unique; repeated: {duplicated}")
        if len(names) > MAX_ENUMERABLE_DIM:
            raise ValueError(
                f"InvarianceSpace supports at most {MAX_ENUMERABLE_DIM} augmentations, "
                f"got {len(names)}: {list(names)}"
            )
        if isinstance(min_active, bool) or not isinstance(min_active, int):
            raise ValueError(f"min_active must be an int, got {min_active!r}")
        if not 1 <= min_active <= len(names):
            raise ValueError(
                f"min_active must be in [1, {len(names)}] for names {list(names)}, got {min_active}"
            )
        self.names: tuple[str, ...] = names
        self.min_active = min_active
        self._descriptors = self._enumerate()

    # ------------------------------------------------------------------ basics
    @property
    def dim(self) -> int:
        """K, the number of augmentations (length of every descriptor)."""
        return len(self.names)

    def __len__(self) -> int:
        return self.dim

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InvarianceSpace):
            return NotImplemented
        return self.names == other.names and self.min_active == other.min_active

    def __hash__(self) -> int:
        return hash((self.names, self.min_active))

    def __repr__(self) -> str:
        return (
            f"InvarianceSpace({list(self.names)}, min_active={self.min_active}, "
            f"{len(self._descriptors)} descriptors)"
        )

    def to_dict(self) -> dict:
        """Plain-data form (stored in encoder files and run directories)."""
        return {"names": list(self.names), "min_active": self.min_active}

    @classmethod
    def from_dict(cls, data: Mapping) -> "InvarianceSpace":
        """Inverse of :meth:`to_dict`."""
        missing = {"names", "min_active"} - set(data)
        if missing:
            raise ValueError(f"invariance space data lacks keys {sorted(missing)}: {dict(data)}")
        return cls(list(data["names"]), int(data["min_active"]))

    # -------------------------------------------------------------- descriptors
    def _enumerate(self) -> Tensor:
        rows = [
            bits
            for bits in itertools.product((0.0, 1.0), repeat=self.dim)
            if sum(bits) >= self.min_active
        ]
        # Order: fewer active first, then lexicographic with the first name most significant.
        rows.sort(key=lambda bits: (sum(bits), tuple(-b for b in bits)))
        return torch.tensor(rows, dtype=torch.float32).reshape(-1, self.dim)

    @property
    def descriptors(self) -> Tensor:
        """All admissible binary descriptors, float tensor of shape ``(N, K)`` (a copy)."""
        return self._descriptors.clone()

    def ones(self) -> Tensor:
        """The all-invariant descriptor (the default contrastive model), shape ``(K,)``."""
        return torch.ones(self.dim)

    def from_active(self, active: Iterable[str]) -> Tensor:
        """Binary descriptor with the named augmentations set to 1, shape ``(K,)``."""
        active = list(active)
        unknown = [a for a in active if a not in self.names]
        if unknown:
            raise ValueError(f"unknown augmentation names {unknown}; this space has {list(self.names)}")
        return torch.tensor([1.0 if n in active else 0.0 for n in self.names])

    def sample(self, generator: torch.Generator, n: int | None = None) -> Tensor:
        """Draw admissible binary descriptors uniformly.

        Args:
            generator: the only source of randomness (seed it with (seed, step) so every
                rank draws the same descriptor).
            n: number of descriptors; ``None`` returns a single one.

        Returns:
            Float tensor of shape ``(K,)`` when ``n`` is None, else ``(n, K)``.
        """
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"sample needs a torch.Generator, got {type(generator).__name__}")
        count = 1 if n is None else int(n)
        if count < 1:
            raise ValueError(f"n must be positive, got {n}")
        index = torch.randint(len(self._descriptors), (count,), generator=generator)
        picked = self._descriptors[index]
        return picked[0].clone() if n is None else picked

    def index_of(self, descriptor: Tensor) -> int:
        """Row of a binary descriptor in :attr:`descriptors` (used to key per-descriptor state)."""
        d = self.check(descriptor)
        if d.dim() != 1:
            raise ValueError(f"index_of takes one descriptor of shape ({self.dim},), got {tuple(d.shape)}")
        match = (self._descriptors == d.detach().cpu().float()).all(dim=1).nonzero()
        if match.numel() == 0:
            raise ValueError(
                f"descriptor {self.describe(d)} is not one of the space's {len(self._descriptors)} "
                f"binary descriptors (min_active={self.min_active})"
            )
        return int(match[0, 0])

    # --------------------------------------------------------------- checking
    def check(self, descriptor: Tensor | Sequence[float]) -> Tensor:
        """Validate a descriptor or a batch of them and return it as a float tensor.

        Args:
            descriptor: shape ``(K,)`` or ``(B, K)``; lists are converted.

        Returns:
            The same values as a floating tensor (unchanged if it already was one, so
            gradients still flow through it).

        Raises:
            ValueError: wrong shape or length, NaN or infinite entries, or entries outside
                ``[0, 1]``; the message names the space's entries.
        """
        if not isinstance(descriptor, Tensor):
            try:
                descriptor = torch.as_tensor(descriptor, dtype=torch.float32)
            except (TypeError, ValueError) as err:
                raise ValueError(f"descriptor {descriptor!r} is not numeric ({self._entries()})") from err
        if not descriptor.is_floating_point():
            descriptor = descriptor.float()
        if descriptor.dim() not in (1, 2) or descriptor.shape[-1] != self.dim:
            raise ValueError(
                f"descriptor has shape {tuple(descriptor.shape)} but must be ({self.dim},) or "
                f"(B, {self.dim}) for {self._entries()}"
            )
        values = descriptor.detach()
        finite = torch.isfinite(values)
        if not bool(finite.all()):
            bad = [self.names[k] for k in range(self.dim) if not bool(finite[..., k].all())]
            raise ValueError(f"descriptor has NaN or infinite entries at {bad} ({self._entries()})")
        inside = (values >= 0) & (values <= 1)
        if not bool(inside.all()):
            bad = [self.names[k] for k in range(self.dim) if not bool(inside[..., k].all())]
            raise ValueError(f"descriptor entries {bad} lie outside [0, 1] ({self._entries()})")
        return descriptor

    def _entries(self) -> str:
        return f"space entries {list(self.names)}"

    # -------------------------------------------------------------- transforms
    def quantise(self, descriptor: Tensor, bits: int = 1) -> Tensor:
        """The paper's Q(i; b): round each entry to the nearest of 2^b evenly spaced levels.

        Args:
            descriptor: shape ``(K,)`` or ``(B, K)`` in ``[0, 1]``.
            bits: b >= 1; b = 1 rounds to {0, 1}, b = 2 to {0, 1/3, 2/3, 1}.

        Returns:
            Tensor of the same shape (no gradient: rounding is piecewise constant).
        """
        if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
            raise ValueError(f"bits must be a positive int, got {bits!r}")
        d = self.check(descriptor).detach()
        levels = 2**bits - 1
        return torch.round(d * levels) / levels

    def describe(self, descriptor: Tensor | Sequence[float], digits: int = 2) -> str:
        """Human-readable descriptor, e.g. ``"pitch_shift=1.00 fade_in=0.24 ..."``.

        A batch ``(B, K)`` gives one line per row.
        """
        d = self.check(descriptor).detach().cpu()
        rows = d.unsqueeze(0) if d.dim() == 1 else d
        lines = [
            " ".join(f"{name}={float(v):.{digits}f}" for name, v in zip(self.names, row))
            for row in rows
        ]
        return "\n".join(lines)
