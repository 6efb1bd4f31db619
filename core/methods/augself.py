"""AugSelf: a contrastive method plus heads that predict the difference of the two views'
augmentation parameters from their concatenated backbone features (Lee et al., 2021).

The heads make the backbone keep information about the augmentations (crop box, colour
factors, pitch shift, ...) that the contrastive loss alone would discard. Each augmentation
with a non-zero weight gets a 3-layer MLP ``(B, 2F) -> (B, d)`` predicting
``targets1 - targets2``, the modality's identity-friendly parameter encoding
(``Modality.param_targets``); the loss is ``contrastive + sum_n w_n * mse_n``.

Two bases: ``simclr`` (both views already go through the encoder together) and
``moco_v2`` (the key view also goes through the online encoder, in the same forward pass
as the query view, for the auxiliary heads; BatchNorm then sees both views, where plain
MoCo-v2's query pass sees one).
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn

from core.encoders.base import InvarianceEncoder
from core.losses import augself_loss
from core.methods.base import Method, MethodConfig
from core.methods.moco_v2 import MoCoV2
from core.methods.simclr import SimCLR

DEFAULT_WEIGHT = 0.5


def augself_weights(config: MethodConfig, target_dims: Mapping[str, int]) -> dict[str, float]:
    """The weighted augmentations: ``config.augself_weights`` or every available one at 0.5.

    Raises:
        ValueError: a weighted name the modality has no target for (lists the available ones),
            or no positive weight at all.
    """
    if config.augself_weights is None:
        weights = {name: DEFAULT_WEIGHT for name in target_dims}
    else:
        unknown = [name for name in config.augself_weights if name not in target_dims]
        if unknown:
            raise ValueError(f"method.augself_weights: no augmentation parameters named {unknown[0]!r}; "
                             f"available: {', '.join(target_dims)}")
        weights = {name: float(w) for name, w in config.augself_weights.items() if w > 0}
    if not weights:
        raise ValueError("AugSelf needs at least one augmentation with a positive weight "
                         f"(method.augself_weights); available: {', '.join(target_dims)}")
    return weights


class AugSelfHeads(nn.Module):
    """One MLP per weighted augmentation: ``cat(f1, f2)`` ``(B, 2F)`` -> ``(B, d_n)``.

    Args:
        num_features: F, the encoder's feature width.
        target_dims: augmentation name -> width of its target.
        weights: augmentation name -> loss weight (a head is built for each).
        hidden: hidden width of every MLP.
    """

    def __init__(self, num_features: int, target_dims: Mapping[str, int], weights: Mapping[str, float],
                 hidden: int = 512) -> None:
        super().__init__()
        self.weights = dict(weights)
        self.heads = nn.ModuleDict({
            name: nn.Sequential(nn.Linear(2 * num_features, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, int(target_dims[name])))
            for name in self.weights})

    def forward(self, f1: Tensor, f2: Tensor, targets1: Mapping[str, Tensor], targets2: Mapping[str, Tensor]
                ) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted MSE of the predicted differences; returns ``(loss, {name: mse})``."""
        joint = torch.cat([f1, f2], dim=1)
        predictions = {name: head(joint) for name, head in self.heads.items()}
        device = joint.device
        t1 = {name: targets1[name].to(device) for name in self.weights if name in targets1}
        t2 = {name: targets2[name].to(device) for name in self.weights if name in targets2}
        return augself_loss(predictions, t1, t2, self.weights)


class _AugSelf:
    """What both AugSelf variants add to their base: the heads and the combined loss."""

    inputs = "params"

    def _build_heads(self, encoder: InvarianceEncoder, config: MethodConfig,
                     target_dims: Mapping[str, int] | None) -> None:
        if not target_dims:
            raise ValueError("AugSelf needs the modality's augmentation target widths (target_dims)")
        self.augself = AugSelfHeads(encoder.num_features, target_dims, augself_weights(config, target_dims),
                                    config.augself_hidden)

    def _combine(self, loss: Tensor, logs: dict[str, Tensor], features: Tensor,
                 targets1: Mapping[str, Tensor], targets2: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        batch = features.shape[0] // 2
        aux, parts = self.augself(features[:batch], features[batch:], targets1, targets2)
        total = loss + aux
        out = {**logs, "loss": total.detach().float(), "contrastive": loss.detach().float(),
               "augself": aux.detach().float()}
        out.update({f"augself_{name}": value for name, value in parts.items()})
        return total, out


class AugSelfSimCLR(_AugSelf, SimCLR):
    """SimCLR + AugSelf heads (``method.name: augself``, ``method.augself_base: simclr``)."""

    def __init__(self, encoder: InvarianceEncoder, config: MethodConfig, seed: int = 0,
                 target_dims: Mapping[str, int] | None = None) -> None:
        SimCLR.__init__(self, encoder, config, seed)
        self._build_heads(encoder, config, target_dims)

    def forward(self, view1: Tensor, view2: Tensor, descriptor: Tensor, step: int,
                targets1: Mapping[str, Tensor] | None = None, targets2: Mapping[str, Tensor] | None = None
                ) -> tuple[Tensor, dict[str, Tensor]]:
        """Args as :meth:`SimCLR.forward` plus ``targets1``/``targets2``: name -> ``(B, d)``.

        Returns:
            ``(loss, logs)`` with ``contrastive``, ``augself`` and ``augself_<name>`` terms.
        """
        d = self.check_inputs(view1, view2, descriptor, step)
        _check_targets(targets1, targets2)
        features = self.encoder(torch.cat([view1, view2], dim=0), d)
        loss, logs = self.contrastive_loss(features)
        return self._combine(loss, logs, features, targets1, targets2)


class AugSelfMoCoV2(_AugSelf, MoCoV2):
    """MoCo-v2 + AugSelf heads (``method.augself_base: moco_v2``)."""

    def __init__(self, encoder: InvarianceEncoder, config: MethodConfig, seed: int = 0,
                 target_dims: Mapping[str, int] | None = None) -> None:
        MoCoV2.__init__(self, encoder, config, seed)
        self._build_heads(encoder, config, target_dims)

    def forward(self, view1: Tensor, view2: Tensor, descriptor: Tensor, step: int,
                targets1: Mapping[str, Tensor] | None = None, targets2: Mapping[str, Tensor] | None = None
                ) -> tuple[Tensor, dict[str, Tensor]]:
        """Args as :meth:`MoCoV2.forward` plus the targets; enqueues the step's keys."""
        d = self.check_inputs(view1, view2, descriptor, step)
        _check_targets(targets1, targets2)
        features = self.encoder(torch.cat([view1, view2], dim=0), d)
        loss, logs = self.query_loss(features[:view1.shape[0]], view2, d, step)
        return self._combine(loss, logs, features, targets1, targets2)


def _check_targets(targets1: Mapping[str, Tensor] | None, targets2: Mapping[str, Tensor] | None) -> None:
    if targets1 is None or targets2 is None:
        raise ValueError("AugSelf needs targets1 and targets2 (the engine passes them for methods whose "
                         "inputs kind is 'params')")


def build_augself(encoder: InvarianceEncoder, config: MethodConfig, seed: int = 0,
                  target_dims: Mapping[str, int] | None = None) -> Method:
    """AugSelf on ``config.augself_base`` (``simclr`` or ``moco_v2``)."""
    cls = AugSelfSimCLR if config.augself_base == "simclr" else AugSelfMoCoV2
    return cls(encoder, config, seed=seed, target_dims=target_dims)
