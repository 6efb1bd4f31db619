"""Model selection for the probe: validation splits, candidate grids, pieces held in memory,
and the Adam fit of one candidate (:func:`train_probe`).

Everything here serves one rule: hyper-parameters (learning rate, weight decay, and the
binary descriptor for ``best_corner``) are chosen on a validation split, never on test data.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.downstream.checks import PieceNames, check_finite_features, check_finite_loss
from core.downstream.clips import ClipSource, encode_pieces
from core.downstream.descriptor_grad import features_with_descriptor_grad
from core.encoders.base import InvarianceEncoder

if TYPE_CHECKING:
    from core.downstream.probe import ProbeConfig


def carve_splits(labels: Tensor, fractions: Sequence[float], seed: int, stratify: bool = True
                 ) -> list[list[int]]:
    """Seeded split of N clips into a remainder and one part per fraction.

    Within each group (every class when ``stratify``, else all clips) one permutation drawn
    from ``torch.Generator().manual_seed(seed)`` is cut in order: ``round(f * n)`` clips per
    fraction ``f``, each part capped so that at least one clip of the group stays in the
    remainder.

    Args:
        labels: ``(N,)`` class ids (used when ``stratify``) or ``(N, T)`` targets.
        fractions: shares in ``[0, 1)`` of the parts carved off, in order.
        seed: seed of the shuffling generator.
        stratify: split every class separately.

    Returns:
        ``[remainder, part_1, ..., part_k]``, each sorted, disjoint, together all N clips.
    """
    generator = torch.Generator().manual_seed(int(seed))
    n = int(labels.shape[0])
    groups = ([(labels == c).nonzero().flatten() for c in torch.unique(labels)] if stratify
              else [torch.arange(n)])
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for members in groups:
        order = members[torch.randperm(members.numel(), generator=generator)].tolist()
        start = 0
        for k, fraction in enumerate(fractions, start=1):
            take = min(round(fraction * len(order)), max(len(order) - 1 - start, 0))
            parts[k] += order[start:start + take]
            start += take
        parts[0] += order[start:]
    return [sorted(part) for part in parts]


def split_train_val(labels: Tensor, fraction: float, seed: int, stratify: bool = True
                    ) -> tuple[list[int], list[int]]:
    """Carve a validation split from N clips, reproducibly from ``seed`` (:func:`carve_splits`).

    Args:
        labels: ``(N,)`` class ids (used when ``stratify``) or ``(N, T)`` targets.
        fraction: share of clips that go to validation, in ``(0, 1)``.
        seed: seed of the ``torch.Generator`` that shuffles.
        stratify: take ``round(fraction * n_c)`` clips of every class c (a class with a single
            clip stays in training); otherwise a plain random split.

    Returns:
        Sorted ``(train_indices, val_indices)``, disjoint, covering all N clips, both non-empty.
    """
    n = int(labels.shape[0])
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"split_train_val: val_fraction must be in (0, 1), got {fraction}")
    if n < 2:
        raise ValueError(f"split_train_val: need at least 2 clips to carve a validation split, got {n}")
    train, val = carve_splits(labels, [fraction], seed, stratify)
    if not val:  # tiny sets: at least one validation clip
        val = [train.pop(int(torch.randint(len(train), (1,), generator=torch.Generator().manual_seed(int(seed)))))]
    return train, val


@dataclass(frozen=True)
class Candidate:
    """One point of the selection grid.

    Attributes:
        descriptor: fixed descriptor ``(K,)``, or ``None`` to learn it (from 0.5 per entry).
        lr: Adam learning rate of the head (and of the descriptor unless set apart).
        weight_decay: L2 penalty on the head's weights.
    """

    descriptor: Tensor | None
    lr: float
    weight_decay: float


def candidate_grid(descriptors: Sequence[Tensor | None], lrs: Sequence[float],
                   weight_decays: Sequence[float]) -> list[Candidate]:
    """Every (descriptor, lr, weight decay) combination, descriptors outermost."""
    return [Candidate(d, float(lr), float(wd)) for d, lr, wd in itertools.product(descriptors, lrs, weight_decays)]


def best_index(scores: Sequence[float]) -> int:
    """Position of the highest score (the first on ties; NaN never wins unless all are NaN)."""
    if not scores:
        raise ValueError("best_index: no scores")
    keyed = [(-math.inf if math.isnan(s) else s) for s in scores]
    return max(range(len(keyed)), key=lambda i: (keyed[i], -i))


class PieceSet:
    """The pieces of several clip sources, concatenated and held in memory.

    Clips are numbered in order: the first source's clips first. Features under a
    descriptor are cached for the most recent descriptor (fixed-descriptor fits reuse them
    across the whole selection grid).

    Args:
        sources: the clip sources (e.g. ``[train, val]``).
    """

    def __init__(self, sources: Sequence[ClipSource]) -> None:
        xs, owners, labels, offset = [], [], [], 0
        for source in sources:
            n = len(source)
            if n == 0:
                raise ValueError("PieceSet: a clip source is empty")
            x, owner = source.pieces(range(n))
            xs.append(x)
            owners.append(owner + offset)
            labels.append(source.labels)
            offset += n
        self.x: Tensor = torch.cat(xs)                    # (P, C, H, W)
        self.owner: Tensor = torch.cat(owners)            # (P,) clip id of each piece
        self.labels: Tensor = torch.cat(labels)           # (N,) or (N, T)
        self.sizes = [len(s) for s in sources]
        self.sources = list(sources)
        self._cache: tuple[tuple[float, ...], Tensor] | None = None

    @property
    def num_clips(self) -> int:
        return int(self.labels.shape[0])

    def clip_range(self, source: int) -> Tensor:
        """Clip ids ``(n,)`` of the ``source``-th source."""
        start = sum(self.sizes[:source])
        return torch.arange(start, start + self.sizes[source])

    def piece_ids(self, clips: Tensor) -> Tensor:
        """Ids ``(p,)`` of the pieces of ``clips``, in piece order."""
        member = torch.zeros(self.num_clips, dtype=torch.bool)
        member[clips] = True
        return member[self.owner].nonzero().flatten()

    def local_owner(self, pieces: Tensor, clips: Tensor) -> Tensor:
        """Position in ``clips`` of each piece's clip, ``(p,)``."""
        position = torch.full((self.num_clips,), -1, dtype=torch.long)
        position[clips] = torch.arange(clips.numel())
        return position[self.owner[pieces]]

    def describe_clip(self, clip: int) -> str:
        """The name of clip ``clip`` (numbered over all sources) given by its source."""
        for source, size in zip(self.sources, self.sizes):
            if clip < size:
                return source.describe(clip)
            clip -= size
        raise IndexError(f"PieceSet: clip {clip} out of range")

    def piece_names(self, pieces: Tensor | None = None) -> Callable[[int], str]:
        """Row -> clip name for the rows of ``self.x`` (or of ``self.x[pieces]``), for messages."""
        ids = None if pieces is None else pieces.tolist()
        return lambda row: self.describe_clip(int(self.owner[row if ids is None else ids[row]]))

    def features(self, encoder: InvarianceEncoder, descriptor: Tensor, batch_size: int,
                 device: str | torch.device, pieces: Tensor | None = None) -> Tensor:
        """Features ``(P or p, D)`` on the CPU of all pieces (cached) or of ``pieces`` only.

        Raises:
            NonFiniteFeaturesError: NaN or infinite features (names the clips).
        """
        if pieces is not None:
            return encode_pieces(encoder, self.x[pieces], descriptor, batch_size, device, self.piece_names(pieces))
        key = tuple(float(v) for v in descriptor.detach().cpu().flatten())
        if self._cache is None or self._cache[0] != key:
            self._cache = None  # free the old features before computing new ones
            self._cache = (key, encode_pieces(encoder, self.x, descriptor, batch_size, device, self.piece_names()))
        return self._cache[1]


