"""Scores of downstream predictions: top-1 accuracy, mean per-class accuracy, dataset-level R².

All three are computed over the whole set at once (never averaged over batches: the
paper's code averaged R² per batch, which is a different and biased number).
"""
from __future__ import annotations

import torch
from torch import Tensor


def _class_ids(pred: Tensor, target: Tensor, where: str) -> tuple[Tensor, Tensor]:
    """Predicted and true class ids ``(N,)``; ``pred`` may be ids ``(N,)`` or scores ``(N, C)``."""
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"{where}: pred and target must be tensors")
    if target.dim() != 1 or target.is_floating_point():
        raise ValueError(f"{where}: target must be (N,) integer class ids, got {tuple(target.shape)} "
                         f"{target.dtype}")
    if pred.dim() == 2:
        pred = pred.argmax(dim=1)
    elif pred.dim() != 1 or pred.is_floating_point():
        raise ValueError(f"{where}: pred must be (N,) integer class ids or (N, C) scores, got "
                         f"{tuple(pred.shape)} {pred.dtype}")
    if pred.shape[0] != target.shape[0]:
        raise ValueError(f"{where}: {pred.shape[0]} predictions but {target.shape[0]} targets")
    if target.shape[0] == 0:
        raise ValueError(f"{where}: no examples to score")
    return pred.detach().cpu().long(), target.detach().cpu().long()


def accuracy(pred: Tensor, target: Tensor) -> float:
    """Top-1 accuracy, a fraction in ``[0, 1]``.

    Args:
        pred: ``(N,)`` predicted class ids or ``(N, C)`` scores (arg-max taken).
        target: ``(N,)`` true class ids.
    """
    p, t = _class_ids(pred, target, "accuracy")
    return float((p == t).double().mean())


def mean_class_accuracy(pred: Tensor, target: Tensor, num_classes: int | None = None) -> float:
    """Mean over classes of the per-class recall (sklearn's balanced accuracy).

    Classes absent from ``target`` have no recall and are left out of the mean.

    Args:
        pred: ``(N,)`` predicted class ids or ``(N, C)`` scores.
        target: ``(N,)`` true class ids.
        num_classes: if given, every id must lie in ``[0, num_classes)``.
    """
    p, t = _class_ids(pred, target, "mean_class_accuracy")
    if num_classes is not None:
        if num_classes < 1:
            raise ValueError(f"mean_class_accuracy: num_classes must be >= 1, got {num_classes}")
        for name, ids in (("target", t), ("pred", p)):
            if int(ids.min()) < 0 or int(ids.max()) >= num_classes:
                raise ValueError(f"mean_class_accuracy: {name} ids must lie in [0, {num_classes}), got "
                                 f"[{int(ids.min())}, {int(ids.max())}]")
    if int(t.min()) < 0:
        raise ValueError(f"mean_class_accuracy: negative class id {int(t.min())} in target")
    size = int(t.max()) + 1
    correct = torch.bincount(t[p == t], minlength=size).double()
    total = torch.bincount(t, minlength=size).double()
    present = total > 0
    return float((correct[present] / total[present]).mean())


def r2_score(pred: Tensor, target: Tensor) -> float:
    """Coefficient of determination over the whole set, uniformly averaged over outputs.

    For each output t: ``1 - sum_n (y_nt - p_nt)^2 / sum_n (y_nt - mean_n y_nt)^2``; an output
    whose target is constant scores 1 if predicted exactly, else 0 (as sklearn does).

    Args:
        pred: ``(N,)`` or ``(N, T)`` predictions.
        target: same shape as ``pred``, N >= 2.
    """
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise TypeError("r2_score: pred and target must be tensors")
    if pred.shape != target.shape or pred.dim() not in (1, 2):
        raise ValueError(f"r2_score: pred {tuple(pred.shape)} and target {tuple(target.shape)} must "
                         "share one shape (N,) or (N, T)")
    if target.shape[0] < 2:
        raise ValueError(f"r2_score: needs at least 2 examples, got {target.shape[0]}")
    p = pred.detach().cpu().double().reshape(target.shape[0], -1)
    y = target.detach().cpu().double().reshape(target.shape[0], -1)
    residual = (y - p).pow(2).sum(dim=0)
    total = (y - y.mean(dim=0)).pow(2).sum(dim=0)
    constant = total == 0
    per_output = 1.0 - residual / torch.where(constant, torch.ones_like(total), total)
    per_output = torch.where(constant, (residual == 0).double(), per_output)
    return float(per_output.mean())


__all__ = ["accuracy", "mean_class_accuracy", "r2_score"]
