"""The abstract encoder every architecture implements."""
from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from core.invariance import InvarianceSpace


class DescriptorGroups(NamedTuple):
    """The distinct descriptors of a batch and how the (sorted) batch splits over them.

    Attributes:
        descriptors: ``(U, K)``, one row per distinct descriptor (gradients flow to the
            descriptor that was passed in).
        counts: samples per group when the batch was sorted by group, or ``None`` when every
            sample shares descriptor 0 (the common, fast case).
        order: ``(B,)`` permutation that sorts the batch by group, or ``None``.
    """

    descriptors: Tensor
    counts: list[int] | None
    order: Tensor | None

    def sort(self, x: Tensor) -> Tensor:
        """Reorder a batch ``(B, ...)`` so each group's samples are contiguous."""
        return x if self.order is None else x.index_select(0, self.order)

    def unsort(self, x: Tensor) -> Tensor:
        """Undo :meth:`sort` on a batch ``(B, ...)``."""
        if self.order is None:
            return x
        inverse = torch.empty_like(self.order)
        inverse[self.order] = torch.arange(self.order.numel(), device=self.order.device)
        return x.index_select(0, inverse)


def group_descriptors(inv: Tensor, batch_size: int) -> DescriptorGroups:
    """Find the distinct descriptors of a batch.

    Args:
        inv: ``(K,)`` (one descriptor for the whole batch) or ``(B, K)``.
        batch_size: B, the batch size of the input it goes with.

    Returns:
        The groups; kernels or tokens are then computed once per row of ``descriptors``.
    """
    if inv.dim() == 1:
        return DescriptorGroups(inv.unsqueeze(0), None, None)
    if inv.shape[0] != batch_size:
        raise ValueError(
            f"a batch of descriptors must have one row per input: got {inv.shape[0]} rows for "
            f"a batch of {batch_size}"
        )
    _, inverse, counts = torch.unique(inv.detach(), dim=0, return_inverse=True, return_counts=True)
    if counts.numel() == 1:
        return DescriptorGroups(inv[:1], None, None)
    order = torch.argsort(inverse, stable=True)
    first = order[torch.cumsum(counts, 0) - counts]  # first sample of each group
    return DescriptorGroups(inv.index_select(0, first), counts.tolist(), order)


class InvarianceEncoder(nn.Module, ABC):
    """A feature extractor told at run time which augmentations to be invariant to.

    Subclasses set ``space``, ``num_features`` and ``config`` (the keyword arguments that
    rebuild the same architecture through :func:`core.build_encoder`).
    """

    space: InvarianceSpace
    num_features: int
    name: str
    config: dict[str, Any]
    # False for encoders whose features ignore the descriptor (plain baselines): downstream
    # code then has no descriptor to learn and reads them out with all ones
    conditioned: bool = True

    @abstractmethod
    def forward(self, x: Tensor, inv: Tensor) -> Tensor:
        """Features of ``x`` under descriptor ``inv``.

        Args:
            x: input batch ``(B, C, H, W)``.
            inv: ``(K,)`` for the whole batch or ``(B, K)`` per sample, values in [0, 1].

        Returns:
            ``(B, num_features)``.
        """

    @abstractmethod
    def specialise(self, inv: Tensor) -> nn.Module:
        """An ordinary module computing ``self(x, inv)`` for one fixed descriptor ``(K,)``.

        The returned module takes only ``x`` and has the same train/eval mode as ``self``;
        in eval mode its output equals ``self(x, inv)``.
        """

    def check_descriptor(self, inv: Tensor | list[float], x: Tensor | None = None) -> Tensor:
        """Validate ``inv`` and move it to ``x``'s device and the encoder's parameter dtype."""
        inv = self.space.check(inv)
        if x is not None:
            if inv.dim() == 2 and inv.shape[0] != x.shape[0]:
                raise ValueError(
                    f"a batch of descriptors must have one row per input: got {inv.shape[0]} "
                    f"rows for a batch of {x.shape[0]}"
                )
            inv = inv.to(device=x.device, dtype=self._parameter_dtype())
        return inv

    def _single_descriptor(self, inv: Tensor | list[float]) -> Tensor:
        inv = self.space.check(inv)
        if inv.dim() != 1:
            raise ValueError(
                f"specialise takes one descriptor of shape ({self.space.dim},), got {tuple(inv.shape)}"
            )
        first = self._reference_tensor()
        if first is None:
            return inv.detach().float()
        return inv.detach().to(device=first.device, dtype=first.dtype)

    def _reference_tensor(self) -> Tensor | None:
        """The first floating-point parameter or buffer (None for an encoder without weights,
        such as the ``band_stats`` calibration baseline)."""
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            if tensor.is_floating_point():
                return tensor
        return None

    def _parameter_dtype(self) -> torch.dtype:
        # float32 under autocast too: autocast casts inside the ops, not the parameters
        first = self._reference_tensor()
        return torch.float32 if first is None else first.dtype
