"""The interface every contrastive pre-training method implements, and its configuration.

A method owns the encoder (attribute ``encoder``, so the encoder's weights appear in
``method.state_dict()`` under ``"encoder."``) and its heads, and turns two views plus the
step's descriptor into a loss. Losses are pure functions in :mod:`core.losses`; a method
knows nothing about files or ranks beyond the collectives of :mod:`core.distributed`.
"""
from __future__ import annotations

import math
import numbers
import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Mapping

from torch import Tensor, nn

from core.config import ConfigError
from core.encoders.base import InvarianceEncoder
from core.heads import MLPHead, projector

MethodName = Literal["simclr", "moco_v2", "moco_v3", "looc", "augself"]
BatchNormMode = Literal["shuffle", "sync", "local"]
AugSelfBase = Literal["simclr", "moco_v2"]


@dataclass
class MethodConfig:
    """Hyper-parameters of a contrastive method (the ``method:`` section of a config).

    Attributes:
        name: ``"simclr"``, ``"moco_v2"`` or ``"moco_v3"``.
        temperature: softmax temperature (NT-Xent 0.5 as in SimCLR/CLAR; MoCo 0.2).
        proj_layers: projector depth (paper vision: 3).
        proj_hidden: projector hidden width (paper vision: 4096).
        proj_out: projector output width = key/queue width (paper vision: 256).
        pred_hidden: hidden width of MoCo-v3's 2-layer predictor.
        queue_size: MoCo-v2 negatives per descriptor (one queue per descriptor).
        momentum: MoCo-v2 EMA momentum; MoCo-v3 base momentum, cosine-increased to 1.
        batch_norm: BatchNorm handling of the MoCo key encoder: ``"shuffle"`` (shuffle-BN
            across ranks), ``"sync"`` (the engine converts every BatchNorm of the method to
            SyncBatchNorm) or ``"local"`` (per-rank statistics).
        looc_entries: LooC: the space entries that get an embedding space (a head) of their
            own, sensitive to that entry; None = every entry of the space.
        augself_base: AugSelf: the contrastive method it is added to.
        augself_weights: AugSelf: augmentation name -> loss weight of its parameter-difference
            head; None = every augmentation the space switches on, weight 0.5 (AugSelf's
            ImageNet-100 weight for crop and colour).
        augself_hidden: AugSelf: hidden width of each 3-layer prediction MLP.
    """

    name: MethodName = "simclr"
    temperature: float = 0.5
    proj_layers: int = 2
    proj_hidden: int = 2048
    proj_out: int = 128
    pred_hidden: int = 4096
    queue_size: int = 65536
    momentum: float = 0.999
    batch_norm: BatchNormMode = "shuffle"
    looc_entries: list[str] | None = None
    augself_base: AugSelfBase = "simclr"
    augself_weights: dict[str, float] | None = None
    augself_hidden: int = 512

    def __post_init__(self) -> None:
        for key, alias in (("name", MethodName), ("batch_norm", BatchNormMode), ("augself_base", AugSelfBase)):
            allowed = list(typing.get_args(alias))
            if getattr(self, key) not in allowed:
                raise ConfigError(f"MethodConfig.{key}: {getattr(self, key)!r} is not one of {allowed}")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not math.isfinite(t) or t <= 0:
            raise ConfigError(f"MethodConfig.temperature must be a positive finite number, got {t!r}")
        for key in ("proj_layers", "proj_hidden", "proj_out", "pred_hidden", "queue_size", "augself_hidden"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"MethodConfig.{key} must be an int >= 1, got {value!r}")
        m = self.momentum
        if isinstance(m, bool) or not isinstance(m, numbers.Real) or not 0.0 <= m <= 1.0:
            raise ConfigError(f"MethodConfig.momentum must be a number in [0, 1], got {m!r}")
        if self.looc_entries is not None and (not self.looc_entries or len(set(self.looc_entries)) != len(self.looc_entries)):
            raise ConfigError(f"MethodConfig.looc_entries must be null or distinct entry names, got {self.looc_entries!r}")
        for name, weight in (self.augself_weights or {}).items():
            if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight) or weight < 0:
                raise ConfigError(f"MethodConfig.augself_weights[{name!r}] must be a finite number >= 0, got {weight!r}")


def build_projector(encoder: InvarianceEncoder, config: MethodConfig) -> MLPHead:
    """The projector ``(B, encoder.num_features) -> (B, config.proj_out)`` of a method."""
    return projector(
        encoder.num_features, hidden_dim=config.proj_hidden, out_dim=config.proj_out,
        num_layers=config.proj_layers,
    )


