"""What the engine feeds a method in one step: the views its ``inputs`` kind asks for.

``Method.inputs`` names the kind:

* ``"pair"`` (SimCLR, MoCo): ``modality.views(batch, d, g)`` -> ``view1``, ``view2``.
* ``"params"`` (AugSelf): two independently sampled parameter sets, rendered, plus their
  regression targets ``targets1``, ``targets2`` (``modality.param_targets``).
* ``"looc"`` (LooC): a query view, a key with every parameter resampled (``view2``), and
  for each entry ``j`` of ``method.looc_entries`` a key that reuses the query's parameters
  for entry ``j``'s augmentations and resamples the rest (``keys``).

Every rendered view of a step goes through ``modality.render`` in one call (parameters
concatenated), so the front end runs once per step whatever the number of keys.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from core.augparams import Params, cat_params, share_params, split_rows
from core.modality import Modality

INPUT_KINDS = ("pair", "params", "looc")


def render_all(modality: Modality, batch: Tensor, params: Sequence[Params]) -> list[Tensor]:
    """Render several parameter sets of one batch in a single ``modality.render`` call.

    Returns:
        One ``(B, C, H, W)`` encoder input per parameter set, in order.
    """
    repeated = batch.repeat(len(params), *([1] * (batch.dim() - 1)))
    return split_rows(modality.render(repeated, cat_params(params)), len(params))


def looc_params(modality: Modality, batch: Tensor, descriptor: Tensor, generator: torch.Generator,
                entries: Sequence[str]) -> tuple[Params, Params, list[Params]]:
    """LooC's parameter sets: ``(query, all-resampled key, [key sharing entry j])``.

    Draw order from ``generator``: query, the all-resampled key, then one fresh set per
    entry, into which the query's parameters of that entry's augmentations are copied.
    """
    query = modality.sample_params(batch, descriptor, generator)
    key0 = modality.sample_params(batch, descriptor, generator)
    keys = [share_params(query, modality.sample_params(batch, descriptor, generator),
                         modality.entry_augmentations(entry)) for entry in entries]
    return query, key0, keys


@torch.no_grad()
def method_inputs(kind: str, modality: Modality, batch: Tensor, descriptor: Tensor, generator: torch.Generator,
                  entries: Sequence[str] = ()) -> dict[str, Any]:
    """The keyword inputs (besides ``descriptor`` and ``step``) of one step of a method.

    Args:
        kind: ``"pair"``, ``"params"`` or ``"looc"`` (see the module docstring).
        modality: the data side.
        batch: raw inputs on the device ``(B, ...)``.
        descriptor: ``(K,)`` descriptor of the step.
        generator: the step's augmentation generator (the only source of randomness).
        entries: LooC's space entries with a head of their own.

    Returns:
        ``{"view1", "view2"}`` plus ``{"targets1", "targets2"}`` (params) or ``{"keys"}`` (looc).
    """
    if kind == "pair":
        view1, view2 = modality.views(batch, descriptor, generator)
        return {"view1": view1, "view2": view2}
    if kind == "params":
        p1 = modality.sample_params(batch, descriptor, generator)
        p2 = modality.sample_params(batch, descriptor, generator)
        view1, view2 = render_all(modality, batch, [p1, p2])
        return {"view1": view1, "view2": view2,
                "targets1": modality.param_targets(p1), "targets2": modality.param_targets(p2)}
    if kind == "looc":
        query, key0, keys = looc_params(modality, batch, descriptor, generator, entries)
        views = render_all(modality, batch, [query, key0, *keys])
        return {"view1": views[0], "view2": views[1], "keys": views[2:]}
    raise ValueError(f"unknown method input kind {kind!r}; known: {', '.join(INPUT_KINDS)}")
