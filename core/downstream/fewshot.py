"""Few-shot classification with a frozen encoder: N-way K-shot episodes, a readout, a descriptor.

Descriptor modes (``FewShotConfig.descriptor``):

* ``"fixed:ones"`` or ``"fixed:v1,...,vK"``: one descriptor for every episode;
* ``"episode"``: learned on each episode's support set through the ridge solution;
* ``"dataset"``: learned once on ``train_episodes`` episodes of the ``train`` source's
  classes, then frozen for the test episodes;
* ``"corners"``: the binary descriptor of the space with the best mean accuracy on
  ``train_episodes`` training-class episodes.

See :mod:`core.downstream.fewshot_descriptor` for the learning criteria. Readouts
(:mod:`core.downstream.readouts`) see L2-normalised features: ridge with ``ridge_lambda``,
logistic regression (L-BFGS, 100 iterations, L2 1e-3), prototypes (cosine). Support clips train
the readout with every piece labelled as its clip; query clips are predicted by averaging
their pieces' scores (voting). Accuracy is reported as a fraction with the 95 % interval
``1.96 * std / sqrt(E)`` (population std over episodes).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from core.config import ConfigError
from core.downstream.clips import ClipSource, encode_pieces
from core.downstream.episodes import sample_episodes
from core.downstream.fewshot_descriptor import choose_corner, learn_dataset_descriptor, learn_episode_descriptor
from core.downstream.fewshot_eval import FeatureCache, accuracy_of, clip_scores, mean_ci95
from core.downstream.readouts import READOUTS
from core.encoders.base import InvarianceEncoder
from core.invariance import InvarianceSpace

MODES = ("fixed", "episode", "dataset", "corners")
# Training-class episodes use their own stream of randomness, derived from the seed.
TRAIN_SEED_OFFSET = 1_000_003


@dataclass
class FewShotConfig:
    """Settings of a few-shot evaluation (validated on construction; errors name the field)."""

    ways: int = 5
    shots: int = 1
    queries: int = 15
    episodes: int = 600
    seed: int = 0
    readout: Literal["ridge", "logistic", "prototype"] = "ridge"
    ridge_lambda: float = 1.0
    descriptor: str = "fixed:ones"
    train_episodes: int = 100
    inner_steps: int = 20
    descriptor_lr: float = 0.05
    batch_size: int = 256
    descriptor_init: float = 0.5       # start of every entry of a learned descriptor (episode/dataset)

    def __post_init__(self) -> None:
        for name in ("ways", "shots", "queries", "episodes", "train_episodes", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"FewShotConfig.{name} must be a positive integer, got {value!r}")
        if self.ways < 2:
            raise ConfigError(f"FewShotConfig.ways must be at least 2, got {self.ways}")
        if isinstance(self.inner_steps, bool) or not isinstance(self.inner_steps, int) or self.inner_steps < 0:
            raise ConfigError(f"FewShotConfig.inner_steps must be an integer >= 0, got {self.inner_steps!r}")
        if self.readout not in READOUTS:
            raise ConfigError(f"FewShotConfig.readout {self.readout!r} is not one of {sorted(READOUTS)}")
        for name in ("ridge_lambda", "descriptor_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"FewShotConfig.{name} must be > 0, got {getattr(self, name)!r}")
        init = self.descriptor_init
        if isinstance(init, bool) or not isinstance(init, (int, float)) or not 0.0 <= init <= 1.0:
            raise ConfigError(f"FewShotConfig.descriptor_init must lie in [0, 1], got {init!r}")
        parse_descriptor(self.descriptor)

    @property
    def mode(self) -> str:
        """``"fixed"``, ``"episode"``, ``"dataset"`` or ``"corners"``."""
        return parse_descriptor(self.descriptor)[0]


def default_descriptor(encoder: InvarianceEncoder) -> str:
    """The descriptor mode used when none is asked for: ``"dataset"`` (learned once on
    training-class episodes) when ``encoder``'s features depend on the descriptor, else
    ``"fixed:ones"`` (plain encoders ignore it, so there is nothing to learn)."""
    return "dataset" if getattr(encoder, "conditioned", True) else "fixed:ones"


def parse_descriptor(spec: str, space: InvarianceSpace | None = None) -> tuple[str, Tensor | None]:
    """Split a descriptor spec into its mode and, for ``fixed:``, the vector ``(K,)``.

    ``space`` (when given) validates the fixed vector's length and range.

    Raises:
        ConfigError: unknown mode, a value that is not a number, wrong length or a value outside
            [0, 1]; the message quotes the spec and the bad value.
    """
    if not isinstance(spec, str):
        raise ConfigError(f"FewShotConfig.descriptor must be a string, got {spec!r}")
    if spec in ("episode", "dataset", "corners"):
        return spec, None
    if not spec.startswith("fixed:"):
        raise ConfigError(
            f"FewShotConfig.descriptor {spec!r} is not one of 'fixed:ones', 'fixed:v1,...,vK', "
            "'episode', 'dataset', 'corners'")
    body = spec[len("fixed:"):].strip()
    if body == "ones":
        return "fixed", (space.ones() if space is not None else None)
    values = []
    for item in body.split(","):
        try:
            values.append(float(item))
        except ValueError:
            raise ConfigError(f"FewShotConfig.descriptor {spec!r}: {item.strip()!r} is not a number") from None
    vector = torch.tensor(values, dtype=torch.float32)
    if space is not None:
        if len(values) != space.dim:
            raise ConfigError(f"FewShotConfig.descriptor {spec!r} has {len(values)} values but the space "
                              f"has {space.dim} entries {list(space.names)}")
        for name, v in zip(space.names, values):
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"FewShotConfig.descriptor {spec!r}: value {v} for {name!r} is outside [0, 1]")
        vector = space.check(vector)
    return "fixed", vector


@dataclass
class FewShotResult:
    """Outcome of :func:`run_fewshot` (accuracies are fractions in [0, 1]).

    ``config``, ``details`` (mode-specific: per-corner training accuracy, per-step training
    loss, per-episode descriptor spread) and ``wall_s`` go beyond the shared contract.
    """

    accuracy: float
    ci95: float
    episodes: int
    descriptor: list[float]
    descriptor_names: list[str]
    descriptor_mode: str
    per_episode: list[float]
    config: FewShotConfig = field(default_factory=FewShotConfig)
    details: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: the settings, the scores and the descriptor with its names."""
        c = self.config
        return {
            "ways": c.ways, "shots": c.shots, "queries": c.queries, "episodes": self.episodes,
            "readout": c.readout, "ridge_lambda": c.ridge_lambda, "seed": c.seed,
            "descriptor_mode": self.descriptor_mode, "descriptor_spec": c.descriptor,
            "accuracy": self.accuracy, "ci95": self.ci95,
            "descriptor": list(self.descriptor), "descriptor_names": list(self.descriptor_names),
            "per_episode": list(self.per_episode), "details": self.details, "wall_s": self.wall_s,
            "config": asdict(c),
        }


