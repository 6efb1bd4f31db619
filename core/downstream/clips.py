"""Labelled clips as the downstream code sees them: pieces of encoder input plus labels.

A clip may be cut into several pieces of the same shape (5 s pieces of a long recording);
classifiers train on every piece with its clip's label and predict a clip by averaging
its pieces' scores ("voting"). Modalities implement :class:`ClipSource` over their datasets
(``aiaudio.clips.AudioClips``); :class:`TensorClips` wraps tensors already in memory.

Every feature the downstream code computes from the frozen encoder is checked
(:func:`core.downstream.checks.check_finite_features`): NaN or infinite features stop the run with a
:class:`NonFiniteFeaturesError` naming the clips (:meth:`ClipSource.describe`), instead of
chance-level scores.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import torch
from torch import Tensor

from core.downstream.checks import NonFiniteFeaturesError, PieceNames, check_finite_features
from core.encoders.base import InvarianceEncoder

__all__ = ["ClipSource", "NonFiniteFeaturesError", "SubsetClips", "TensorClips", "check_finite_features",
           "encode_pieces", "pool_by_owner"]

class ClipSource(ABC):
    """A labelled set of N clips, each one or more pieces of shape ``(C, H, W)``.

    Attributes:
        labels: ``(N,)`` int64 class ids, or ``(N, T)`` float32 regression targets.
        class_names: names of the class ids, or ``None`` (regression, unnamed classes).
    """

    labels: Tensor
    class_names: list[str] | None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @abstractmethod
    def pieces(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Encoder inputs of every piece of the clips ``indices``.

        Returns:
            ``x``: ``(P, C, H, W)`` float32 on the CPU; ``owner``: ``(P,)`` int64, the
            position in ``indices`` of each piece's clip (every position occurs at least once).
        """

    def subset(self, indices: Sequence[int]) -> "ClipSource":
        """The clips ``indices`` as a source of their own (labels re-indexed, names kept)."""
        return SubsetClips(self, indices)

    def describe(self, index: int) -> str:
        """A name for clip ``index`` in messages (modalities give its file)."""
        return f"clip {int(index)}"

    def piece_names(self, indices: Sequence[int], owner: Tensor) -> PieceNames:
        """Names for the rows of ``pieces(indices)``: ``owner`` ``(P,)`` is its second output."""
        idx, own = list(indices), owner.tolist()
        return lambda row: self.describe(idx[own[row]])

    def _check_indices(self, indices: Sequence[int]) -> list[int]:
        out = [int(i) for i in indices]
        n = len(self)
        bad = [i for i in out if not 0 <= i < n]
        if bad:
            raise IndexError(f"{type(self).__name__}: clip index {bad[0]} out of range for {n} clips")
        return out


class SubsetClips(ClipSource):
    """A view of some clips of another source."""

    def __init__(self, parent: ClipSource, indices: Sequence[int]) -> None:
        self.parent = parent
        self.indices = parent._check_indices(indices)
        self.labels = parent.labels[torch.as_tensor(self.indices, dtype=torch.long)]
        self.class_names = parent.class_names

    def pieces(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        return self.parent.pieces([self.indices[i] for i in self._check_indices(indices)])

    def describe(self, index: int) -> str:
        return self.parent.describe(self.indices[int(index)])


class TensorClips(ClipSource):
    """Clips held in memory.

    Args:
        x: ``(N, C, H, W)`` (one piece per clip) or a sequence of N tensors ``(P_i, C, H, W)``.
        labels: ``(N,)`` int64 class ids or ``(N, T)`` float targets.
        class_names: optional names of the class ids.
    """

    def __init__(self, x: Tensor | Sequence[Tensor], labels: Tensor, class_names: Sequence[str] | None = None) -> None:
        clips = list(x.unsqueeze(1)) if isinstance(x, Tensor) else [torch.as_tensor(c) for c in x]
        if isinstance(x, Tensor) and x.dim() != 4:
            raise ValueError(f"TensorClips: x must be (N, C, H, W), got shape {tuple(x.shape)}")
        if not isinstance(labels, Tensor) or labels.dim() not in (1, 2):
            raise ValueError("TensorClips: labels must be a tensor of shape (N,) or (N, T)")
        if len(clips) != labels.shape[0]:
            raise ValueError(f"TensorClips: {len(clips)} clips but {labels.shape[0]} labels")
        shapes = {tuple(c.shape[1:]) for c in clips}
        if any(c.dim() != 4 or c.shape[0] < 1 for c in clips) or len(shapes) > 1:
            raise ValueError(f"TensorClips: every clip must be (P_i >= 1, C, H, W) of one shape, got {sorted(shapes)}")
        self.clips = [c.float() for c in clips]
        self.labels = labels.long() if labels.dim() == 1 and not labels.is_floating_point() else labels.float()
        self.class_names = list(class_names) if class_names is not None else None

    def pieces(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        idx = self._check_indices(indices)
        if not idx:
            raise ValueError("TensorClips.pieces: no clips requested")
        chosen = [self.clips[i] for i in idx]
        owner = torch.cat([torch.full((c.shape[0],), k, dtype=torch.long) for k, c in enumerate(chosen)])
        return torch.cat(chosen), owner


@torch.no_grad()
def encode_pieces(encoder: InvarianceEncoder, x: Tensor, descriptor: Tensor, batch_size: int = 256,
                  device: str | torch.device = "cpu", names: PieceNames | None = None) -> Tensor:
    """Features ``(P, D)`` (on the CPU) of inputs ``x`` ``(P, C, H, W)`` under ``descriptor`` ``(K,)``.

    The encoder runs in eval mode (BatchNorm uses its stored statistics, which stay untouched)
    and gets its previous train/eval mode back afterwards.

    Args:
        names: row of ``x`` -> its clip's name, for the error below.

    Raises:
        NonFiniteFeaturesError: some features are NaN or infinite (names the clips).
    """
    if batch_size < 1:
        raise ValueError(f"encode_pieces: batch_size must be >= 1, got {batch_size}")
    was_training = encoder.training
    encoder.eval()
    try:
        d = encoder.space.check(descriptor).to(device)
        out = [encoder(x[i:i + batch_size].to(device), d).float().cpu() for i in range(0, x.shape[0], batch_size)]
    finally:
        encoder.train(was_training)
    feats = torch.cat(out) if out else x.new_zeros(0, encoder.num_features)
    return check_finite_features(feats, names)


def pool_by_owner(values: Tensor, owner: Tensor, n: int) -> Tensor:
    """Mean of ``values`` ``(P, ...)`` over the pieces of each clip -> ``(n, ...)``."""
    if owner.shape[0] != values.shape[0]:
        raise ValueError(f"pool_by_owner: {values.shape[0]} values but {owner.shape[0]} owners")
    owner = owner.to(values.device)
    sums = values.new_zeros((n,) + tuple(values.shape[1:])).index_add_(0, owner, values)
    counts = torch.bincount(owner, minlength=n).clamp_min(1).to(values.dtype)
    return sums / counts.view(-1, *([1] * (values.dim() - 1)))
