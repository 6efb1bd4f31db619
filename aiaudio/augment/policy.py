"""AudioPolicy: a batch plus an invariance descriptor -> two augmented views.

Only the augmentations whose descriptor entry is on are ever applied; each of those fires per
clip with its configured probability. The space's entries are augmentation names from
``AUDIO_AUGMENTATIONS`` or group names (default groups: ``frequency`` and ``time`` from
``aiaudio.space``), so both the paper's K=7 space and a 2-entry group space work.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from aiaudio.augment.config import AugmentConfig
from aiaudio.augment.sampling import Params, sample_params
from aiaudio.space import AUDIO_AUGMENTATIONS, FREQUENCY_GROUP, TIME_GROUP
from core.augparams import active_augmentations, entry_mapping
from core.invariance import InvarianceSpace
from core.lazy import LazyRegistry

DEFAULT_GROUPS: dict[str, tuple[str, ...]] = {"frequency": FREQUENCY_GROUP, "time": TIME_GROUP}


BACKENDS: Mapping[str, type] = LazyRegistry("augmentation backend", {
    "batched": "aiaudio.augment.batched:BatchedAugmenter",
    "audiomentations": "aiaudio.augment.reference:AudiomentationsAugmenter",
})


class AudioPolicy:
    """Turns a waveform batch and a descriptor into augmented views.

    Args:
        space: the invariance space; each entry is an augmentation or group name.
        config: augmentation ranges and probabilities (default ``AugmentConfig()``).
        sample_rate: waveform sample rate in Hz.
        backend: ``"batched"`` or ``"audiomentations"``; ``None`` uses ``config.backend``.
        groups: group name -> augmentation names (default ``DEFAULT_GROUPS``).

    Raises:
        ValueError: unknown space entry or backend name.
    """

    def __init__(self, space: InvarianceSpace, config: AugmentConfig | None = None,
                 sample_rate: int = 16000, backend: str | None = None,
                 groups: Mapping[str, Sequence[str]] | None = None) -> None:
        self.space = space
        self.config = config if config is not None else AugmentConfig()
        self.groups = dict(DEFAULT_GROUPS if groups is None else groups)
        self.mapping = entry_mapping(space.names, self.groups, AUDIO_AUGMENTATIONS, "an audio")
        self.backend_name = self.config.backend if backend is None else backend
        if self.backend_name not in BACKENDS:
            raise ValueError(f"unknown augmentation backend {self.backend_name!r}; "
                             f"allowed: {sorted(BACKENDS)}")
        self.augmenter = BACKENDS[self.backend_name](self.config, sample_rate=sample_rate)

    def active(self, descriptor: torch.Tensor | Sequence[float], batch_size: int) -> torch.Tensor:
        """Which augmentations each clip may use.

        An entry counts as on when it is > 0.5 (a binary descriptor as in pre-training; a
        continuous one is thresholded), and an augmentation is active when any entry that
        maps to it is on.

        Args:
            descriptor: ``(K,)`` (shared by the batch) or ``(B, K)``, values in ``[0, 1]``.
            batch_size: B.

        Returns:
            ``(B, 7)`` bool tensor on the CPU, columns in ``AUDIO_AUGMENTATIONS`` order.
        """
        return active_augmentations(self.space, self.mapping, descriptor, batch_size, "clips")

    def augment(self, wave: torch.Tensor, descriptor: torch.Tensor | Sequence[float],
                generator: torch.Generator, return_params: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, Params]:
        """One augmented view.

        Args:
            wave: ``(B, T)`` float waveforms (any device).
            descriptor: ``(K,)`` or ``(B, K)``.
            generator: CPU generator, the only source of randomness.
            return_params: also return the sampled parameters.

        Returns:
            ``(B, T)`` view, plus the parameters if ``return_params``.
        """
        self._check_wave(wave)
        active = self.active(descriptor, wave.shape[0])
        return self.augmenter(wave, active, generator, return_params=return_params)

    def sample(self, wave: torch.Tensor, descriptor: torch.Tensor | Sequence[float],
               generator: torch.Generator) -> Params:
        """One view's parameters for ``wave`` ``(B, T)`` (no audio is touched).

        Returns:
            ``sample_params(config, active(descriptor, B), generator)``.
        """
        self._check_wave(wave)
        return sample_params(self.config, self.active(descriptor, wave.shape[0]), generator)

    def apply(self, wave: torch.Tensor, params: Params) -> torch.Tensor:
        """``(B, T)`` view of ``wave`` with given parameters; the noise samples are seeded from
        the parameter values, so the result is a deterministic function of its inputs."""
        self._check_wave(wave)
        return self.augmenter.apply(wave, params)

    def views(self, wave: torch.Tensor, descriptor: torch.Tensor | Sequence[float],
              generator: torch.Generator, return_params: bool = False) -> tuple:
        """Two independent views (drawn one after the other from ``generator``).

        Returns:
            ``(v1, v2)``, each ``(B, T)``, or ``(v1, v2, p1, p2)`` if ``return_params``.
        """
        first = self.augment(wave, descriptor, generator, return_params=True)
        second = self.augment(wave, descriptor, generator, return_params=True)
        if return_params:
            return first[0], second[0], first[1], second[1]
        return first[0], second[0]

    @staticmethod
    def _check_wave(wave: torch.Tensor) -> None:
        if not isinstance(wave, torch.Tensor) or wave.dim() != 2 or not wave.is_floating_point():
            shape = tuple(wave.shape) if isinstance(wave, torch.Tensor) else type(wave).__name__
            raise ValueError(f"wave must be a float tensor of shape (B, T), got {shape}"
                             + (f" with dtype {wave.dtype}" if isinstance(wave, torch.Tensor) else ""))

    def __repr__(self) -> str:
        return f"AudioPolicy({list(self.space.names)}, backend={self.backend_name!r})"