def _check_sources(test: ClipSource, train: ClipSource | None, mode: str) -> None:
    for name, source in (("test", test), ("train", train)):
        if source is not None and (source.labels.dim() != 1 or source.labels.is_floating_point()):
            raise ValueError(f"run_fewshot: the {name} source must have int class labels (N,), got "
                             f"{source.labels.dtype} {tuple(source.labels.shape)} (regression targets?)")
    if mode in ("dataset", "corners") and train is None:
        raise ValueError(f"run_fewshot: descriptor mode {mode!r} needs a train source (training classes)")


def run_fewshot(encoder: InvarianceEncoder, test: ClipSource, config: FewShotConfig,
                train: ClipSource | None = None, device: str | torch.device = "cpu",
                progress: bool = False) -> FewShotResult:
    """Evaluate ``encoder`` on ``config.episodes`` episodes drawn from ``test``.

    Args:
        encoder: frozen encoder (eval mode during the run, its mode restored after; weights and
            BatchNorm statistics untouched).
        test: clips of the evaluation classes.
        config: the settings.
        train: clips of the training classes (required for ``"dataset"`` and ``"corners"``).
        device: where the encoder runs.
        progress: show tqdm bars.
    """
    start = time.perf_counter()
    mode, fixed = parse_descriptor(config.descriptor, encoder.space)
    _check_sources(test, train, mode)
    c = config
    episodes = sample_episodes(test.labels, c.ways, c.shots, c.queries, c.episodes, c.seed)
    details: dict[str, Any] = {}
    was_training = encoder.training
    try:
        if mode in ("dataset", "corners"):
            train_eps = sample_episodes(train.labels, c.ways, c.shots, c.queries, c.train_episodes,
                                        c.seed + TRAIN_SEED_OFFSET)
            if mode == "dataset":
                fixed, details["train_loss"] = learn_dataset_descriptor(
                    encoder, train, train_eps, c.ridge_lambda, c.inner_steps, c.descriptor_lr, c.batch_size,
                    device, progress, init=c.descriptor_init)
            else:
                fixed, details["corners"] = choose_corner(encoder, train, train_eps, c.readout, c.ridge_lambda,
                                                          c.batch_size, device, progress)
        if mode == "episode":
            per_episode, descriptors = _run_per_episode(encoder, test, episodes, c, device, progress)
            descriptor = descriptors.mean(0)
            details["descriptor_std"] = descriptors.std(0, unbiased=False).tolist()
        else:
            descriptor = fixed
            per_episode = _run_fixed(encoder, test, episodes, descriptor, c, device, progress)
    finally:
        encoder.train(was_training)
    accuracy, ci95 = mean_ci95(per_episode)
    return FewShotResult(
        accuracy=accuracy, ci95=ci95, episodes=len(episodes), descriptor=[float(v) for v in descriptor],
        descriptor_names=list(encoder.space.names), descriptor_mode=mode, per_episode=per_episode,
        config=c, details=details, wall_s=time.perf_counter() - start,
    )


