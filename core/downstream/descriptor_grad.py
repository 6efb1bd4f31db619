"""Features of a frozen encoder whose gradient reaches the invariance descriptor only.

Three exact ways to get ``d(loss)/d(descriptor)`` through a frozen encoder:

``"backprop"``: ordinary autograd on the whole batch; stores every activation.
``"forward"``: forward-mode differentiation (``torch.func.jvp``) with the descriptor as the
    only tangent input, the K one-hot tangents batched with ``torch.func.vmap`` and the batch
    cut into micro-batches. The forward pass returns the features and their Jacobian
    ``J = dz/di`` ``(B, D, K)``; the backward pass is ``grad_z . J``. No activation is kept,
    but each layer carries K tangents, so it costs several forward passes of time.
``"light"``: micro-batched recomputation. The forward pass computes the features of the
    whole batch without a graph (what a fixed-descriptor readout does); the backward pass
    recomputes one micro-batch at a time with a graph and back-propagates its share of
    ``grad_z`` at once. Peak memory is the graph of one micro-batch; time is about one extra
    gradient-free forward pass over back-propagation, plus the cost of smaller batches. It
    works for any loss, including ones that couple the samples (e.g. a ridge solution).
    When the loss is a mean over samples, accumulating gradients over micro-batches is
    cheaper still (no recomputation): that is what the probe's ``grad="light"`` does, see
    :func:`core.downstream.probe.train_probe` and ``bench/downstream_memory.py``.

In every mode the encoder's parameters and buffers are constants: no ``.grad`` is written to
them and BatchNorm statistics are never updated (``"forward"`` and ``"light"`` need eval mode,
since they evaluate the encoder on micro-batches or twice).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Literal

import torch
from torch import Tensor
from torch.func import functional_call, jvp, vmap

from core.encoders.base import InvarianceEncoder

GRAD_MODES = ("backprop", "forward", "light")
GradMode = Literal["backprop", "forward", "light"]


def frozen_parameters(encoder: InvarianceEncoder) -> dict[str, Tensor]:
    """The encoder's parameters as detached tensors (constants for ``functional_call``)."""
    return {name: p.detach() for name, p in encoder.named_parameters()}


@contextmanager
def forward_ad_ready(encoder: InvarianceEncoder) -> Iterator[None]:
    """Temporarily switch off fused attention (``fused_attn``, e.g. timm's ViT attention).

    PyTorch's fused scaled-dot-product attention has no forward-mode derivative; the
    explicit attention computes the same values. The flags are restored on exit.
    """
    saved = [(m, m.fused_attn) for m in encoder.modules() if isinstance(getattr(m, "fused_attn", None), bool)]
    try:
        for module, _ in saved:
            module.fused_attn = False
        yield
    finally:
        for module, flag in saved:
            module.fused_attn = flag


def _frozen_forward(encoder: InvarianceEncoder, params: dict[str, Tensor], x: Tensor, d: Tensor) -> Tensor:
    return functional_call(encoder, params, (x, d))


class _ForwardModeFeatures(torch.autograd.Function):
    """Features ``(B, D)`` and, saved for backward, the Jacobian ``(K, B, D)`` by forward mode."""

    @staticmethod
    def forward(ctx, descriptor: Tensor, x: Tensor, encoder: InvarianceEncoder, micro_batch: int) -> Tensor:
        d = descriptor.detach()
        params = frozen_parameters(encoder)
        tangents = torch.eye(d.shape[0], dtype=d.dtype, device=d.device)
        features, jacobians = [], []
        with forward_ad_ready(encoder):
            for chunk in x.split(micro_batch):
                def tangent_of(t: Tensor, chunk: Tensor = chunk) -> tuple[Tensor, Tensor]:
                    return jvp(lambda v: _frozen_forward(encoder, params, chunk, v), (d,), (t,))

                z, jac = vmap(tangent_of, out_dims=(None, 0))(tangents)  # (b, D), (K, b, D)
                features.append(z)
                jacobians.append(jac)
        ctx.save_for_backward(torch.cat(jacobians, dim=1))
        return torch.cat(features)

    @staticmethod
    def backward(ctx, grad_z: Tensor) -> tuple[Tensor, None, None, None]:
        (jac,) = ctx.saved_tensors
        return torch.einsum("bd,kbd->k", grad_z.to(jac.dtype), jac), None, None, None


class _RecomputedFeatures(torch.autograd.Function):
    """Features ``(B, D)`` without a graph; backward recomputes them micro-batch by micro-batch."""

    @staticmethod
    def forward(ctx, descriptor: Tensor, x: Tensor, encoder: InvarianceEncoder, micro_batch: int) -> Tensor:
        d = descriptor.detach()
        params = frozen_parameters(encoder)
        z = _frozen_forward(encoder, params, x, d)  # no graph: transient memory only, as in a fixed readout
        ctx.save_for_backward(d, x)
        ctx.encoder, ctx.micro_batch = encoder, micro_batch
        return z

    @staticmethod
    def backward(ctx, grad_z: Tensor) -> tuple[Tensor, None, None, None]:
        d, x = ctx.saved_tensors
        params = frozen_parameters(ctx.encoder)
        grad = torch.zeros_like(d)
        with torch.enable_grad():
            for chunk, g in zip(x.split(ctx.micro_batch), grad_z.split(ctx.micro_batch)):
                leaf = d.detach().requires_grad_(True)
                z = _frozen_forward(ctx.encoder, params, chunk, leaf)
                grad += torch.autograd.grad(z, leaf, g)[0]
        return grad, None, None, None


def features_with_descriptor_grad(encoder: InvarianceEncoder, x: Tensor, descriptor: Tensor,
                                  mode: GradMode, micro_batch: int = 32) -> Tensor:
    """Encoder features whose only gradient path is the descriptor.

    Args:
        encoder: the frozen encoder (eval mode for ``"forward"`` and ``"light"``).
        x: ``(B, C, H, W)`` inputs on the encoder's device.
        descriptor: ``(K,)`` in ``[0, 1]``, usually a leaf with ``requires_grad``.
        mode: ``"backprop"``, ``"forward"`` or ``"light"`` (see the module docstring).
        micro_batch: samples per micro-batch for ``"forward"`` and ``"light"``.

    Returns:
        ``(B, encoder.num_features)`` features; identical values in every mode, and the same
        gradient with respect to ``descriptor`` (no gradient reaches the encoder).
    """
    if mode not in GRAD_MODES:
        raise ValueError(f"features_with_descriptor_grad: mode must be one of {list(GRAD_MODES)}, got {mode!r}")
    if isinstance(micro_batch, bool) or not isinstance(micro_batch, int) or micro_batch < 1:
        raise ValueError(f"features_with_descriptor_grad: micro_batch must be a positive int, got {micro_batch!r}")
    d = encoder.space.check(descriptor)
    if d.dim() != 1:
        raise ValueError(f"features_with_descriptor_grad: descriptor must be one vector "
                         f"({encoder.space.dim},), got {tuple(d.shape)}")
    if mode == "backprop":
        return _frozen_forward(encoder, frozen_parameters(encoder), x, d)
    if encoder.training:
        raise ValueError(f"features_with_descriptor_grad: mode {mode!r} needs the encoder in eval mode "
                         "(it evaluates micro-batches or recomputes; call encoder.eval())")
    function = _ForwardModeFeatures if mode == "forward" else _RecomputedFeatures
    return function.apply(d, x, encoder, micro_batch)


__all__ = ["GRAD_MODES", "features_with_descriptor_grad", "forward_ad_ready", "frozen_parameters"]
