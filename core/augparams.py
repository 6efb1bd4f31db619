"""Pure helpers on per-sample augmentation parameters, shared by every modality.

A modality's parameters for one view of a batch of B inputs are
``Params = {augmentation: {param: (B,) tensor, ..., "applied": (B,) bool}}``; the
modality's ``render(batch, params)`` turns them into encoder inputs deterministically.
These helpers build the parameter sets LooC needs (a key sharing the query's parameters
for some augmentations) and batch several views into one render call.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

Params = dict[str, dict[str, Tensor]]


def batch_size(params: Params) -> int:
    """B of a parameter set (checked to be the same for every tensor).

    Raises:
        ValueError: empty params or tensors of different lengths (names the entry).
    """
    sizes = {(name, key): int(v.shape[0]) for name, p in params.items() for key, v in p.items()}
    if not sizes:
        raise ValueError("augmentation params are empty")
    first = next(iter(sizes.values()))
    for (name, key), size in sizes.items():
        if size != first:
            raise ValueError(f"augmentation params[{name!r}][{key!r}] has {size} rows, others {first}")
    return first


def share_params(source: Params, target: Params, names: Sequence[str]) -> Params:
    """``target`` with the parameters of augmentations ``names`` copied from ``source``.

    Every field of a shared augmentation is copied, ``applied`` included, so the two views
    apply exactly the same transformation for it; all other augmentations keep ``target``'s
    values. Neither input is modified.

    Raises:
        KeyError: a name missing from either parameter set.
        ValueError: parameter sets of different batch sizes.
    """
    if batch_size(source) != batch_size(target):
        raise ValueError(f"share_params: source has {batch_size(source)} rows, target {batch_size(target)}")
    for name in names:
        if name not in source or name not in target:
            raise KeyError(f"share_params: augmentation {name!r} not in the parameters "
                           f"(have {sorted(target)})")
    return {name: {key: value.clone() for key, value in (source if name in names else target)[name].items()}
            for name in target}


def cat_params(parts: Sequence[Params]) -> Params:
    """Concatenate parameter sets of several batches along the batch dimension.

    Raises:
        ValueError: no parts, or parts with different augmentations or fields.
    """
    if not parts:
        raise ValueError("cat_params needs at least one parameter set")
    layout = {name: sorted(p) for name, p in parts[0].items()}
    for i, part in enumerate(parts[1:], start=1):
        if {name: sorted(p) for name, p in part.items()} != layout:
            raise ValueError(f"cat_params: part {i} has fields {sorted(part)} unlike part 0 {sorted(layout)}")
    return {name: {key: torch.cat([part[name][key] for part in parts]) for key in keys}
            for name, keys in layout.items()}


def split_rows(x: Tensor, parts: int) -> list[Tensor]:
    """Split a batch ``(parts * B, ...)`` into ``parts`` batches ``(B, ...)``."""
    if x.shape[0] % parts:
        raise ValueError(f"split_rows: {x.shape[0]} rows do not split into {parts} equal parts")
    return list(x.chunk(parts)) if parts > 1 else [x]


def entry_mapping(names: Sequence[str], groups: Mapping[str, Sequence[str]], augmentations: Sequence[str],
                  modality: str) -> Tensor:
    """``(K, A)`` bool: which of the modality's ``augmentations`` each space entry switches on.

    An entry is an augmentation (itself) or a group name (its members).

    Raises:
        ValueError: an entry that is neither an augmentation nor a group (lists the allowed
            names), or a group with an unknown member.
    """
    allowed = list(augmentations) + [g for g in groups if g not in augmentations]
    rows = []
    for name in names:
        members = (name,) if name in augmentations else groups.get(name)
        if members is None:
            raise ValueError(f"invariance space entry {name!r} is neither {modality} augmentation nor "
                             f"a group; allowed names: {allowed}")
        unknown = [m for m in members if m not in augmentations]
        if unknown:
            raise ValueError(f"group {name!r} lists unknown augmentations {unknown}; allowed: {list(augmentations)}")
        rows.append([a in members for a in augmentations])
    return torch.tensor(rows, dtype=torch.bool).view(len(rows), len(augmentations))


def active_augmentations(space: Any, mapping: Tensor, descriptor: Tensor | Sequence[float], batch_size: int,
                         items: str = "items") -> Tensor:
    """Which augmentations each batch item may use, ``(B, A)`` bool on the CPU.

    An entry counts as on when it is > 0.5 (binary in pre-training; a continuous descriptor is
    thresholded), and an augmentation is active when any entry that maps to it is on.

    Args:
        space: the ``InvarianceSpace`` (validates the descriptor).
        mapping: ``(K, A)`` from :func:`entry_mapping`.
        descriptor: ``(K,)`` shared by the batch or ``(B, K)``.
        batch_size: B.
        items: what the batch holds, for the error message (``clips``, ``images``).
    """
    d = space.check(descriptor).detach().cpu()
    if d.dim() == 2 and d.shape[0] != batch_size:
        raise ValueError(f"descriptor batch has shape {tuple(d.shape)} but the batch has {batch_size} {items}")
    act = ((d > 0.5).float() @ mapping.float()) > 0
    return act.expand(batch_size, -1).clone() if act.dim() == 1 else act
