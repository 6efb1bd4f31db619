"""Fine-tuning baselines: update the whole encoder, or only its last k blocks, plus a linear head.

The descriptor stays fixed (all ones by default = the ordinary contrastive model). Frozen
blocks are kept in eval mode so their BatchNorm statistics never change; the trainable
blocks train in train mode. Everything happens on a deep copy: the encoder passed in is
never modified. Trainable parameters, wall time and peak memory are reported next to the
score so fine-tuning can be set against the (amortised) linear probe in a Pareto table.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from core.downstream.blocks import encoder_blocks, parse_blocks
from core.downstream.checks import NonFiniteLossError, check_classes, check_finite_features, check_finite_loss
from core.downstream.clips import ClipSource, pool_by_owner
from core.downstream.cost import CostMeter, count_trainable
from core.downstream.metrics import accuracy, mean_class_accuracy, r2_score
from core.encoders.base import InvarianceEncoder


@dataclass
class FinetuneConfig:
    """Options of :func:`finetune`.

    Attributes:
        task: ``"classification"`` (cross-entropy) or ``"regression"`` (MSE on standardised targets).
        blocks: ``"all"`` or ``"last:<k>"`` (only the last k of :func:`encoder_blocks` train).
        descriptor: the fixed descriptor (K values in [0, 1]); ``None`` = all ones.
        epochs, lr, weight_decay, batch_size: AdamW training settings (batch in pieces).
        budget_s: optional wall-clock budget in seconds: training stops after the step that
            crosses it.
        seed: seeds the head initialisation and the shuffling.
    """

    task: Literal["classification", "regression"] = "classification"
    blocks: str = "all"
    descriptor: list[float] | None = None
    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    budget_s: float | None = None
    seed: int = 0


@dataclass
class FinetuneResult:
    """What :func:`finetune` measured.

    Attributes:
        metrics: on ``test`` (empty without one): classification ``accuracy`` and
            ``mean_class_accuracy`` (clips vote over their pieces), regression ``r2``.
        trainable_params: encoder parameters updated plus the head's.
        wall_s, peak_mb: cost of the training (see :class:`~core.downstream.cost.CostMeter`).
        epochs_done: complete epochs trained (fewer than asked when the budget ran out).
        steps_done: optimiser steps taken. budget_hit: whether the budget stopped training.
        train_loss: mean loss of the last epoch trained (partial epoch included).
        blocks: the config's block spec. descriptor: the fixed descriptor used.
    """

    metrics: dict[str, float]
    trainable_params: int
    wall_s: float
    peak_mb: float
    epochs_done: int
    steps_done: int = 0
    budget_hit: bool = False
    train_loss: float = float("nan")
    blocks: str = "all"
    descriptor: list[float] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_config(config: FinetuneConfig) -> None:
    if config.task not in ("classification", "regression"):
        raise ValueError(f"FinetuneConfig.task: must be 'classification' or 'regression', got {config.task!r}")
    for key in ("epochs", "batch_size"):
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"FinetuneConfig.{key}: must be a positive integer, got {value!r}")
    if not config.lr > 0 or not config.weight_decay >= 0:
        raise ValueError(f"FinetuneConfig: need lr > 0 and weight_decay >= 0, got {config.lr}, {config.weight_decay}")
    if config.budget_s is not None and not config.budget_s > 0:
        raise ValueError(f"FinetuneConfig.budget_s: must be positive or None, got {config.budget_s!r}")


def _targets(source: ClipSource, task: str, where: str) -> Tensor:
    """Classification: ``(N,)`` int64; regression: ``(N, T)`` float32."""
    y = source.labels
    if task == "classification":
        if y.dim() != 1 or y.is_floating_point():
            raise ValueError(f"finetune: classification needs (N,) integer labels in {where}, got "
                             f"{tuple(y.shape)} {y.dtype}")
        return y.long()
    if not y.is_floating_point():
        raise ValueError(f"finetune: regression needs float targets in {where}, got {y.dtype}")
    return (y.unsqueeze(1) if y.dim() == 1 else y).float()


def _batches(order: list[int], batch_size: int, source: ClipSource, gen: torch.Generator):
    """Yield ``(x, clips)`` mini-batches: pieces ``(b, C, H, W)`` and their clip indices ``(b,)``.

    Clips are read ``batch_size`` at a time and their pieces shuffled and cut into batches of
    at most ``batch_size`` pieces; a batch of a single piece is merged into the one before it
    (BatchNorm cannot train on one sample).
    """
    pending: tuple[Tensor, Tensor] | None = None
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        x, owner = source.pieces(idx)
        perm = torch.randperm(x.shape[0], generator=gen)
        x, clips = x[perm], torch.as_tensor(idx)[owner[perm]]
        for a in range(0, x.shape[0], batch_size):
            batch = (x[a:a + batch_size], clips[a:a + batch_size])
            if pending is not None and batch[0].shape[0] == 1:
                batch = (torch.cat([pending[0], batch[0]]), torch.cat([pending[1], batch[1]]))
            elif pending is not None:
                yield pending
            pending = batch
    if pending is not None:
        yield pending


@dataclass
class Finetuned:
    """A fine-tuned copy of an encoder with its head and the fixed descriptor.

    Attributes:
        model: the trained copy (in eval mode after :func:`fit_finetune`).
        head: ``nn.Linear(num_features, outputs)``.
        descriptor: ``(K,)`` the fixed descriptor.
        task: ``"classification"`` or ``"regression"``.
        target_mean, target_std: ``(T,)`` standardisation of regression targets (0 and 1 for
            classification).
    """

    model: InvarianceEncoder
    head: nn.Linear
    descriptor: Tensor
    task: str
    target_mean: Tensor
    target_std: Tensor

    @torch.no_grad()
    def predict(self, source: ClipSource, batch_size: int = 64, device: str | torch.device = "cpu") -> Tensor:
        """Per clip: ``(N, C)`` class probabilities averaged over its pieces ("voting"), or
        ``(N, T)`` regression predictions (de-standardised) averaged over its pieces."""
        self.model.eval()
        self.head.eval()
        d = self.descriptor.to(device)
        preds = []
        for i in range(0, len(source), batch_size):
            idx = list(range(i, min(i + batch_size, len(source))))
            x, owner = source.pieces(idx)
            feats = torch.cat([self.model(x[j:j + batch_size].to(device), d).float()
                               for j in range(0, x.shape[0], batch_size)])
            check_finite_features(feats, source.piece_names(idx, owner), " of the fine-tuned encoder")
            out = self.head(feats).float().cpu()
            out = out.softmax(1) if self.task == "classification" else out * self.target_std + self.target_mean
            preds.append(pool_by_owner(out, owner, len(idx)))
        return torch.cat(preds)

    def evaluate(self, source: ClipSource, batch_size: int = 64, device: str | torch.device = "cpu") -> dict[str, float]:
        """Classification ``accuracy`` and ``mean_class_accuracy``, or regression ``r2``."""
        target = _targets(source, self.task, "test")
        pred = self.predict(source, batch_size, device)
        if self.task == "regression":
            return {"r2": r2_score(pred, target)}
        label = pred.argmax(1)
        num_classes = max(pred.shape[1], int(target.max()) + 1)  # test may hold classes never trained on
        return {"accuracy": accuracy(label, target),
                "mean_class_accuracy": mean_class_accuracy(label, target, num_classes)}


def _new_head(num_features: int, outputs: int, gen: torch.Generator) -> nn.Linear:
    """``nn.Linear``'s default uniform weight range, drawn from ``gen``; zero bias."""
    head = nn.Linear(num_features, outputs)
    bound = 1 / math.sqrt(num_features)
    with torch.no_grad():
        head.weight.copy_(torch.rand(head.weight.shape, generator=gen) * 2 * bound - bound)
        head.bias.zero_()
    return head


