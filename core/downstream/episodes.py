"""N-way K-shot episodes drawn reproducibly from a labelled set of clips.

An episode picks ``ways`` classes among those with at least ``shots + queries`` clips, then
``shots`` support clips and ``queries`` query clips per class, all distinct. Labels inside the
episode are re-indexed ``0..ways-1`` in the order of :attr:`Episode.classes`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Episode:
    """One few-shot task.

    Attributes:
        classes: the ``ways`` original class ids; episode label ``j`` means ``classes[j]``.
        support: ``ways * shots`` clip indices (class by class).
        support_labels: ``(ways * shots,)`` int64 episode labels of ``support``.
        query: ``ways * queries`` clip indices (class by class), disjoint from ``support``.
        query_labels: ``(ways * queries,)`` int64 episode labels of ``query``.
    """

    classes: list[int]
    support: list[int]
    support_labels: Tensor
    query: list[int]
    query_labels: Tensor

    @property
    def ways(self) -> int:
        return len(self.classes)


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"sample_episodes: {name} must be a positive integer, got {value!r}")
    return value


def clips_per_class(labels: Tensor) -> dict[int, list[int]]:
    """Clip indices of each class id, ascending, for ``labels`` ``(N,)`` int64."""
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.is_floating_point():
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"episodes need integer class labels of shape (N,), got {shape}")
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels.tolist()):
        by_class.setdefault(int(label), []).append(index)
    return dict(sorted(by_class.items()))


def sample_episodes(labels: Tensor, ways: int, shots: int, queries: int, episodes: int,
                    seed: int) -> list[Episode]:
    """Draw ``episodes`` N-way K-shot episodes with a ``torch.Generator`` seeded by ``seed``.

    Args:
        labels: ``(N,)`` int64 class id of every clip.
        ways: classes per episode (N, at least 2).
        shots: support clips per class (K).
        queries: query clips per class (Q).
        episodes: number of episodes (E).
        seed: the only source of randomness; the same seed gives the same episodes.

    Returns:
        ``episodes`` :class:`Episode` objects; in each, support and query clips are distinct.

    Raises:
        ValueError: a bad argument, or fewer than ``ways`` classes having ``shots + queries``
            clips (the message gives the counts).
    """
    for name, value in (("ways", ways), ("shots", shots), ("queries", queries), ("episodes", episodes)):
        _positive_int(name, value)
    if ways < 2:
        raise ValueError(f"sample_episodes: ways must be at least 2, got {ways}")
    by_class = clips_per_class(labels)
    need = shots + queries
    eligible = [c for c, clips in by_class.items() if len(clips) >= need]
    if len(eligible) < ways:
        raise ValueError(
            f"sample_episodes: {ways}-way {shots}-shot with {queries} queries needs {ways} classes "
            f"with at least {need} clips each, but only {len(eligible)} of the {len(by_class)} "
            f"classes have that many ({len(labels)} clips in all)"
        )
    generator = torch.Generator().manual_seed(int(seed))
    out = []
    for _ in range(episodes):
        picked = torch.randperm(len(eligible), generator=generator)[:ways].tolist()
        classes = [eligible[i] for i in picked]
        support: list[int] = []
        query: list[int] = []
        for cls in classes:
            clips = by_class[cls]
            order = torch.randperm(len(clips), generator=generator)[:need].tolist()
            support.extend(clips[i] for i in order[:shots])
            query.extend(clips[i] for i in order[shots:])
        out.append(Episode(
            classes=classes,
            support=support,
            support_labels=torch.arange(ways).repeat_interleave(shots),
            query=query,
            query_labels=torch.arange(ways).repeat_interleave(queries),
        ))
    return out
