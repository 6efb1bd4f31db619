"""Shared pieces of few-shot evaluation: a per-descriptor feature cache and episode scoring."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from core.downstream.clips import ClipSource, encode_pieces, pool_by_owner
from core.downstream.readouts import readout_scores
from core.encoders.base import InvarianceEncoder


def descriptor_key(descriptor: Tensor) -> tuple[float, ...]:
    """Hashable key of a descriptor ``(K,)`` (entries rounded to 1e-6)."""
    return tuple(round(float(v), 6) for v in descriptor.detach().cpu().reshape(-1))


class FeatureCache:
    """Features of a source's clips, computed once per (clip, descriptor) and kept on the CPU.

    Args:
        encoder: the frozen encoder (put in eval mode by :func:`encode_pieces`).
        source: the clips.
        batch_size: pieces per encoder call.
        device: where the encoder runs.
    """

    def __init__(self, encoder: InvarianceEncoder, source: ClipSource, batch_size: int = 256,
                 device: str | torch.device = "cpu") -> None:
        self.encoder, self.source, self.batch_size, self.device = encoder, source, batch_size, device
        self._store: dict[tuple[float, ...], dict[int, Tensor]] = {}

    def prefetch(self, indices: Sequence[int], descriptor: Tensor) -> None:
        """Encode the clips of ``indices`` not cached yet for ``descriptor``, ``batch_size`` clips at a time."""
        store = self._store.setdefault(descriptor_key(descriptor), {})
        missing = sorted({int(i) for i in indices} - set(store))
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start:start + self.batch_size]
            x, owner = self.source.pieces(chunk)
            feats = encode_pieces(self.encoder, x, descriptor, self.batch_size, self.device,
                                  self.source.piece_names(chunk, owner))
            for k, clip in enumerate(chunk):
                store[clip] = feats[owner == k]

    def features(self, indices: Sequence[int], descriptor: Tensor) -> tuple[Tensor, Tensor]:
        """Piece features ``(P, D)`` of the clips ``indices`` and each piece's position in ``indices`` ``(P,)``."""
        self.prefetch(indices, descriptor)
        store = self._store[descriptor_key(descriptor)]
        chosen = [store[int(i)] for i in indices]
        owner = torch.cat([torch.full((f.shape[0],), k, dtype=torch.long) for k, f in enumerate(chosen)])
        return torch.cat(chosen), owner

    def drop(self, descriptor: Tensor) -> None:
        """Forget the features computed for ``descriptor``."""
        self._store.pop(descriptor_key(descriptor), None)


def clip_scores(support: Tensor, support_owner: Tensor, support_labels: Tensor, query: Tensor,
                query_owner: Tensor, num_query: int, ways: int, readout: str,
                ridge_lambda: float) -> Tensor:
    """Scores ``(num_query, ways)`` of query clips: readout fitted on every support piece with
    its clip's label, query pieces scored and averaged per clip (voting).

    Args:
        support: ``(P_s, D)`` support piece features; ``support_owner`` ``(P_s,)`` their clip
            position; ``support_labels`` ``(n_s,)`` episode label of each support clip.
        query: ``(P_q, D)`` query piece features; ``query_owner`` ``(P_q,)`` their clip position.
    """
    piece_labels = support_labels.to(support_owner.device)[support_owner]
    scores = readout_scores(readout, support, piece_labels, query, ways, ridge_lambda)
    return pool_by_owner(scores, query_owner, num_query)


def accuracy_of(scores: Tensor, labels: Tensor) -> float:
    """Fraction of rows of ``scores`` ``(m, ways)`` whose argmax equals ``labels`` ``(m,)``."""
    return float((scores.argmax(1).cpu() == labels.cpu()).float().mean())


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and 95 % interval half-width ``1.96 * std / sqrt(E)`` (population std, ddof 0)."""
    if not values:
        raise ValueError("mean_ci95 needs at least one value")
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    std = float(t.std(unbiased=False)) if t.numel() > 1 else 0.0
    return float(t.mean()), 1.96 * std / math.sqrt(t.numel())
