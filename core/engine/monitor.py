"""Online k-NN monitor: accuracy of frozen features on a labelled split during pre-training."""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from core.encoders.base import InvarianceEncoder
from core.engine.config import MonitorConfig
from core.invariance import InvarianceSpace
from core.modality import Modality


def knn_predict(train_features: Tensor, train_labels: Tensor, test_features: Tensor, k: int) -> Tensor:
    """Majority vote of the ``k`` most cosine-similar training samples.

    Ties between classes with equal votes go to the class whose voters are more similar
    in total.

    Args:
        train_features: ``(N, D)``; train_labels: ``(N,)`` int64; test_features: ``(M, D)``.
        k: neighbours (clipped to N).

    Returns:
        ``(M,)`` int64 predicted labels.
    """
    if train_features.shape[0] == 0:
        raise ValueError("knn_predict needs at least one training sample")
    k = min(int(k), train_features.shape[0])
    sims = F.normalize(test_features.float(), dim=1) @ F.normalize(train_features.float(), dim=1).T
    top_sims, top_idx = sims.topk(k, dim=1)
    votes_for = train_labels[top_idx]                                        # (M, k)
    num_classes = int(train_labels.max()) + 1
    votes = torch.zeros(test_features.shape[0], num_classes).scatter_add_(1, votes_for, torch.ones_like(top_sims))
    total = torch.zeros_like(votes).scatter_add_(1, votes_for, top_sims)
    # total similarity lies in [-k, k]; scaled into (-0.5, 0.5) it only breaks ties of equal votes
    return (votes + total / (2 * k + 1)).argmax(dim=1)


def knn_accuracy(train_features: Tensor, train_labels: Tensor, test_features: Tensor, test_labels: Tensor,
                 k: int) -> float:
    """Fraction of test samples whose k-NN vote equals their label."""
    pred = knn_predict(train_features, train_labels, test_features, k)
    return float((pred == test_labels).float().mean())


def monitor_descriptors(space: InvarianceSpace, mode: str) -> dict[str, Tensor]:
    """``{"knn_ones": ones}`` plus, for ``leave_one_out``, ``{"knn_no_<name>": ones with that
    entry 0}`` for every entry where the remaining count is at least ``min_active``."""
    out = {"knn_ones": space.ones()}
    if mode == "leave_one_out" and space.dim - 1 >= space.min_active:
        for k, name in enumerate(space.names):
            d = space.ones()
            d[k] = 0.0
            out[f"knn_no_{name}"] = d
    return out


class OnlineMonitor:
    """Evaluates the encoder on ``modality.monitor_data()`` (call on rank 0 only).

    Args:
        modality: a set-up modality (its front end is fitted).
        config: the ``monitor:`` section.
        device: where features are computed.
    """

    def __init__(self, modality: Modality, config: MonitorConfig, device: torch.device) -> None:
        self.config = config
        self.device = device
        data = modality.monitor_data() if config.every > 0 else None
        self.active = data is not None
        if data is None:
            return
        train_raw, self.train_labels, test_raw, self.test_labels = data
        self.train_x = self._encode(modality, train_raw)
        self.test_x = self._encode(modality, test_raw)
        self.descriptors = monitor_descriptors(modality.space, config.descriptors)

    @torch.no_grad()
    def _encode(self, modality: Modality, raw: Tensor) -> Tensor:
        size = self.config.batch_size
        return torch.cat([modality.encode_input(raw[i:i + size].to(self.device)).cpu()
                          for i in range(0, raw.shape[0], size)])

    @torch.no_grad()
    def _features(self, encoder: InvarianceEncoder, x: Tensor, descriptor: Tensor) -> Tensor:
        size = self.config.batch_size
        d = descriptor.to(self.device)
        return torch.cat([encoder(x[i:i + size].to(self.device), d).float().cpu()
                          for i in range(0, x.shape[0], size)])

    def due(self, step: int) -> bool:
        """True when ``step`` is a monitor step."""
        return self.active and step % self.config.every == 0

    @torch.no_grad()
    def evaluate(self, encoder: InvarianceEncoder) -> dict[str, float]:
        """k-NN accuracy per monitor descriptor; the encoder is put in eval mode and back."""
        was_training = encoder.training
        encoder.eval()
        try:
            results = {}
            for key, d in self.descriptors.items():
                train_f = self._features(encoder, self.train_x, d)
                test_f = self._features(encoder, self.test_x, d)
                results[key] = knn_accuracy(train_f, self.train_labels, test_f, self.test_labels, self.config.k)
            return results
        finally:
            encoder.train(was_training)
