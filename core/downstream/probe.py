"""Many-shot probe: a frozen encoder, a descriptor and a linear head fitted with Adam.

The encoder stays in eval mode with its parameters and BatchNorm statistics untouched; only
the head ``nn.Linear(D, outputs)`` and, in the ``learned`` and ``quantised`` modes, the
descriptor (initialised at 0.5 per entry, projected back onto ``[0, 1]`` after every step)
are trained. Classification trains on every piece with its clip's label (cross-entropy) and
predicts a clip by averaging its pieces' softmax probabilities; regression standardises the
targets with the training statistics and scores dataset-level R² on the original scale.

Descriptor modes: ``learned``; ``fixed`` (``config.fixed``, all ones by default: the plain
contrastive model; features are computed once); ``best_corner`` (the binary descriptor of the
space with the best validation score, one fixed-feature head each); ``quantised`` (learn,
round with ``space.quantise(i, bits)``, refit the head with that descriptor fixed).
Learning rate and weight decay (and the corner) are chosen on the validation split, given
or carved from the training clips with ``config.seed``; the chosen candidate is refitted on
train + validation. Test data, if passed, is only scored at the end.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from core.config import ConfigError
from core.downstream.checks import NonFiniteLossError, check_classes
from core.downstream.clips import ClipSource, encode_pieces, pool_by_owner
from core.downstream.cost import CostMeter, count_trainable
from core.downstream.metrics import accuracy, mean_class_accuracy, r2_score
from core.downstream.selection import Candidate, PieceSet, best_index, candidate_grid, split_train_val, train_probe
from core.encoders.base import InvarianceEncoder

TASKS = ("classification", "regression")
DESCRIPTOR_MODES = ("learned", "fixed", "best_corner", "quantised")
GRAD_MODES = ("backprop", "forward", "light")


@dataclass
class ProbeConfig:
    """Options of :func:`fit_probe` (validated on construction; errors name the key)."""

    task: Literal["classification", "regression"] = "classification"
    descriptor: Literal["learned", "fixed", "best_corner", "quantised"] = "learned"
    fixed: list[float] | None = None        # for "fixed" (None = all ones)
    bits: int = 1                           # for "quantised"
    lrs: list[float] = field(default_factory=lambda: [1e-3, 1e-2])
    weight_decays: list[float] = field(default_factory=lambda: [0.0, 1e-4])
    descriptor_lr: float | None = None      # None = same as the head's lr
    epochs: int = 30
    batch_size: int = 256
    val_fraction: float = 0.2
    seed: int = 0
    grad: Literal["backprop", "forward", "light"] = "backprop"   # descriptor gradient, see train_probe
    micro_batch: int = 32                   # for grad "forward" and "light"

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"probe config: {key}={getattr(self, key)!r}: {why}")

        for key, allowed in (("task", TASKS), ("descriptor", DESCRIPTOR_MODES), ("grad", GRAD_MODES)):
            if getattr(self, key) not in allowed:
                raise bad(key, f"must be one of {list(allowed)}")
        for key in ("bits", "epochs", "batch_size", "micro_batch"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(key, "must be a positive integer")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise bad("seed", "must be an integer")
        for key, low in (("lrs", 0.0), ("weight_decays", 0.0)):
            values = getattr(self, key)
            if not isinstance(values, (list, tuple)) or not values:
                raise bad(key, "must be a non-empty list of numbers")
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= low for v in values):
                raise bad(key, "entries must be numbers " + ("> 0" if key == "lrs" else ">= 0"))
            if key == "lrs" and any(v == 0 for v in values):
                raise bad(key, "entries must be > 0")
        if self.descriptor_lr is not None and not (isinstance(self.descriptor_lr, (int, float)) and self.descriptor_lr > 0):
            raise bad("descriptor_lr", "must be a positive number or null")
        if not isinstance(self.val_fraction, (int, float)) or not 0.0 < self.val_fraction < 1.0:
            raise bad("val_fraction", "must lie in (0, 1)")
        if self.fixed is not None:
            if self.descriptor != "fixed":
                raise bad("fixed", f"is only used with descriptor='fixed', not {self.descriptor!r}")
            if not isinstance(self.fixed, (list, tuple)) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0 for v in self.fixed):
                raise bad("fixed", "must be a list of numbers in [0, 1]")


@dataclass
class ProbeResult:
    """What a probe fit reports; ``metrics`` are on the test source (empty without one)."""

    descriptor: list[float]
    descriptor_names: list[str]
    lr: float
    weight_decay: float
    val_score: float
    metrics: dict[str, float]
    trainable_params: int
    wall_s: float
    peak_mb: float

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable dict."""
        return dataclasses.asdict(self)