def train_probe(encoder: InvarianceEncoder, inputs: Tensor, targets: Tensor, num_outputs: int,
                config: "ProbeConfig", lr: float, weight_decay: float, descriptor: Tensor | None,
                device: str | torch.device = "cpu", accumulate: bool = True, names: PieceNames | None = None
                ) -> tuple[Tensor, nn.Linear, list[Tensor]]:
    """Fit a head (and, if ``descriptor`` is None, a descriptor from 0.5) with Adam.

    With ``config.grad == "light"`` each batch is processed in micro-batches of
    ``config.micro_batch`` whose losses (weighted by their share of the batch) are
    back-propagated one after the other: the losses are means over samples, so the summed
    gradient is exactly the batch gradient, with the graph of one micro-batch in memory and
    no recomputation. ``accumulate=False`` uses the general recomputing path of
    :func:`~core.downstream.descriptor_grad.features_with_descriptor_grad` instead.

    Args:
        inputs: encoder inputs ``(P, C, H, W)`` when learning the descriptor, else
            precomputed features ``(P, D)``.
        targets: ``(P,)`` class ids or ``(P, T)`` standardised targets.
        num_outputs: classes or T.
        config: task, epochs, batch size, seed, descriptor_lr, grad, micro_batch.
        lr, weight_decay: Adam step size; L2 on the head's weight.
        descriptor: a fixed ``(K,)`` (then ``inputs`` are its features) or None to learn one.
        device: where the head (and the encoder) run.
        accumulate: see above.
        names: row of ``inputs`` -> its clip's name, for the errors below.

    Returns:
        ``(descriptor (K,), head, trainable tensors)``.

    Raises:
        NonFiniteFeaturesError: NaN or infinite features (inputs, or computed while learning
            the descriptor); names the clips.
        NonFiniteLossError: the loss became NaN or infinite (names the lr and weight decay).
    """
    learn = descriptor is None
    head = nn.Linear(encoder.num_features, num_outputs).to(device=device, dtype=inputs.dtype)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    groups = [{"params": [head.weight], "weight_decay": weight_decay}, {"params": [head.bias], "weight_decay": 0.0}]
    if learn:
        d = torch.full((encoder.space.dim,), 0.5, device=device, dtype=inputs.dtype, requires_grad=True)
        groups.append({"params": [d], "weight_decay": 0.0, "lr": config.descriptor_lr or lr})
    else:
        d = descriptor.detach().to(device)
    optimizer = torch.optim.Adam(groups, lr=lr)
    loss_fn = F.cross_entropy if config.task == "classification" else F.mse_loss
    by_parts = learn and config.grad == "light" and accumulate
    grad_mode = "backprop" if by_parts else config.grad
    generator = torch.Generator().manual_seed(config.seed)
    if not learn:
        check_finite_features(inputs, names)
    for epoch in range(config.epochs):
        for idx in torch.randperm(inputs.shape[0], generator=generator).split(config.batch_size):
            optimizer.zero_grad(set_to_none=True)
            for part in idx.split(config.micro_batch) if by_parts else [idx]:
                batch = inputs[part].to(device)
                if learn:
                    z = features_with_descriptor_grad(encoder, batch, d, grad_mode, config.micro_batch)
                    rows = part.tolist()
                    check_finite_features(z, names and (lambda r, rows=rows: names(rows[r])))
                else:
                    z = batch
                loss = loss_fn(head(z), targets[part].to(device))
                check_finite_loss(loss, f"probe fit (lr {lr:g}, weight decay {weight_decay:g}, epoch {epoch + 1})")
                (loss * (part.numel() / idx.numel())).backward()
            optimizer.step()
            if learn:
                with torch.no_grad():
                    d.clamp_(0.0, 1.0)
    trainable = [head.weight, head.bias] + ([d] if learn else [])
    return d.detach().cpu(), head, trainable


__all__ = ["Candidate", "PieceSet", "best_index", "candidate_grid", "carve_splits", "split_train_val", "train_probe"]
