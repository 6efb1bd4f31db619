"""Hypernetwork layers: convolution kernels generated from an invariance descriptor.

Each residual block owns an embedding ``e = Linear(K -> E)(d)``; each convolution of the
block turns ``e`` into its kernel with one generator pass ``Linear(E -> H) -> ReLU -> out``
(the paper's single-pass design). Two output forms:

``"full"`` (the paper's): ``Linear(H -> out*in*k*k)``. Every kernel is a descriptor-weighted
    sum of H full kernels, so the generators hold about H times the parameters of the
    network they generate (H = 32: ~33x).
``"lowrank"`` (default): ``W(d) = W0 + sum_h h_h(d) u_h v_h^T`` with a learned full-rank
    base ``W0`` and H rank-one directions ``u_h v_h^T`` over (out) x (in*k*k). Same trunk,
    same H descriptor coefficients, but ``H*(out + in*k*k)`` extra parameters per conv
    (ResNet18: ~1.4x the plain network instead of ~33x). Optimiser cost grows with the
    parameter count, which is what dominates the hypernetwork's training overhead.

Initialisation is calibrated on the space's descriptors so the generated kernels have
He variance ``2 / fan_in`` on average; in the low-rank form a fraction ``base_fraction`` of
that variance sits in ``W0`` and the rest in the descriptor-dependent part, so the
descriptor matters from step 0 (the paper's code let an output bias dominate instead).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.encoders.base import DescriptorGroups

GENERATOR_FORMS = ("lowrank", "full")


class KernelGenerator(nn.Module):
    """Block embedding ``(U, E)`` -> convolution kernels ``(U, out, in, k, k)``.

    Args:
        embed_dim: E, size of the block embedding.
        hidden_dim: H, hidden width of the generator (also the number of descriptor
            coefficients per kernel).
        out_channels, in_channels, kernel_size: shape of the generated kernel.
        form: ``"lowrank"`` (default) or ``"full"`` (the paper's), see module docstring.
        base_fraction: low-rank form only, share of the initial kernel variance held by
            the descriptor-independent base ``W0`` (in [0, 1)).
    """

    def __init__(
        self,
        embed_dim: int,
        hidden_dim: int,
        out_channels: int,
        in_channels: int,
        kernel_size: int,
        form: str = "lowrank",
        base_fraction: float = 0.5,
    ) -> None:
        super().__init__()
        if form not in GENERATOR_FORMS:
            raise ValueError(f"generator form must be one of {GENERATOR_FORMS}, got {form!r}")
        if not 0.0 <= base_fraction < 1.0:
            raise ValueError(f"base_fraction must be in [0, 1), got {base_fraction}")
        for label, value in (("embed_dim", embed_dim), ("hidden_dim", hidden_dim)):
            if value < 1:
                raise ValueError(f"{label} must be positive, got {value}")
        self.form = form
        self.base_fraction = base_fraction
        self.kernel_shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.fan_in = in_channels * kernel_size * kernel_size
        self.hidden = nn.Linear(embed_dim, hidden_dim)
        if form == "full":
            numel = out_channels * self.fan_in
            self.basis = nn.Parameter(torch.empty(numel, hidden_dim))
            self.bias = nn.Parameter(torch.zeros(numel))
        else:
            self.out_factors = nn.Parameter(torch.empty(hidden_dim, out_channels))
            self.in_factors = nn.Parameter(torch.empty(hidden_dim, self.fan_in))
            self.base = nn.Parameter(torch.empty(out_channels, self.fan_in))
        # Provisional scale (unit hidden activations); `calibrate` sets the real one.
        self._init_output(hidden_sq_norm=float(hidden_dim) / 2)

    def coefficients(self, embedding: Tensor) -> Tensor:
        """Descriptor coefficients ``(U, H)`` from block embeddings ``(U, E)``."""
        return F.relu(self.hidden(embedding))

    def forward(self, embedding: Tensor) -> Tensor:
        """Kernels ``(U, out, in, k, k)`` for block embeddings ``(U, E)``."""
        h = self.coefficients(embedding)
        if self.form == "full":
            flat = F.linear(h, self.basis, self.bias)
        else:
            # (U, out, H) @ (H, in*k*k): sum_h h_h u_h v_h^T, plus the base kernel.
            scaled = (h.unsqueeze(-1) * self.out_factors).transpose(1, 2)
            flat = self.base + scaled @ self.in_factors
        return flat.reshape(h.shape[0], *self.kernel_shape)

    @torch.no_grad()
    def calibrate(self, embeddings: Tensor) -> None:
        """Re-initialise the output so kernels have He variance over these embeddings.

        Args:
            embeddings: ``(N, E)`` block embeddings of representative descriptors
                (all binary descriptors of the space).
        """
        # With zero hidden bias and centred embeddings (see `centre_embedding`) the hidden
        # pre-activations are zero-mean over the descriptors, so the coefficients vary with
        # the descriptor instead of sharing one large common part.
        self.hidden.bias.zero_()
        h = self.coefficients(embeddings)
        self._init_output(hidden_sq_norm=float(h.pow(2).sum(dim=1).mean()))

    @torch.no_grad()
    def _init_output(self, hidden_sq_norm: float) -> None:
        target = 2.0 / self.fan_in  # He variance for a conv followed by ReLU
        norm = max(hidden_sq_norm, 1e-6)
        if self.form == "full":
            # var(kernel) = var(basis) * |h|^2
            nn.init.normal_(self.basis, 0.0, math.sqrt(target / norm))
            self.bias.zero_()
        else:
            # var(delta) = var(u) * var(v) * |h|^2 for independent zero-mean u, v
            delta_var = target * (1.0 - self.base_fraction)
            factor_std = (delta_var / norm) ** 0.25
            nn.init.normal_(self.out_factors, 0.0, factor_std)
            nn.init.normal_(self.in_factors, 0.0, factor_std)
            nn.init.normal_(self.base, 0.0, math.sqrt(target * self.base_fraction))


@torch.no_grad()
def centre_embedding(embed: nn.Linear, descriptors: Tensor) -> Tensor:
    """Set ``embed``'s bias so its output is zero-mean over ``descriptors`` ``(N, K)``.

    Returns:
        The centred embeddings ``(N, E)``, ready for :meth:`KernelGenerator.calibrate`.
    """
    embed.bias.copy_(-embed.weight @ descriptors.mean(dim=0))
    return embed(descriptors)


class HyperConv2d(nn.Module):
    """A bias-free convolution whose kernel comes from a :class:`KernelGenerator`.

    Args:
        in_channels, out_channels, kernel_size, stride, padding: as ``nn.Conv2d``.
        embed_dim, hidden_dim, form, base_fraction: passed to the generator.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        *,
        embed_dim: int,
        hidden_dim: int,
        form: str = "lowrank",
        base_fraction: float = 0.5,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.generator = KernelGenerator(
            embed_dim, hidden_dim, out_channels, in_channels, kernel_size, form, base_fraction
        )

    def forward(self, x: Tensor, embedding: Tensor, groups: DescriptorGroups) -> Tensor:
        """Convolve ``x`` with the kernel of each sample's descriptor.

        Args:
            x: ``(B, in, H, W)``, sorted by group (see :meth:`DescriptorGroups.sort`).
            embedding: ``(U, E)``, the block embedding of each distinct descriptor.
            groups: how the batch splits over the U descriptors.

        Returns:
            ``(B, out, H', W')``.
        """
        kernels = self.generator(embedding)
        if groups.counts is None:
            return F.conv2d(x, kernels[0], stride=self.stride, padding=self.padding)
        parts = [
            F.conv2d(chunk, kernels[u], stride=self.stride, padding=self.padding)
            for u, chunk in enumerate(torch.split(x, groups.counts))
        ]
        return torch.cat(parts, dim=0)

    def extra_repr(self) -> str:
        out, cin, k, _ = self.generator.kernel_shape
        return f"{cin}, {out}, kernel_size={k}, stride={self.stride}, padding={self.padding}, form={self.generator.form}"