class Probe:
    """A fitted probe: descriptor ``(K,)``, linear head and (regression) target statistics.

    Args:
        descriptor: ``(K,)`` in ``[0, 1]``.
        head: ``nn.Linear(D, outputs)`` (classes, or T regression targets).
        config: the configuration it was fitted with.
        target_mean, target_std: ``(T,)`` training statistics of regression targets.
    """

    def __init__(self, descriptor: Tensor, head: nn.Linear, config: ProbeConfig,
                 target_mean: Tensor | None = None, target_std: Tensor | None = None) -> None:
        self.descriptor = descriptor.detach().cpu().float()
        self.head = head
        self.config = config
        self.target_mean = target_mean
        self.target_std = target_std

    @torch.no_grad()
    def piece_scores(self, features: Tensor) -> Tensor:
        """Per-piece softmax probabilities ``(P, C)`` or predictions ``(P, T)`` on the original scale."""
        out = self.head(features.to(self.head.weight.device)).float().cpu()
        if self.config.task == "classification":
            return out.softmax(dim=1)
        return out * self.target_std + self.target_mean

    @torch.no_grad()
    def predict(self, encoder: InvarianceEncoder, source: ClipSource, device: str | torch.device = "cpu"
                ) -> Tensor:
        """Clip-level outputs for every clip of ``source``: class probabilities ``(N, C)``
        averaged over pieces (voting), or regression predictions ``(N, T)`` averaged over pieces."""
        step = self.config.batch_size
        parts = []
        for start in range(0, len(source), step):
            ids = list(range(start, min(start + step, len(source))))
            x, owner = source.pieces(ids)
            feats = encode_pieces(encoder, x, self.descriptor, self.config.batch_size, device,
                                  source.piece_names(ids, owner))
            parts.append(pool_by_owner(self.piece_scores(feats), owner, len(ids)))
        return torch.cat(parts)

    def metrics(self, scores: Tensor, labels: Tensor) -> dict[str, float]:
        """Metrics of clip-level outputs ``scores`` against ``labels``."""
        if self.config.task == "classification":
            return {"accuracy": accuracy(scores, labels),
                    "mean_class_accuracy": mean_class_accuracy(scores, labels)}
        return {"r2": r2_score(scores.reshape(labels.shape), labels)}

    def evaluate(self, encoder: InvarianceEncoder, source: ClipSource, device: str | torch.device = "cpu"
                 ) -> dict[str, float]:
        """``{"accuracy", "mean_class_accuracy"}`` or ``{"r2"}`` on ``source``."""
        _check_labels(source, self.config.task, "evaluate")
        return self.metrics(self.predict(encoder, source, device), source.labels)


def _check_labels(source: ClipSource, task: str, where: str) -> None:
    labels = source.labels
    if task == "classification" and (labels.dim() != 1 or labels.is_floating_point()):
        raise ValueError(f"fit_probe ({where}): classification needs (N,) integer labels, got "
                         f"{tuple(labels.shape)} {labels.dtype}")
    if task == "regression" and not labels.is_floating_point():
        raise ValueError(f"fit_probe ({where}): regression needs float targets (N,) or (N, T), got {labels.dtype}")


