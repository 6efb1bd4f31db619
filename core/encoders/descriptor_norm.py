"""BatchNorm whose running statistics depend on the invariance descriptor.

An amortised encoder is trained with one descriptor per step, so each step's BatchNorm sees
activations of one descriptor's views under one descriptor's kernels. Ordinary running
statistics average over whichever descriptors the last few dozen steps drew; at evaluation
every descriptor is then normalised with that mixture rather than with its own statistics.

:class:`DescriptorBatchNorm2d` keeps running statistics per corner of the binary hypercube
``{0, 1}^K`` (``2^K`` rows; the pre-training descriptors are corners). A step updates the
corners of its descriptor with multilinear weights ``w_c(d) = prod_k d_k^c_k (1 - d_k)^(1 - c_k)``
(a binary descriptor: exactly its own corner): a cumulative average over a corner's first
``1 / momentum`` updates, an exponential one with rate ``momentum`` after (with 128 corners
a corner is drawn every ~128 steps, so an exponential average from the start would keep
most of its initial value for thousands of steps). At evaluation the statistics for ``d`` are the
moments of the mixture of the corner distributions with the same weights::

    mean(d) = sum_c w_c(d) mean_c
    var(d)  = sum_c w_c(d) (var_c + mean_c^2) - mean(d)^2

equal to a corner's own statistics at that corner, smooth and differentiable in ``d`` in
between (downstream descriptor learning differentiates through them). Corners never updated
use the ordinary running statistics, which are kept as well.
"""
from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from core.encoders.base import DescriptorGroups

NORMS = ("batch", "descriptor")
MAX_SPACE_DIM = 12  # 2^12 rows of statistics per layer at most


def hypercube_corners(k: int) -> Tensor:
    """Every binary vector of length ``k``, ``(2^k, k)`` float32, in lexicographic order."""
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=k)), dtype=torch.float32)


def corner_weights(descriptors: Tensor, corners: Tensor) -> Tensor:
    """Multilinear interpolation weights ``(U, 2^K)`` of descriptors ``(U, K)`` over the
    corners ``(2^K, K)``; each row is non-negative and sums to 1."""
    d = descriptors.unsqueeze(1).to(corners.dtype)
    return torch.where(corners.unsqueeze(0) > 0.5, d, 1.0 - d).prod(dim=-1)


class DescriptorBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d with running statistics per binary descriptor (see the module docstring).

    Training normalises each descriptor group of the batch with its own batch statistics.
    Same parameters and ordinary running statistics as ``nn.BatchNorm2d``, plus the buffers
    ``corner_mean`` and ``corner_var`` ``(2^K, C)`` and ``corner_weight`` ``(2^K,)`` (the total
    update weight each corner received).

    Args:
        num_features: C, the channels.
        space_dim: K, the descriptor length (at most 12).
        eps, momentum: as ``nn.BatchNorm2d`` (``momentum=None``: cumulative averages; the
            corner statistics average cumulatively until ``1 / momentum`` updates either way).
    """

    def __init__(self, num_features: int, space_dim: int, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        if isinstance(space_dim, bool) or not isinstance(space_dim, int) or not 1 <= space_dim <= MAX_SPACE_DIM:
            raise ValueError(f"descriptor BatchNorm needs a descriptor length in [1, {MAX_SPACE_DIM}] "
                             f"(2^K statistics per layer), got {space_dim!r}")
        super().__init__(num_features, eps=eps, momentum=momentum)
        rows = 2 ** space_dim
        self.space_dim = space_dim
        self.register_buffer("corners", hypercube_corners(space_dim), persistent=False)
        self.register_buffer("corner_mean", torch.zeros(rows, num_features))
        self.register_buffer("corner_var", torch.ones(rows, num_features))
        self.register_buffer("corner_weight", torch.zeros(rows))

    def forward(self, x: Tensor, groups: DescriptorGroups) -> Tensor:  # type: ignore[override]
        """``(B, C, H, W)`` sorted by group (see :class:`DescriptorGroups`) -> same shape."""
        self._check_input_dim(x)
        parts = [x] if groups.counts is None else list(x.split(groups.counts))
        if self.training:
            out = [self._train_part(part, d) for part, d in zip(parts, groups.descriptors)]
        else:
            mean, var = self.statistics(groups.descriptors)
            out = [self._affine(part, m, v) for part, m, v in zip(parts, mean, var)]
        return out[0] if len(out) == 1 else torch.cat(out)

    def statistics(self, descriptors: Tensor) -> tuple[Tensor, Tensor]:
        """Running mean and variance ``(U, C)`` for descriptors ``(U, K)`` (or ``(K,)``: ``(C,)``)."""
        single = descriptors.dim() == 1
        w = corner_weights(descriptors.reshape(-1, self.space_dim), self.corners)
        seen = (self.corner_weight > 0).unsqueeze(1)
        corner_mean = torch.where(seen, self.corner_mean, self.running_mean)
        corner_var = torch.where(seen, self.corner_var, self.running_var)
        w = w.to(corner_mean.dtype)
        mean = w @ corner_mean
        var = (w @ (corner_var + corner_mean.square()) - mean.square()).clamp_min(0.0)
        return (mean[0], var[0]) if single else (mean, var)

    def _affine(self, x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
        scale = torch.rsqrt(var + self.eps).to(x.dtype)
        shift = mean.to(x.dtype)
        if self.affine:
            scale = scale * self.weight.to(x.dtype)
        out = (x - shift.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1)
        return out + self.bias.to(x.dtype).view(1, -1, 1, 1) if self.affine else out

    def _train_part(self, x: Tensor, descriptor: Tensor) -> Tensor:
        if x.shape[0] * x.shape[2] * x.shape[3] < 2:
            raise ValueError(f"descriptor BatchNorm needs more than one value per channel in training, got "
                             f"input of shape {tuple(x.shape)}")
        self.num_batches_tracked.add_(1)
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        out = nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                       True, momentum, self.eps)
        with torch.no_grad():
            var, mean = torch.var_mean(x.detach().float(), dim=(0, 2, 3), correction=1)  # one pass, no copy
            w = corner_weights(descriptor.detach().unsqueeze(0), self.corners)[0]
            self.corner_weight.add_(w)
            # cumulative average until a corner has 1 / momentum updates' weight, then the usual
            # exponential average: a rarely drawn corner is not left near its initial 0 / 1
            rate = w / self.corner_weight.clamp_min(1e-12)  # 0 wherever w is 0
            if self.momentum is not None:
                rate = torch.maximum(rate, self.momentum * w)
            rate = rate.unsqueeze(1).to(self.corner_mean.dtype)
            self.corner_mean.lerp_(mean.to(self.corner_mean.dtype).expand_as(self.corner_mean), rate)
            self.corner_var.lerp_(var.to(self.corner_var.dtype).expand_as(self.corner_var), rate)
        return out


def make_norm(norm: str, channels: int, space_dim: int) -> nn.BatchNorm2d:
    """``nn.BatchNorm2d`` for ``norm="batch"``, :class:`DescriptorBatchNorm2d` for ``"descriptor"``."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "descriptor":
        return DescriptorBatchNorm2d(channels, space_dim)
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def normalise(norm: nn.Module, x: Tensor, groups: DescriptorGroups) -> Tensor:
    """Apply ``norm`` to ``x``, passing the descriptor groups where it uses them."""
    return norm(x, groups) if isinstance(norm, DescriptorBatchNorm2d) else norm(x)
