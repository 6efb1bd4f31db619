"""The one object through which a modality (audio, vision) plugs into the training engine.

A modality package (``aiaudio``, ``aivision``) builds its :class:`Modality` from the
config's free-form ``data:`` mapping; ``core`` never imports a modality package.

Methods that need the augmentation parameters themselves (AugSelf predicts their
differences, LooC shares one augmentation's parameters between query and key) use the
parameter-level hooks :meth:`Modality.sample_params`, :meth:`Modality.render`,
:meth:`Modality.entry_augmentations` and :meth:`Modality.param_targets`; a modality that
does not implement them can still train every pair method (SimCLR, MoCo).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

import torch
from torch import Tensor

from core.augparams import Params
from core.config import ConfigError
from core.invariance import InvarianceSpace


def check_space(entries: Sequence[str], min_active: int, allowed: Sequence[str], key: str = "data.space") -> None:
    """Validate a ``data.space`` list: every entry in ``allowed`` and a usable InvarianceSpace.

    Raises:
        ConfigError: an unknown entry (named, with the allowed ones) or an empty / duplicated
            space or impossible ``min_active``.
    """
    unknown = [name for name in entries if name not in allowed]
    if unknown:
        raise ConfigError(f"{key}: unknown entry {unknown[0]!r} (allowed: {', '.join(allowed)})")
    try:
        InvarianceSpace(entries, min_active=min_active)
    except ValueError as err:
        raise ConfigError(f"{key} / data.min_active: {err}") from err


class HookUnavailable(RuntimeError):
    """The modality does not provide a parameter-level hook a method needs (AugSelf, LooC)."""


def monitor_split(total: int, count: int, test_fraction: float, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """The seeded choice of monitor items and their train/test split.

    Args:
        total: items in the labelled monitor dataset.
        count: items to draw (at most ``total``).
        test_fraction: share of the drawn items held out as the test side.
        seed: the run's seed.

    Returns:
        ``(chosen, train, test)``: ``chosen`` ``(n,)`` sorted dataset indices; ``train`` and
        ``test`` positions into ``chosen`` (each side keeps at least one item).
    """
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(total, generator=generator)[:count].sort().values
    order = torch.randperm(len(chosen), generator=generator)
    n_test = min(len(chosen) - 1, max(1, round(test_fraction * len(chosen))))
    return chosen, order[n_test:], order[:n_test]


class Modality(ABC):
    """What the engine needs from a modality.

    Attributes:
        name: short name, e.g. ``"audio"`` or ``"vision"``.
        space: the invariance space its augmentations span (descriptor order).
    """

    name: str
    space: InvarianceSpace

    @abstractmethod
    def train_dataset(self) -> torch.utils.data.Dataset:
        """The pre-training set.

        Items are dicts with ``"input"``: a raw tensor of fixed shape (audio: a wave
        ``(T,)``) and optionally ``"skipped"`` (int). Deterministic given (seed, epoch,
        index); if the dataset has ``set_epoch(epoch)`` the engine calls it at the start of
        every epoch.
        """

    @abstractmethod
    def setup(self, device: torch.device) -> None:
        """Prepare everything derived from data and move device-side parts to ``device``.

        Audio fits the front end's normaliser on the first clips, deterministically, so every
        rank gets the same statistics. On resume the engine calls :meth:`load_state_dict`
        first and then ``setup(device)``, which must not refit what was loaded.
        """

    @abstractmethod
    def views(self, batch: Tensor, descriptor: Tensor, generator: torch.Generator
              ) -> tuple[Tensor, Tensor]:
        """Two augmented encoder inputs of a batch.

        Args:
            batch: raw inputs on the device ``(B, ...)``.
            descriptor: ``(K,)`` binary; exactly the augmentations whose bit is 1 are applied.
            generator: CPU generator seeded by the engine from (seed, step, rank).

        Returns:
            Two encoder inputs ``(B, C, H, W)`` on the device.
        """

    @abstractmethod
    def encode_input(self, batch: Tensor) -> Tensor:
        """Raw inputs on the device ``(B, ...)`` -> encoder input ``(B, C, H, W)``, no augmentation."""

    @abstractmethod
    def monitor_data(self) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
        """Labelled data for the online k-NN monitor.

        Returns:
            ``(train_raw, train_labels, test_raw, test_labels)`` on CPU (raw inputs
            ``(N, ...)``, labels ``(N,)`` int64), or None when none is configured.
        """

    @abstractmethod
    def default_encoder(self) -> tuple[str, dict[str, Any]]:
        """Registry name and keyword arguments, e.g. ``("hyper_resnet18", {"in_chans": 1})``."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Plain data and tensors needed to rebuild the input pipeline (e.g. ``{"frontend": ...}``)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (called before :meth:`setup` on resume)."""

    @abstractmethod
    def encoder_extra(self) -> dict[str, Any]:
        """Plain data stored under ``"extra"`` in the exported encoder file, so downstream
        commands reproduce the input pipeline (audio: ``{"frontend": Frontend.to_dict()}``)."""

    # ------------------------------------------------- parameter-level hooks (optional)
    def sample_params(self, batch: Tensor, descriptor: Tensor, generator: torch.Generator) -> Params:
        """Draw one view's augmentation parameters for ``batch`` (``(B, ...)`` raw inputs).

        Returns:
            ``{augmentation: {param: (B,) tensor, "applied": (B,) bool}}`` covering every
            augmentation of the modality (see :mod:`core.augparams`).
        """
        raise HookUnavailable(f"the {self.name} modality does not expose augmentation parameters "
                                  "(needed by AugSelf and LooC)")

    def render(self, batch: Tensor, params: Params) -> Tensor:
        """Encoder inputs ``(B, C, H, W)`` of ``batch`` augmented with ``params`` (deterministic)."""
        raise HookUnavailable(f"the {self.name} modality does not expose augmentation parameters "
                                  "(needed by AugSelf and LooC)")

    def entry_augmentations(self, entry: str) -> tuple[str, ...]:
        """The augmentations a space entry (an augmentation or group name) switches on."""
        raise HookUnavailable(f"the {self.name} modality does not map space entries to augmentations")

    def target_dims(self) -> dict[str, int]:
        """Width ``d`` of :meth:`param_targets` per augmentation the space can switch on."""
        raise HookUnavailable(f"the {self.name} modality does not define augmentation targets "
                                  "(needed by AugSelf)")

    def param_targets(self, params: Params) -> dict[str, Tensor]:
        """AugSelf regression targets: augmentation name -> ``(B, d)`` float tensor, in an
        encoding where "not applied" is the identity value (0 shift, rate 1, ...)."""
        raise HookUnavailable(f"the {self.name} modality does not define augmentation targets "
                                  "(needed by AugSelf)")