class Method(nn.Module, ABC):
    """Turns two views and the step's descriptor into a loss.

    Knows nothing of files or ranks beyond :mod:`core.distributed` collectives.

    Args:
        encoder: the invariance encoder to pre-train (kept as ``self.encoder``).
        config: the method's hyper-parameters.
        seed: non-negative int for the method's own randomness (queue initialisation,
            shuffle-BN permutations).
    """

    encoder: InvarianceEncoder
    inputs: ClassVar[str] = "pair"  # what the engine feeds forward(): see core.engine.views

    def __init__(self, encoder: InvarianceEncoder, config: MethodConfig, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(encoder, InvarianceEncoder):
            raise ValueError(f"{type(self).__name__} needs an InvarianceEncoder, got {type(encoder).__name__}")
        if not isinstance(config, MethodConfig):
            raise ValueError(f"{type(self).__name__} needs a MethodConfig, got {type(config).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"{type(self).__name__} seed must be an int >= 0, got {seed!r}")
        self.encoder = encoder
        self.config = config
        self.seed = seed

    @abstractmethod
    def forward(self, view1: Tensor, view2: Tensor, descriptor: Tensor, step: int
                ) -> tuple[Tensor, dict[str, Tensor]]:
        """One step's loss.

        Args:
            view1: ``(B, C, H, W)`` encoder inputs of the first view.
            view2: ``(B, C, H, W)`` encoder inputs of the second view (row i pairs with
                ``view1[i]``).
            descriptor: ``(K,)`` binary descriptor of the step (identical on every rank).
            step: global step (seeds shuffle-BN permutations identically on every rank).

        Returns:
            The scalar loss and detached 0-d tensors to log (at least ``"loss"``).
        """

    def on_step_end(self, step: int, total_steps: int) -> None:
        """Called after ``optimizer.step()`` (momentum update for MoCo); no-op by default."""
        check_step(step, total_steps)

    def extra_state(self) -> dict[str, Any]:
        """State outside ``state_dict()`` to checkpoint (plain data and tensors)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`extra_state`; this method has none, so only ``{}`` is accepted."""
        if not isinstance(state, Mapping) or len(state) != 0:
            got = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"{type(self).__name__} has no extra state to load, got {got}")

    def check_inputs(self, view1: Tensor, view2: Tensor, descriptor: Tensor, step: int) -> Tensor:
        """Validate a step's inputs; returns the descriptor ``(K,)`` on the views' device.

        Raises:
            ValueError: a view that is not a floating ``(B, C, H, W)`` tensor, views of
                different shape or device, fewer than 2 samples in training mode (the
                heads' BatchNorm needs 2), a descriptor not of shape ``(K,)`` or outside
                ``[0, 1]``, or a negative step.
        """
        for name, view in (("view1", view1), ("view2", view2)):
            if not isinstance(view, Tensor):
                raise ValueError(f"{name} must be a torch.Tensor, got {type(view).__name__}")
            if view.dim() != 4:
                raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(view.shape)}")
            if not view.is_floating_point():
                raise ValueError(f"{name} must be a floating-point tensor, got dtype {view.dtype}")
        if view1.shape != view2.shape:
            raise ValueError(
                f"view1 and view2 must have the same shape, got {tuple(view1.shape)} and {tuple(view2.shape)}"
            )
        if view1.device != view2.device:
            raise ValueError(f"view1 and view2 must be on one device, got {view1.device} and {view2.device}")
        if self.training and view1.shape[0] < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 samples per view in training mode "
                f"(BatchNorm), got a batch of {view1.shape[0]}"
            )
        space = self.encoder.space
        if not isinstance(descriptor, Tensor) or descriptor.dim() != 1 or descriptor.shape[0] != space.dim:
            got = tuple(descriptor.shape) if isinstance(descriptor, Tensor) else type(descriptor).__name__
            raise ValueError(
                f"descriptor must be a tensor of shape ({space.dim},) for entries {list(space.names)}, got {got}"
            )
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        return space.check(descriptor).to(view1.device)


def check_step(step: int, total_steps: int) -> None:
    """Validate ``on_step_end`` arguments: ints with ``total_steps >= 1`` and ``step >= 0``."""
    for name, value, minimum in (("step", step, 0), ("total_steps", total_steps, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"on_step_end {name} must be an int >= {minimum}, got {value!r}")