def _check_step_features(feats: Tensor, x: Tensor, clips: Tensor, train: ClipSource, steps: int,
                         epochs_done: int, model: InvarianceEncoder, descriptor: Tensor) -> None:
    """Name non-finite features ``(b, D)`` of a training batch: the inputs ``x`` ``(b, ...)`` of
    clips ``clips`` ``(b,)`` are at fault when they are non-finite themselves or the weights
    are still the pre-trained ones (step 0); later it is the fine-tuning that diverged.

    In train mode one bad clip spoils its whole batch (BatchNorm's batch statistics), so the
    clips are found again with the model in eval mode.

    Raises:
        NonFiniteFeaturesError: names the clips. NonFiniteLossError: training diverged.
    """
    if bool(torch.isfinite(feats.detach()).all()):
        return
    ids = clips.tolist()
    names = lambda row: train.describe(ids[row])  # noqa: E731
    flat = x.reshape(x.shape[0], -1)
    if not bool(torch.isfinite(flat).all()):
        check_finite_features(flat, names, " (their inputs already are)")
    if steps == 0:
        modes = [(m, m.training) for m in model.modules()]
        try:
            with torch.no_grad():
                check_finite_features(model.eval()(x.to(descriptor.device), descriptor), names)
        finally:
            for module, mode in modes:
                module.training = mode
        check_finite_features(feats, names)
    raise NonFiniteLossError(f"finetune: the features became NaN or infinite at epoch {epochs_done + 1}, step "
                             f"{steps + 1} (the pre-trained encoder's were finite): the fine-tuning diverged "
                             f"(try a smaller --lr); nothing was written")


