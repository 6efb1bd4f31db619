"""The pre-training config: YAML file + ``a.b=value`` overrides -> validated dataclasses.

Sections: ``run_dir``, ``seed``, ``encoder``, ``method`` (:class:`core.methods.MethodConfig`),
``descriptor``, ``optim`` (:class:`core.optim.OptimConfig`), ``train``, ``monitor`` and the
free-form ``data`` mapping that the modality validates itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
from torch import Tensor

from core.config import ConfigError, apply_overrides, from_dict, load_yaml, require, to_dict
from core.invariance import InvarianceSpace
from core.methods.base import MethodConfig
from core.optim import OptimConfig


@dataclass
class EncoderConfig:
    """Attributes:
        name: registered encoder name; None = the modality's default.
        kwargs: architecture options, merged over the modality's default keyword arguments
            (e.g. ``{"width": 32}`` keeps audio's ``in_chans: 1``).
    """
    name: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DescriptorConfig:
    """Attributes:
        mode: ``sample`` draws a binary descriptor per step from a generator seeded by
            (seed, step), identical on every rank (AI-SimCLR / AI-MoCo); ``fixed`` uses one
            descriptor throughout.
        fixed: the descriptor for ``fixed`` (one value in [0, 1] per space entry); None =
            all ones, the default SimCLR / MoCo baseline.
        active: for ``fixed``, the same by name: the space entries that are on (a
            single-invariance baseline such as audio's frequency-only
            ``[pitch_shift, fade_in, fade_out, noise]`` or vision's ``[appearance]``).
        ones_fraction: for ``sample``, the share of steps that use the all-ones descriptor
            (every augmentation on) instead of a uniform draw; 0 = uniform over the space (the
            paper). Ignored by ``fixed``, so one comparison config can carry it for every model.
    """
    mode: Literal["sample", "fixed"] = "sample"
    fixed: list[float] | None = None
    active: list[str] | None = None
    ones_fraction: float = 0.0

    def __post_init__(self) -> None:
        for key in ("fixed", "active"):
            require(self.mode == "fixed" or getattr(self, key) is None,
                     f"descriptor.{key} is only used with descriptor.mode: fixed (mode is {self.mode!r})")
        require(self.fixed is None or self.active is None,
                 "descriptor.fixed and descriptor.active both set; give the descriptor one way")
        require(self.active is None or len(self.active) > 0, "descriptor.active must name at least one entry")
        require(not isinstance(self.ones_fraction, bool) and isinstance(self.ones_fraction, (int, float))
                and 0.0 <= self.ones_fraction < 1.0,
                f"descriptor.ones_fraction={self.ones_fraction!r} must lie in [0, 1)")

    def check(self, space: InvarianceSpace) -> None:
        """Raise ConfigError unless ``fixed``/``active`` fit ``space`` (length K, values in [0, 1],
        known entry names)."""
        try:
            if self.fixed is not None:
                space.check(list(self.fixed))
            if self.active is not None:
                space.from_active(self.active)
        except ValueError as err:
            key, value = ("fixed", self.fixed) if self.fixed is not None else ("active", self.active)
            raise ConfigError(f"descriptor.{key} {value}: {err}") from err

    def fixed_descriptor(self, space: InvarianceSpace) -> Tensor:
        """The ``(K,)`` descriptor of ``mode: fixed`` (all ones unless ``fixed``/``active`` say otherwise)."""
        if self.fixed is not None:
            return torch.tensor(self.fixed, dtype=torch.float32)
        return space.ones() if self.active is None else space.from_active(self.active)


@dataclass
class TrainConfig:
    """Attributes:
        steps: optimiser steps of the whole run (the schedule's length).
        batch_size: samples per rank per step.
        num_workers: DataLoader worker processes per rank.
        checkpoint_every: write checkpoints/step_NNNNNNN.pt every this many steps.
        keep_checkpoints: newest step files kept (last.pt is kept too).
        log_every: CSV / TensorBoard row every this many steps.
        bf16: bfloat16 autocast (CUDA only; ignored on CPU).
        channels_last: channels-last memory format (CUDA only; ignored on CPU).
        grad_clip: clip the global gradient norm to this value; None = no clipping.
        deterministic: ``torch.use_deterministic_algorithms`` (bitwise-reproducible resume).
        stop_at: stop cleanly with a checkpoint at this step (time-limited job slots);
            ``--resume`` continues to ``steps``.
        max_param_growth: stop the run as diverged when the global L2 norm of the
            parameters exceeds this many times its value at initialisation (weights can blow
            up by many orders of magnitude while a normalised contrastive loss stays finite);
            null = no such check (non-finite parameters, gradients and losses always stop the
            run). The default, 1e6, is far above what a converging run reaches.
    """
    steps: int = 1000
    batch_size: int = 256
    num_workers: int = 2
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    bf16: bool = True
    channels_last: bool = True
    grad_clip: float | None = None
    deterministic: bool = False
    stop_at: int | None = None
    max_param_growth: float | None = 1.0e6

    def __post_init__(self) -> None:
        for key, minimum in (("steps", 1), ("batch_size", 2), ("num_workers", 0), ("checkpoint_every", 1),
                             ("keep_checkpoints", 1), ("log_every", 1)):
            value = getattr(self, key)
            require(value >= minimum, f"train.{key} must be >= {minimum}, got {value}")
        require(self.grad_clip is None or (math.isfinite(self.grad_clip) and self.grad_clip > 0),
                 f"train.grad_clip must be > 0 or null, got {self.grad_clip}")
        require(self.stop_at is None or self.stop_at >= 1, f"train.stop_at must be >= 1 or null, got {self.stop_at}")
        growth = self.max_param_growth
        require(growth is None or (math.isfinite(growth) and growth > 1),
                f"train.max_param_growth must be a number > 1 or null, got {growth}")


@dataclass
class MonitorConfig:
    """Online k-NN monitor on the modality's labelled split (rank 0, no grad).

    Attributes:
        every: evaluate every this many steps; 0 = off.
        k: neighbours (cosine similarity, majority vote).
        descriptors: ``ones`` (the all-ones descriptor) or ``leave_one_out`` (also each
            descriptor with one augmentation's bit set to 0, where the space allows it).
        batch_size: samples per forward pass when computing features.
    """
    every: int = 0
    k: int = 20
    descriptors: Literal["ones", "leave_one_out"] = "ones"
    batch_size: int = 256

    def __post_init__(self) -> None:
        require(self.every >= 0, f"monitor.every must be >= 0 (0 = off), got {self.every}")
        require(self.k >= 1, f"monitor.k must be >= 1, got {self.k}")
        require(self.batch_size >= 1, f"monitor.batch_size must be >= 1, got {self.batch_size}")


@dataclass
class PretrainConfig:
    """The whole pre-training run; ``data`` is validated by the modality."""
    run_dir: str = "runs/pretrain"
    seed: int = 0
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    descriptor: DescriptorConfig = field(default_factory=DescriptorConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require(bool(str(self.run_dir).strip()), "run_dir must be a non-empty path")
        require(0 <= self.seed < 2**63, f"seed must be in [0, 2^63), got {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (the resolved config saved as run_dir/config.yaml)."""
        return to_dict(self)


def config_from_dict(data: dict[str, Any], where: str = "config") -> PretrainConfig:
    """Validate a plain mapping (e.g. a checkpoint's ``config``) into a PretrainConfig."""
    return from_dict(PretrainConfig, data, where)


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> PretrainConfig:
    """Read a YAML config, apply ``a.b=value`` overrides and validate.

    Args:
        path: YAML file; None starts from the defaults.
        overrides: items like ``"train.steps=100"`` (values parsed as YAML), applied in order.

    Raises:
        ConfigError: unreadable file, unknown key, wrong type or bad value; the message
            names the file (or the override), the key and the allowed keys.
    """
    data = load_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "default config"
    try:
        config_from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from err
    for item in overrides:
        data = apply_overrides(data, [item], schema=PretrainConfig)
        try:
            config_from_dict(data)
        except ConfigError as err:
            raise ConfigError(f"command line override {item}: {err}") from err
    return config_from_dict(data)


class CrossKeyError(ConfigError):
    """Values that are valid alone but not together; ``keys`` names the dotted keys involved."""

    def __init__(self, keys: Sequence[str], message: str) -> None:
        super().__init__(message)
        self.keys = list(keys)


def check_across(config: PretrainConfig) -> None:
    """Checks across sections, run before anything is written (``pretrain`` and the CLI call it;
    ``load_config`` does not, so that an override may fix what a file sets in either order).

    Raises:
        CrossKeyError: e.g. ``optim.warmup_steps`` above ``train.steps``.
    """
    warmup, steps = config.optim.warmup_steps, config.train.steps
    if warmup > steps:
        raise CrossKeyError(["optim.warmup_steps", "train.steps"],
                            f"optim.warmup_steps={warmup} exceeds train.steps={steps}: lower "
                            f"optim.warmup_steps or raise train.steps")


def blame(err: CrossKeyError, path: str | Path | None, overrides: Sequence[str]) -> ConfigError:
    """``err`` naming its source: the last override that set one of its keys, else the file."""
    for item in reversed(list(overrides)):
        key = item.split("=", 1)[0].strip()
        if any(k == key or k.startswith(f"{key}.") for k in err.keys):
            return ConfigError(f"command line override {item}: {err}")
    return ConfigError(f"{path if path is not None else 'default config'}: {err}")


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested mappings."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [c for k in keys for c in changed_keys(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]
