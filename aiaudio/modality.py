"""The audio modality for the pre-training engine: crops, augmented log-mel views, monitor data.

``AudioDataConfig`` is the ``data:`` section of a pre-training config (validated with
``core.config.from_dict(AudioDataConfig, config.data, where="data")``).
``AudioModality`` implements ``core.modality.Modality`` with the existing audio parts:
``aiaudio.data`` (``open_dataset``, ``RandomCrops``) serves fixed-length waveform crops,
``aiaudio.augment.AudioPolicy`` makes two views with exactly the augmentations whose
descriptor bit is 1, and ``aiaudio.frontend.Frontend`` turns them into normalised log-mels
``(B, 1, n_mels, frames)`` on the device. ``make_audio_modality(config)`` is the factory the
``aiaudio pretrain`` command hands to the engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset

from aiaudio.augment.config import AugmentConfig
from aiaudio.augment.policy import DEFAULT_GROUPS, AudioPolicy
from aiaudio.augment.sampling import Params
from aiaudio.augment.targets import TARGET_DIMS, param_targets
from aiaudio.data import AudioDataset, BadAudioError, RandomCrops, open_dataset
from aiaudio.frontend import Frontend, FrontendConfig, batch_problems, item_name
from aiaudio.space import AUDIO_AUGMENTATIONS
from core.config import ConfigError, from_dict
from core.invariance import InvarianceSpace
from core.modality import Modality, check_space, monitor_split

if TYPE_CHECKING:
    from core.engine.config import PretrainConfig

BACKEND_CHOICES = ("batched", "audiomentations")
SKIP_HINT = "set data.skip_bad=true to skip bad files (each is warned about once and replaced by the next clip)"


def with_skip_hint(error: BadAudioError) -> BadAudioError:
    """``error`` (naming the file) with the advice to set ``data.skip_bad``."""
    return BadAudioError(error.path, f"{error.reason}; {SKIP_HINT}")


@dataclass
class AudioDataConfig:
    """The ``data:`` section of an audio pre-training config.

    Attributes:
        dataset: ``aiaudio.data.open_dataset`` spec of the pre-training clips (labels unused).
            The synthetic default uses 4 s clips so crops are the clips themselves.
        seconds: crop length in seconds (several-second crops as in CLAR and MetaAudio,
            which evaluates 5 s pieces; 4 s = 126 log-mel frames at hop 512: our choice).
        sample_rate: Hz every clip is resampled to (MetaAudio: 16 kHz mono).
        cache: directory of an ``AudioCache`` of decoded clips, or None.
        skip_bad: serve the next readable clip instead of failing on an unreadable file.
        augment: ranges and probabilities of the seven augmentations.
        backend: ``batched`` (tensor code on the device) or ``audiomentations`` (per clip).
        frontend: log-mel settings; ``frontend.sample_rate`` must equal ``sample_rate``.
        fit_clips: crops used to fit the normaliser: the first ``fit_clips`` crops of epoch 0.
        space: descriptor entries, augmentation names or groups (``frequency``, ``time``).
        min_active: descriptors with fewer active entries are never sampled (paper: 2).
        monitor: labelled dataset spec for the online k-NN monitor, or None.
        monitor_clips: clips drawn (seeded) from the monitor dataset.
        monitor_test_fraction: share of those clips held out as the monitor's test side.
    """
    dataset: str = "synthetic?n_clips=1000&seconds=4"
    seconds: float = 4.0
    sample_rate: int = 16000
    cache: str | None = None
    skip_bad: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    backend: Literal["batched", "audiomentations"] = "batched"
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    fit_clips: int = 256
    space: list[str] = field(default_factory=lambda: list(AUDIO_AUGMENTATIONS))
    min_active: int = 2
    monitor: str | None = None
    monitor_clips: int = 400
    monitor_test_fraction: float = 0.5

    def __post_init__(self) -> None:
        checks = [
            (bool(self.dataset.strip()), "data.dataset must be a non-empty dataset spec"),
            (self.seconds > 0, f"data.seconds must be > 0, got {self.seconds}"),
            (self.sample_rate > 0, f"data.sample_rate must be > 0, got {self.sample_rate}"),
            (self.frontend.sample_rate == self.sample_rate,
             f"data.frontend.sample_rate ({self.frontend.sample_rate}) must equal data.sample_rate "
             f"({self.sample_rate})"),
            (self.augment.backend == self.backend,
             f"data.augment.backend ({self.augment.backend!r}) disagrees with data.backend "
             f"({self.backend!r}); set data.backend only"),
            (self.fit_clips >= 1, f"data.fit_clips must be >= 1, got {self.fit_clips}"),
            (self.monitor_clips >= 2, f"data.monitor_clips must be >= 2, got {self.monitor_clips}"),
            (0.0 < self.monitor_test_fraction < 1.0,
             f"data.monitor_test_fraction must be in (0, 1), got {self.monitor_test_fraction}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        check_space(self.space, self.min_active, list(AUDIO_AUGMENTATIONS) + list(DEFAULT_GROUPS))


def open_spec(spec: str, sample_rate: int, cache: str | None, key: str) -> AudioDataset:
    """``open_dataset(spec)``; any failure becomes a ``ConfigError`` naming ``key`` and the spec."""
    try:
        dataset = open_dataset(spec, sample_rate=sample_rate, cache=cache)
    except (ValueError, OSError, KeyError, TypeError) as err:
        raise ConfigError(f"{key}: cannot open dataset {spec!r}: {err}") from err
    if len(dataset) == 0:
        raise ConfigError(f"{key}: dataset {spec!r} holds no clips")
    return dataset


class TrainCrops(Dataset):
    """``RandomCrops`` items as the engine wants them: ``{"input": (T,) float32, "skipped": int}``.

    Without ``skip_bad`` a bad file raises ``BadAudioError`` naming it and the
    ``data.skip_bad`` setting; the error survives DataLoader workers (its one-argument form
    recovers the message), so the command exits 2 with that one line.
    """

    def __init__(self, crops: RandomCrops) -> None:
        self.crops = crops

    def set_epoch(self, epoch: int) -> None:
        """Select the crops of ``epoch`` (the engine calls it before every epoch)."""
        self.crops.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            item = self.crops[index]
        except BadAudioError as error:
            if self.crops.skip_bad:  # every clip was bad: the hint would not help
                raise
            raise with_skip_hint(error) from None
        return {"input": item["wave"], "skipped": int(item["skipped"])}


class AudioModality(Modality):
    """Waveform crops in, two augmented log-mel views ``(B, 1, n_mels, frames)`` out.

    Args:
        config: the validated ``data:`` section.
        seed: the run's seed (crops: ``(seed, epoch, index)``; monitor subset: ``seed``).

    Raises:
        ConfigError: a dataset spec that cannot be opened (the message names the spec).
    """

    name = "audio"

    def __init__(self, config: AudioDataConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.seed = int(seed)
        self.space = InvarianceSpace(config.space, min_active=config.min_active)
        self.dataset = open_spec(config.dataset, config.sample_rate, config.cache, "data.dataset")
        self.crops = RandomCrops(self.dataset, config.seconds, seed=self.seed, skip_bad=config.skip_bad)
        self.policy = AudioPolicy(self.space, config.augment, sample_rate=config.sample_rate,
                                  backend=config.backend)
        self.frontend = Frontend(config.frontend)
        self._loaded = False
        self._monitor: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    # ------------------------------------------------------------------ data
    def train_dataset(self) -> TrainCrops:
        """Items ``{"input": (T,) wave, "skipped": 0|1}``, ``T = round(seconds * sample_rate)``."""
        return TrainCrops(self.crops)

    def _fit_batches(self, batch_size: int = 32) -> Iterator[Tensor]:
        """The first ``fit_clips`` crops of epoch 0 as ``(b, T)`` batches (own crop object, so
        the training dataset's epoch is untouched).

        Raises:
            BadAudioError: a clip is unreadable or breaks the front end's input contract
                (NaN/inf, or a peak above ``MAX_ABS_SAMPLE``); names its file (or clip) and
                ``data.skip_bad``, so the normaliser is never fitted on a poisoned clip.
        """
        crops = RandomCrops(self.dataset, self.config.seconds, seed=self.seed, skip_bad=self.config.skip_bad)
        crops.set_epoch(0)
        count = min(self.config.fit_clips, len(crops))
        for start in range(0, count, batch_size):
            items = []
            for i in range(start, min(count, start + batch_size)):
                try:
                    items.append(crops[i])
                except BadAudioError as error:
                    raise (error if crops.skip_bad else with_skip_hint(error)) from None
            batch = torch.stack([item["wave"] for item in items])
            for row, reason in batch_problems(batch).items():
                where = item_name(self.dataset, items[row]["index"])
                raise BadAudioError(where, f"{reason}; the front end's normalisation was not fitted")
            yield batch

    def setup(self, device: torch.device) -> None:
        """Fit the normaliser (on the CPU, float64 statistics: identical on every rank) unless
        state was loaded, then move the front end to ``device``."""
        if not self._loaded and self.config.frontend.normalise != "none":
            self.frontend.to("cpu").fit(self._fit_batches())
        self.frontend.to(device)

    def _check_ready(self) -> None:
        if not self.frontend.fitted:
            raise RuntimeError("AudioModality: the front end has no normalisation statistics; call "
                               "setup(device) or load_state_dict(...) first")

    @torch.no_grad()
    def views(self, batch: Tensor, descriptor: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Two augmented views.

        Args:
            batch: ``(B, T)`` waveforms on the device.
            descriptor: ``(K,)`` (binary in pre-training).
            generator: CPU generator; the only source of randomness.

        Returns:
            Two ``(B, 1, n_mels, frames)`` float32 log-mel batches on ``batch.device``.
        """
        self._check_ready()
        v1, v2 = self.policy.views(batch, descriptor, generator)
        mels = self.frontend(torch.cat([v1, v2]))
        return mels[:batch.shape[0]], mels[batch.shape[0]:]

    @torch.no_grad()
    def encode_input(self, batch: Tensor) -> Tensor:
        """``(B, T)`` waveforms -> ``(B, 1, n_mels, frames)`` log-mels, no augmentation."""
        self._check_ready()
        return self.frontend(batch)

    def monitor_data(self) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
        """``(train_wave (N1, T), train_labels (N1,), test_wave (N2, T), test_labels (N2,))`` on
        the CPU from ``config.monitor`` (seeded subset, epoch-0 crops, seeded split), or None."""
        cfg = self.config
        if cfg.monitor is None:
            return None
        if self._monitor is None:
            dataset = open_spec(cfg.monitor, cfg.sample_rate, cfg.cache, "data.monitor")
            labels = torch.as_tensor(dataset.labels, dtype=torch.long)
            if bool((labels < 0).any()):
                raise ConfigError(f"data.monitor: dataset {cfg.monitor!r} has unlabelled clips")
            chosen, train, test = monitor_split(len(dataset), cfg.monitor_clips, cfg.monitor_test_fraction, self.seed)
            crops = RandomCrops(dataset, cfg.seconds, seed=self.seed + 1, skip_bad=cfg.skip_bad)
            try:
                items = [crops[int(i)] for i in chosen]
            except BadAudioError as error:
                raise (error if cfg.skip_bad else with_skip_hint(error)) from None
            waves = torch.stack([item["wave"] for item in items])
            y = labels[torch.tensor([item["index"] for item in items])]
            self._monitor = (waves[train], y[train], waves[test], y[test])
        return self._monitor

    # ---------------------------------------------- parameter-level hooks (AugSelf, LooC)
    def sample_params(self, batch: Tensor, descriptor: Tensor, generator: torch.Generator) -> Params:
        """One view's augmentation parameters for ``batch`` ``(B, T)`` (``AudioPolicy.sample``)."""
        return self.policy.sample(batch, descriptor, generator)

    @torch.no_grad()
    def render(self, batch: Tensor, params: Params) -> Tensor:
        """``(B, T)`` waves augmented with ``params`` -> ``(B, 1, n_mels, frames)`` log-mels."""
        self._check_ready()
        return self.frontend(self.policy.apply(batch, params))

    def entry_augmentations(self, entry: str) -> tuple[str, ...]:
        """The augmentations a space entry or group name stands for (an augmentation is itself).

        Raises:
            KeyError: neither an augmentation nor a group (lists both).
        """
        if entry in AUDIO_AUGMENTATIONS:
            return (entry,)
        if entry in self.policy.groups:
            return tuple(self.policy.groups[entry])
        raise KeyError(f"{entry!r} is neither an audio augmentation nor a group; allowed: "
                       f"{', '.join([*AUDIO_AUGMENTATIONS, *self.policy.groups])}")

    def target_dims(self) -> dict[str, int]:
        """AugSelf target widths of the augmentations the space can switch on."""
        reachable = self.policy.mapping.any(dim=0).tolist()
        return {name: TARGET_DIMS[name] for name, on in zip(AUDIO_AUGMENTATIONS, reachable) if on}

    def param_targets(self, params: Params) -> dict[str, Tensor]:
        """``aiaudio.augment.targets.param_targets``: name -> ``(B, d)``."""
        return param_targets(params)

    # ----------------------------------------------------------- encoder/state
    def default_encoder(self) -> tuple[str, dict[str, Any]]:
        """``("hyper_resnet18", {"in_chans": 1})``: the paper's audio encoder on log-mels."""
        return "hyper_resnet18", {"in_chans": 1}

    def state_dict(self) -> dict[str, Any]:
        """``{"frontend": Frontend.to_dict()}`` (plain lists and numbers)."""
        return {"frontend": self.frontend.to_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the fitted front end; ``setup`` then keeps it instead of refitting.

        Raises:
            ConfigError: no ``frontend`` entry, or its settings differ from ``data.frontend``.
        """
        if not isinstance(state, dict) or "frontend" not in state:
            raise ConfigError(f"audio modality state: expected {{'frontend': ...}}, got keys "
                              f"{sorted(state) if isinstance(state, dict) else type(state).__name__}")
        frontend = Frontend.from_dict(state["frontend"])
        if frontend.config != self.config.frontend:
            mine, theirs = vars(self.config.frontend), vars(frontend.config)
            diff = [k for k in mine if mine[k] != theirs[k]]
            raise ConfigError(f"audio modality state: the saved front end differs from data.frontend in "
                              f"{diff} (saved {[theirs[k] for k in diff]}, config {[mine[k] for k in diff]})")
        device = self.frontend.normaliser.mean.device
        self.frontend = frontend.to(device)
        self._loaded = True

    def encoder_extra(self) -> dict[str, Any]:
        """``{"frontend": ..., "sample_rate": ..., "seconds": ...}`` for the exported encoder."""
        self._check_ready()
        return {"frontend": self.frontend.to_dict(), "sample_rate": self.config.sample_rate,
                "seconds": self.config.seconds}


def make_audio_modality(config: "PretrainConfig") -> AudioModality:
    """The engine's modality factory: validates ``config.data`` as ``AudioDataConfig``."""
    data = from_dict(AudioDataConfig, config.data, where="data")
    return AudioModality(data, seed=config.seed)