def fit_finetune(encoder: InvarianceEncoder, train: ClipSource, config: FinetuneConfig,
                 device: str | torch.device = "cpu", progress: bool = False) -> tuple[Finetuned, FinetuneResult]:
    """Fine-tune a copy of ``encoder`` (all or its last blocks) with a linear head on ``train``.

    Pieces train with their clip's label (AdamW; cross-entropy, or MSE on targets standardised
    with the training mean and std). ``encoder`` itself is never modified.

    Args:
        encoder: the pre-trained encoder.
        train: labelled clips, pieces ``(C, H, W)``.
        config: see :class:`FinetuneConfig`.
        device: where to train.
        progress: show a tqdm bar over epochs.

    Returns:
        The fitted model and a result with empty ``metrics``; ``wall_s`` and ``peak_mb``
        cover copying the encoder and training.

    Raises:
        TooFewClassesError: classification training clips of fewer than 2 classes.
        NonFiniteFeaturesError: the inputs, or the pre-trained encoder's features, of some
            training clips are NaN or infinite (names the clips).
        NonFiniteLossError: the loss or the features became NaN or infinite while training.
    """
    _check_config(config)
    device = torch.device(device)
    d = encoder.space.check(encoder.space.ones() if config.descriptor is None else config.descriptor)
    y = _targets(train, config.task, "train")
    if len(train) < 2:
        raise ValueError(f"finetune: need at least 2 training clips, got {len(train)}")
    if config.task == "classification":
        check_classes(y, train.class_names, "finetune: the training clips")
    gen = torch.Generator().manual_seed(config.seed)
    if config.task == "classification":
        outputs, mean, std = max(int(y.max()) + 1, len(train.class_names or [])), torch.zeros(1), torch.ones(1)
    else:
        outputs, mean, std = y.shape[1], y.mean(0), y.std(0, unbiased=False)
        std = torch.where(std > 0, std, torch.ones_like(std))
    with CostMeter(device) as cost:
        model = copy.deepcopy(encoder).to(device)
        model.requires_grad_(False).eval()
        blocks = encoder_blocks(model)
        for block in blocks[len(blocks) - parse_blocks(config.blocks, len(blocks)):]:
            block.requires_grad_(True).train()  # frozen blocks stay in eval: BN statistics untouched
        head = _new_head(model.num_features, outputs, gen).to(device)
        params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        dd, mean_d, std_d = d.to(device), mean.to(device), std.to(device)
        start, steps, epochs_done, budget_hit, loss_mean = time.perf_counter(), 0, 0, False, float("nan")

        def out_of_time() -> bool:  # checked before each step: the step that crosses the budget is the last
            return config.budget_s is not None and steps > 0 and time.perf_counter() - start >= config.budget_s

        for _ in tqdm(range(config.epochs), desc=f"finetune {config.blocks}", disable=not progress):
            if out_of_time():
                budget_hit = True
                break
            total, count = 0.0, 0
            for x, clips in _batches(torch.randperm(len(train), generator=gen).tolist(), config.batch_size, train, gen):
                if out_of_time():
                    budget_hit = True
                    break
                feats = model(x.to(device), dd)
                _check_step_features(feats, x, clips, train, steps, epochs_done, model, dd)
                out, target = head(feats), y[clips].to(device)
                if config.task == "classification":
                    loss = F.cross_entropy(out, target)
                else:
                    loss = F.mse_loss(out, (target - mean_d) / std_d)
                check_finite_loss(loss, f"finetune {config.blocks} (lr {config.lr:g}, weight decay "
                                        f"{config.weight_decay:g}, epoch {epochs_done + 1}, step {steps + 1})")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                steps += 1
                total, count = total + float(loss.detach()) * x.shape[0], count + x.shape[0]
            loss_mean = total / count if count else loss_mean
            if budget_hit:
                break
            epochs_done += 1
        model.eval()
    fitted = Finetuned(model, head.eval(), dd, config.task, mean, std)
    result = FinetuneResult(
        metrics={}, trainable_params=count_trainable(model, head), wall_s=cost.wall_s, peak_mb=cost.peak_mb,
        epochs_done=epochs_done, steps_done=steps, budget_hit=budget_hit, train_loss=loss_mean,
        blocks=config.blocks, descriptor=[float(v) for v in d])
    return fitted, result


def finetune(encoder: InvarianceEncoder, train: ClipSource, config: FinetuneConfig,
             test: ClipSource | None = None, device: str | torch.device = "cpu",
             progress: bool = False) -> FinetuneResult:
    """:func:`fit_finetune`, then score ``test`` (if given) with :meth:`Finetuned.evaluate`.

    Test clips are predicted by averaging their pieces' softmax probabilities
    (classification) or predictions (regression); ``test`` is never used for any choice.
    ``wall_s`` and ``peak_mb`` cover the training, not the test evaluation.
    """
    fitted, result = fit_finetune(encoder, train, config, device, progress)
    if test is not None:
        result.metrics = fitted.evaluate(test, config.batch_size, device)
    return result


__all__ = ["FinetuneConfig", "FinetuneResult", "Finetuned", "finetune", "fit_finetune"]
