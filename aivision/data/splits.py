"""Seeded image splits for datasets that publish none (300W, LSP, Caltech101).

All randomness comes from a ``torch.Generator`` seeded with the reader's ``seed`` option, so a
split is a pure function of (file list, seed): the same files and seed give the same split on
every machine.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def split_sizes(total: int, fractions: Sequence[float]) -> list[int]:
    """Part sizes for ``total`` items by largest-remainder rounding (they sum to ``total``).

    Example: ``split_sizes(300, (0.3, 0.3, 0.4)) == [90, 90, 120]``;
    ``split_sizes(7, (0.3, 0.3, 0.4)) == [2, 2, 3]``.
    """
    if min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {list(fractions)}")
    exact = [f * total for f in fractions]
    sizes = [int(np.floor(e)) for e in exact]
    by_remainder = sorted(range(len(sizes)), key=lambda k: (-(exact[k] - sizes[k]), k))
    for k in by_remainder[: total - sum(sizes)]:
        sizes[k] += 1
    return sizes


def random_parts(total: int, fractions: Sequence[float], generator: torch.Generator) -> list[np.ndarray]:
    """Disjoint parts of ``range(total)`` with ``split_sizes`` sizes, drawn by ``generator``.

    Returns:
        One sorted int64 index array per fraction; together they cover ``range(total)``.
    """
    order = torch.randperm(total, generator=generator).numpy()
    parts, start = [], 0
    for size in split_sizes(total, fractions):
        parts.append(np.sort(order[start:start + size]).astype(np.int64))
        start += size
    return parts


def grouped_split(groups: Sequence[Sequence[int]], fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split each group of indices with the same fractions (e.g. 300W indoor and outdoor).

    Args:
        groups: index lists (disjoint), split one after the other with one generator.
        fractions: one fraction per part.
        seed: generator seed.

    Returns:
        One sorted int64 index array per part, the union over groups.
    """
    generator = torch.Generator().manual_seed(int(seed))
    merged: list[list[np.ndarray]] = [[] for _ in fractions]
    for group in groups:
        group = np.asarray(group, dtype=np.int64)
        for k, part in enumerate(random_parts(len(group), fractions, generator)):
            merged[k].append(group[part])
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in merged]


def per_class_split(labels: Sequence[int], per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` random images of every class for training, the rest for testing.

    A class with ``per_class`` images or fewer goes entirely to training. Classes are visited
    in label order with one generator.

    Returns:
        ``(train, test)`` sorted int64 index arrays.
    """
    if per_class < 1:
        raise ValueError(f"per-class training size must be >= 1, got {per_class}")
    labels = np.asarray(labels, dtype=np.int64)
    generator = torch.Generator().manual_seed(int(seed))
    train, test = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        order = members[torch.randperm(len(members), generator=generator).numpy()]
        train.append(order[:per_class])
        test.append(order[per_class:])
    empty = np.zeros(0, np.int64)
    return (np.sort(np.concatenate(train)) if train else empty,
            np.sort(np.concatenate(test)) if test else empty)
