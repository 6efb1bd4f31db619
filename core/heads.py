"""Projector and predictor MLPs placed on top of an encoder.

The paper uses a 3-layer projector and a 2-layer predictor with hidden width 4096 and
output width 256 (vision). Following MoCo-v3, hidden linears are followed by BatchNorm
and ReLU (and carry no bias, as BatchNorm's shift replaces it); the projector ends in a
BatchNorm without affine parameters.
"""
from __future__ import annotations

from torch import Tensor, nn


def _check_positive_int(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


class MLPHead(nn.Module):
    """``num_layers`` linears with (BatchNorm +) ReLU between them.

    Layout for ``num_layers = L``::

        [Linear(in, hidden) -> BN(hidden)? -> ReLU] x (L - 1) -> Linear(., out) -> BN(out)?

    Args:
        in_dim: width of the input features.
        hidden_dim: width of every hidden layer (unused when ``num_layers == 1``).
        out_dim: width of the output.
        num_layers: number of linear layers, >= 1.
        batch_norm: put a ``BatchNorm1d`` after each hidden linear (hidden linears then
            have no bias).
        last_bn: end with ``BatchNorm1d(out_dim, affine=False)`` (MoCo-v3 projector); the
            last linear then has no bias.

    Shapes:
        input ``(B, in_dim)`` -> output ``(B, out_dim)``.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        batch_norm: bool = True,
        last_bn: bool = False,
    ) -> None:
        super().__init__()
        _check_positive_int("in_dim", in_dim)
        _check_positive_int("hidden_dim", hidden_dim)
        _check_positive_int("out_dim", out_dim)
        _check_positive_int("num_layers", num_layers)
        for name, flag in (("batch_norm", batch_norm), ("last_bn", last_bn)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be a bool, got {flag!r}")
        self.in_dim = in_dim
        self.hidden_dim = hidden_dim
        self.out_dim = out_dim
        self.num_layers = num_layers
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(width, hidden_dim, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.ReLU(inplace=True))
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim, bias=not last_bn))
        if last_bn:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Map features ``(B, in_dim)`` to ``(B, out_dim)``."""
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"MLPHead expects input of shape (B, {self.in_dim}), got {tuple(x.shape)}")
        return self.layers(x)

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, hidden_dim={self.hidden_dim}, out_dim={self.out_dim}, num_layers={self.num_layers}"


def projector(
    in_dim: int,
    hidden_dim: int = 4096,
    out_dim: int = 256,
    num_layers: int = 3,
    last_bn: bool = True,
) -> MLPHead:
    """The projector used after the encoder (paper: 3 layers, 4096 hidden, 256 out).

    Shapes: ``(B, in_dim)`` -> ``(B, out_dim)``.
    """
    return MLPHead(in_dim, hidden_dim, out_dim, num_layers=num_layers, last_bn=last_bn)


def predictor(
    in_dim: int = 256,
    hidden_dim: int = 4096,
    out_dim: int = 256,
    num_layers: int = 2,
    last_bn: bool = False,
) -> MLPHead:
    """The MoCo-v3 predictor on top of the projector (paper: 2 layers, 4096 hidden, 256 out).

    Shapes: ``(B, in_dim)`` -> ``(B, out_dim)``.
    """
    return MLPHead(in_dim, hidden_dim, out_dim, num_layers=num_layers, last_bn=last_bn)