def _descriptor_options(encoder: InvarianceEncoder, config: ProbeConfig, corners: Tensor | None
                        ) -> list[Tensor | None]:
    """The descriptors the selection tries: fixed ones, or ``[None]`` (learn one)."""
    space = encoder.space
    if corners is not None and config.descriptor != "best_corner":
        raise ValueError(f"fit_probe: corners are only used with descriptor='best_corner', not {config.descriptor!r}")
    if config.descriptor in ("learned", "quantised"):
        return [None]
    if config.descriptor == "fixed":
        if config.fixed is None:
            return [space.ones()]
        if len(config.fixed) != space.dim:
            raise ValueError(f"probe config: fixed={config.fixed} has {len(config.fixed)} entries but the "
                             f"encoder's space has {space.dim}: {list(space.names)}")
        return [space.check(torch.tensor(config.fixed, dtype=torch.float32))]
    rows = space.descriptors if corners is None else space.check(torch.as_tensor(corners, dtype=torch.float32))
    rows = rows.reshape(-1, space.dim)
    for row in rows:
        space.index_of(row)  # raises unless a binary descriptor of the space
    if rows.shape[0] == 0:
        raise ValueError("fit_probe: corners is empty")
    return list(rows)


def _fit(encoder: InvarianceEncoder, data: PieceSet, clips: Tensor, cand: Candidate, config: ProbeConfig,
         outputs: int, device: torch.device) -> tuple[Probe, list[Tensor]]:
    """Fit one candidate on ``clips``; returns the probe and its trainable tensors."""
    pieces = data.piece_ids(clips)
    piece_labels = data.labels[data.owner[pieces]]
    mean = std = None
    if config.task == "regression":
        y = data.labels[clips].reshape(clips.numel(), -1)
        mean, std = y.mean(dim=0), y.std(dim=0, correction=0)
        std = torch.where(std > 0, std, torch.ones_like(std))
        targets = (piece_labels.reshape(pieces.numel(), -1) - mean) / std
    else:
        targets = piece_labels
    args = (targets, outputs, config, cand.lr, cand.weight_decay)
    if cand.descriptor is None:
        d, head, trainable = train_probe(encoder, data.x[pieces], *args, None, device,
                                         names=data.piece_names(pieces))
        if config.descriptor == "quantised":
            d = encoder.space.quantise(d, config.bits)
            feats = data.features(encoder, d, config.batch_size, device, pieces)
            d, head, refit = train_probe(encoder, feats, *args, d, device)
            trainable = trainable[-1:] + refit  # the learned descriptor and the refitted head
    else:
        feats = data.features(encoder, cand.descriptor, config.batch_size, device)[pieces]
        d, head, trainable = train_probe(encoder, feats, *args, cand.descriptor, device)
    return Probe(d, head, config, mean, std), trainable


def _score(encoder: InvarianceEncoder, data: PieceSet, clips: Tensor, probe: Probe, cached: bool,
           device: torch.device) -> float:
    """Validation score of ``probe`` on ``clips``: accuracy, or R² for regression."""
    pieces = data.piece_ids(clips)
    if cached:
        feats = data.features(encoder, probe.descriptor, probe.config.batch_size, device)[pieces]
    else:
        feats = data.features(encoder, probe.descriptor, probe.config.batch_size, device, pieces)
    scores = pool_by_owner(probe.piece_scores(feats), data.local_owner(pieces, clips), clips.numel())
    metrics = probe.metrics(scores, data.labels[clips])
    return metrics["accuracy" if probe.config.task == "classification" else "r2"]


