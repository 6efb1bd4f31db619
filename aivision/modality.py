"""The vision modality for the pre-training engine: fixed-size images, augmented views, monitor data.

``VisionDataConfig`` is the ``data:`` section of a vision pre-training config.
``VisionModality`` implements ``core.modality.Modality``: ``aivision.data`` readers serve
images, each fitted once to ``load_size x load_size`` (short side resized, centre crop) on
the CPU workers, so a batch has one shape; ``aivision.augment.VisionPolicy`` then makes two
``(B, 3, S, S)`` views on the device with exactly the augmentations whose descriptor bit is
1 (random resized crop reads from the ``load_size`` square, so set ``load_size`` a little
above ``augment.size``, e.g. 256 for 224). ``make_vision_modality(config)`` is the factory
the ``aivision pretrain`` command hands to the engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from aivision.augment import TARGET_DIMS, VISION_AUGMENTATIONS, VisionAugmentConfig, VisionPolicy, targets
from aivision.augment.policy import DEFAULT_GROUPS
from aivision.augment.sampling import Params
from aivision.data import ImageDataset, open_image_dataset
from aivision.data.base import BadImageError
from aivision.images import resize_center_crop
from aivision.space import GROUPS
from core.config import ConfigError, from_dict
from core.invariance import InvarianceSpace
from core.modality import Modality, check_space, monitor_split

if TYPE_CHECKING:
    from core.engine.config import PretrainConfig


@dataclass
class VisionDataConfig:
    """The ``data:`` section of a vision pre-training config.

    Attributes:
        dataset: ``aivision.data.open_image_dataset`` spec of the pre-training images.
        load_size: side of the square every image is fitted to before augmentation.
        skip_bad: serve the next readable image instead of failing on an unreadable file.
        augment: strengths, probabilities and the view size ``augment.size``.
        space: descriptor entries: augmentation names or groups (``spatial``, ``appearance``).
        min_active: descriptors with fewer active entries are never sampled.
        monitor: labelled dataset spec for the online k-NN monitor, or None.
        monitor_images: images drawn (seeded) from the monitor dataset.
        monitor_test_fraction: share of them held out as the monitor's test side.
    """
    dataset: str = "synthetic?n_images=2000&size=64"
    load_size: int = 256
    skip_bad: bool = False
    augment: VisionAugmentConfig = field(default_factory=VisionAugmentConfig)
    space: list[str] = field(default_factory=lambda: list(GROUPS))
    min_active: int = 1
    monitor: str | None = None
    monitor_images: int = 400
    monitor_test_fraction: float = 0.5

    def __post_init__(self) -> None:
        checks = [
            (bool(self.dataset.strip()), "data.dataset must be a non-empty dataset spec"),
            (self.load_size >= 8, f"data.load_size must be >= 8, got {self.load_size}"),
            (self.monitor_images >= 2, f"data.monitor_images must be >= 2, got {self.monitor_images}"),
            (0.0 < self.monitor_test_fraction < 1.0,
             f"data.monitor_test_fraction must be in (0, 1), got {self.monitor_test_fraction}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        check_space(self.space, self.min_active, list(VISION_AUGMENTATIONS) + list(DEFAULT_GROUPS))


def open_images(spec: str, key: str) -> ImageDataset:
    """``open_image_dataset(spec)``; any failure becomes a ``ConfigError`` naming ``key`` and the spec."""
    try:
        dataset = open_image_dataset(spec)
    except (ValueError, OSError, KeyError, TypeError) as err:
        raise ConfigError(f"{key}: cannot open dataset {spec!r}: {err}") from err
    if len(dataset) == 0:
        raise ConfigError(f"{key}: dataset {spec!r} holds no images")
    return dataset


class FittedImages(Dataset):
    """Items ``{"input": (3, L, L) uint8, "skipped": 0|1}``: each image fitted to ``L x L``.

    With ``skip_bad`` an unreadable image is replaced by the next readable one (counted in
    ``skipped``); otherwise a ``BadImageError`` naming the file and ``data.skip_bad`` propagates
    (also out of DataLoader workers: its one-argument form recovers the message).
    """

    def __init__(self, dataset: ImageDataset, load_size: int, skip_bad: bool = False) -> None:
        self.dataset, self.load_size, self.skip_bad = dataset, int(load_size), skip_bad

    def __len__(self) -> int:
        return len(self.dataset)

    def image(self, index: int) -> tuple[Tensor, int]:
        """``(fitted image, images skipped)`` for ``index``."""
        for skipped in range(len(self.dataset)):
            try:
                raw = self.dataset.load((index + skipped) % len(self.dataset))
                return resize_center_crop(raw, self.load_size), skipped
            except BadImageError as error:
                if not self.skip_bad:
                    raise BadImageError(error.path, f"{error.reason}; set data.skip_bad=true to skip bad files "
                                        "(each is replaced by the next readable image)") from None
        raise BadImageError(self.dataset.root or self.dataset.name, "no readable image at all")

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, skipped = self.image(index)
        return {"input": image, "skipped": int(skipped > 0)}


class VisionModality(Modality):
    """Fitted images in, two augmented views ``(B, 3, S, S)`` out (S = ``augment.size``).

    Args:
        config: the validated ``data:`` section.
        seed: the run's seed (monitor subset and split).
    """

    name = "vision"

    def __init__(self, config: VisionDataConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.seed = int(seed)
        self.space = InvarianceSpace(config.space, min_active=config.min_active)
        self.dataset = open_images(config.dataset, "data.dataset")
        self.images = FittedImages(self.dataset, config.load_size, config.skip_bad)
        self.policy = VisionPolicy(self.space, config.augment)
        self._monitor: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    def train_dataset(self) -> FittedImages:
        """Items ``{"input": (3, L, L) uint8, "skipped": 0|1}``."""
        return self.images

    def setup(self, device: torch.device) -> None:
        """Nothing is fitted to data (normalisation uses the configured mean and std)."""

    @torch.no_grad()
    def views(self, batch: Tensor, descriptor: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Two views ``(B, 3, S, S)`` float32 of ``batch`` ``(B, 3, L, L)`` on its device."""
        return self.policy.views(batch, descriptor, generator)

    @torch.no_grad()
    def encode_input(self, batch: Tensor) -> Tensor:
        """``(B, 3, L, L)`` -> ``(B, 3, S, S)``: resized and normalised, no augmentation."""
        return self.policy.plain(batch)

    def monitor_data(self) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
        """``(train (N1, 3, L, L) uint8, labels (N1,), test (N2, 3, L, L), labels (N2,))`` from
        ``config.monitor`` (seeded subset and split), or None."""
        cfg = self.config
        if cfg.monitor is None:
            return None
        if self._monitor is None:
            dataset = open_images(cfg.monitor, "data.monitor")
            labels = torch.as_tensor(dataset.labels, dtype=torch.long)
            if bool((labels < 0).any()):
                raise ConfigError(f"data.monitor: dataset {cfg.monitor!r} has unlabelled images")
            chosen, train, test = monitor_split(len(dataset), cfg.monitor_images, cfg.monitor_test_fraction, self.seed)
            fitted = FittedImages(dataset, cfg.load_size, cfg.skip_bad)
            images = torch.stack([fitted.image(int(i))[0] for i in chosen])
            y = labels[chosen]
            self._monitor = (images[train], y[train], images[test], y[test])
        return self._monitor

    # ---------------------------------------------- parameter-level hooks (AugSelf, LooC)
    def sample_params(self, batch: Tensor, descriptor: Tensor, generator: torch.Generator) -> Params:
        """One view's parameters for ``batch`` ``(B, 3, L, L)`` (crop boxes in whole pixels)."""
        return self.policy.sample(descriptor, batch.shape[0], generator, image_size=tuple(batch.shape[-2:]))

    @torch.no_grad()
    def render(self, batch: Tensor, params: Params) -> Tensor:
        """``(B, 3, L, L)`` images with ``params`` applied -> ``(B, 3, S, S)`` views."""
        return self.policy.apply(batch, params)

    def entry_augmentations(self, entry: str) -> tuple[str, ...]:
        """The augmentations a space entry or group name stands for.

        Raises:
            KeyError: neither an augmentation nor a group (lists both).
        """
        if entry in VISION_AUGMENTATIONS:
            return (entry,)
        if entry in self.policy.groups:
            return tuple(self.policy.groups[entry])
        raise KeyError(f"{entry!r} is neither a vision augmentation nor a group; allowed: "
                       f"{', '.join([*VISION_AUGMENTATIONS, *self.policy.groups])}")

    def target_dims(self) -> dict[str, int]:
        """AugSelf target widths of the augmentations the space can switch on."""
        reachable = self.policy.mapping.any(dim=0).tolist()
        return {name: TARGET_DIMS[name] for name, on in zip(VISION_AUGMENTATIONS, reachable) if on}

    def param_targets(self, params: Params) -> dict[str, Tensor]:
        """``aivision.augment.targets``: name -> ``(B, d)``."""
        return targets(params)

    # ----------------------------------------------------------- encoder/state
    def default_encoder(self) -> tuple[str, dict[str, Any]]:
        """``("hyper_resnet50", {"in_chans": 3})``: the paper's MoCo-v2 vision encoder."""
        return "hyper_resnet50", {"in_chans": 3}

    def _input(self) -> dict[str, Any]:
        a = self.config.augment
        return {"modality": "vision", "image_size": a.size, "load_size": self.config.load_size,
                "normalize": a.normalize, "mean": list(a.mean), "std": list(a.std)}

    def state_dict(self) -> dict[str, Any]:
        """``{"input": ...}``: the input pipeline's settings (nothing is fitted to data)."""
        return {"input": self._input()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Check that a checkpoint's input pipeline matches this config.

        Raises:
            ConfigError: no ``input`` entry, or settings that differ (names them).
        """
        if not isinstance(state, dict) or "input" not in state:
            raise ConfigError(f"vision modality state: expected {{'input': ...}}, got "
                              f"{sorted(state) if isinstance(state, dict) else type(state).__name__}")
        mine, saved = self._input(), dict(state["input"])
        diff = [k for k in mine if mine[k] != saved.get(k)]
        if diff:
            raise ConfigError(f"vision modality state: the checkpoint's input pipeline differs in {diff} "
                              f"(saved {[saved.get(k) for k in diff]}, config {[mine[k] for k in diff]})")

    def encoder_extra(self) -> dict[str, Any]:
        """``{"modality": "vision", "image_size", "load_size", "normalize", "mean", "std"}``."""
        return self._input()


def make_vision_modality(config: "PretrainConfig") -> VisionModality:
    """The engine's modality factory: validates ``config.data`` as ``VisionDataConfig``."""
    data = from_dict(VisionDataConfig, config.data, where="data")
    return VisionModality(data, seed=config.seed)