def _run_fixed(encoder: InvarianceEncoder, test: ClipSource, episodes: list, descriptor: Tensor,
               c: FewShotConfig, device: str | torch.device, progress: bool) -> list[float]:
    cache = FeatureCache(encoder, test, c.batch_size, device)
    cache.prefetch(sorted({i for ep in episodes for i in ep.support + ep.query}), descriptor)
    out = []
    for ep in tqdm(episodes, desc="few-shot episodes", disable=not progress):
        s, so = cache.features(ep.support, descriptor)
        q, qo = cache.features(ep.query, descriptor)
        scores = clip_scores(s, so, ep.support_labels, q, qo, len(ep.query), ep.ways, c.readout, c.ridge_lambda)
        out.append(accuracy_of(scores, ep.query_labels))
    return out


def _run_per_episode(encoder: InvarianceEncoder, test: ClipSource, episodes: list, c: FewShotConfig,
                     device: str | torch.device, progress: bool) -> tuple[list[float], Tensor]:
    out, descriptors = [], []
    for ep in tqdm(episodes, desc="few-shot episodes (descriptor per episode)", disable=not progress):
        xs, so = test.pieces(ep.support)
        support_names = test.piece_names(ep.support, so)
        d = learn_episode_descriptor(encoder, xs, so, ep.support_labels, ep.ways, c.ridge_lambda,
                                     c.inner_steps, c.descriptor_lr, c.batch_size, device, names=support_names,
                                     init=c.descriptor_init)
        xq, qo = test.pieces(ep.query)
        s = encode_pieces(encoder, xs, d, c.batch_size, device, support_names)
        q = encode_pieces(encoder, xq, d, c.batch_size, device, test.piece_names(ep.query, qo))
        scores = clip_scores(s, so, ep.support_labels, q, qo, len(ep.query), ep.ways, c.readout, c.ridge_lambda)
        out.append(accuracy_of(scores, ep.query_labels))
        descriptors.append(d)
    return out, torch.stack(descriptors)