def fit_probe(encoder: InvarianceEncoder, train: ClipSource, config: ProbeConfig, val: ClipSource | None = None,
              device: str | torch.device = "cpu", progress: bool = False, *, test: ClipSource | None = None,
              corners: Tensor | None = None) -> tuple[Probe, ProbeResult]:
    """Select hyper-parameters on validation, refit on train + validation, optionally score test.

    Args:
        encoder: the frozen encoder, already on ``device`` (left unchanged; its train/eval
            mode is restored afterwards).
        train: labelled training clips.
        config: the probe options.
        val: validation clips; if None, ``config.val_fraction`` of ``train`` is carved off
            with ``config.seed`` (stratified by class for classification).
        device: where the encoder and the head run.
        progress: show a tqdm bar over the selection grid.
        test: clips scored once at the end (``ProbeResult.metrics``); never used for selection.
        corners: ``best_corner`` only: the binary descriptors ``(M, K)`` to try (default: all
            of ``encoder.space.descriptors``).

    Returns:
        The fitted :class:`Probe` and its :class:`ProbeResult` (cost covers selection and refit).

    Raises:
        TooFewClassesError: classification training clips of fewer than 2 classes.
        NonFiniteFeaturesError: NaN or infinite features (names the clips).
        NonFiniteLossError: every candidate, or the final refit, diverged.
    """
    if not isinstance(config, ProbeConfig):
        raise TypeError(f"fit_probe: config must be a ProbeConfig, got {type(config).__name__}")
    device = torch.device(device)
    first = next(encoder.parameters(), None)
    if first is not None and first.device.type != device.type:
        raise ValueError(f"fit_probe: the encoder is on {first.device} but device={str(device)!r}; move it first")
    for name, source in (("train", train), ("val", val), ("test", test)):
        if source is not None:
            _check_labels(source, config.task, name)
    options = _descriptor_options(encoder, config, corners)
    was_training = encoder.training
    encoder.eval()
    try:
        with CostMeter(device) as cost:
            if val is None:
                fit_ids, val_ids = split_train_val(train.labels, config.val_fraction, config.seed,
                                                   stratify=config.task == "classification")
                train, val = train.subset(fit_ids), train.subset(val_ids)
            if config.task == "regression" and len(val) < 2:
                raise ValueError(f"fit_probe: regression needs at least 2 validation clips for R², got {len(val)}")
            if config.task == "classification":
                check_classes(train.labels, train.class_names, "probe: the training clips")
            data = PieceSet([train, val])
            if config.task == "classification":
                outputs = max(int(data.labels.max()) + 1, len(train.class_names or []))
            else:
                outputs = data.labels.reshape(data.num_clips, -1).shape[1]
            grid = candidate_grid(options, config.lrs, config.weight_decays)
            scores, diverged = [], []
            for cand in tqdm(grid, desc="probe selection", disable=not progress):
                try:
                    probe, _ = _fit(encoder, data, data.clip_range(0), cand, config, outputs, device)
                except NonFiniteLossError as err:  # a diverged candidate loses the selection
                    scores.append(float("nan"))
                    diverged.append(str(err))
                    continue
                scores.append(_score(encoder, data, data.clip_range(1), probe, cand.descriptor is not None, device))
            if len(diverged) == len(grid):
                raise NonFiniteLossError(f"probe: every candidate of the selection grid diverged; the first: "
                                         f"{diverged[0]}")
            chosen = best_index(scores)
            best = grid[chosen]
            probe, trainable = _fit(encoder, data, torch.arange(data.num_clips), best, config, outputs, device)
        metrics = probe.evaluate(encoder, test, device) if test is not None else {}
    finally:
        encoder.train(was_training)
    result = ProbeResult(
        descriptor=[float(v) for v in probe.descriptor], descriptor_names=list(encoder.space.names),
        lr=best.lr, weight_decay=best.weight_decay, val_score=float(scores[chosen]),
        metrics=metrics, trainable_params=count_trainable(trainable), wall_s=cost.wall_s, peak_mb=cost.peak_mb)
    return probe, result


__all__ = ["DESCRIPTOR_MODES", "Probe", "ProbeConfig", "ProbeResult", "TASKS", "fit_probe", "train_probe"]
