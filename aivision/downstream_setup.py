"""Shared plumbing of the vision downstream commands (``probe``, ``fewshot``, ``measure``,
``finetune``): the vision flags, reading the encoder and its input pipeline, opening the
dataset and its parts, and building ``ImageClips``. Split rules: ``aivision.cli_downstream``.

The modality-free helpers (descriptor lists, clip-level splits, JSON output, one-line errors)
come from ``core.downstream.cli_common``; class and image splits are in
``aivision.downstream_splits``.
"""
from __future__ import annotations

import argparse
import warnings
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from aivision.augment.config import IMAGENET_MEAN, IMAGENET_STD
from core.downstream import cli_common
from core.downstream.cli_common import add_run_args, add_source_args, check_device

CLASS_PARTS = ("all", "train", "val", "test")
PROBE_SPLITS = ("auto", "published", "clips")


def add_common_args(p: argparse.ArgumentParser) -> None:
    """Flags every vision downstream command takes (the audio ones less the audio front end)."""
    from core.encoders.calibration import BAND_STATS, encoder_help

    add_source_args(p, "cub200:/data/CUB_200_2011?split=all", encoder_help(BAND_STATS))
    p.add_argument("--split-file", default=None, help="class split: JSON {\"train\": [...], \"val\": [...], "
                   "\"test\": [...]} of class names; default: the reader's (fc100) or a seeded 70/10/20 split")
    p.add_argument("--image-size", type=int, default=None, help="input side in pixels (default: the encoder "
                   "file's, else the ViT's img_size, else 224)")
    p.add_argument("--cache-mb", type=float, default=2048.0, help="in-memory cache of prepared images (MB)")
    add_run_args(p)


def add_task_args(p: argparse.ArgumentParser) -> None:
    """Flags of the commands that train on a train/test split (probe, finetune)."""
    p.add_argument("--task", default=None, choices=["classification", "regression"],
                   help="default: the dataset's (regression for 300w, lsp, celeba)")
    p.add_argument("--target", default=None, help="regression: target columns to fit, comma-separated "
                   "(the dataset's target_names, e.g. x0,y0; default all)")
    p.add_argument("--split", default="auto", choices=PROBE_SPLITS, help="auto: the reader's published "
                   "train/test split when the spec names no split=, else a seeded image-level split")
    p.add_argument("--val-fraction", type=float, default=0.2, help="fraction of the training images "
                   "(per class) for validation when no validation split is published")
    p.add_argument("--test-fraction", type=float, default=0.2, help="image-level split: fraction of each "
                   "class's images for test")


def cli_errors(command: str) -> AbstractContextManager[list[int]]:
    """One-line errors (also unreadable images) and warnings as ``aivision <command>: ...``."""
    from aivision.data.base import BadImageError

    return cli_common.cli_errors("aivision", command, (BadImageError,))


def parse_vector(text: str, what: str, space: Any) -> list[float] | None:
    """``ones`` -> None, else one value in [0, 1] per entry of ``space``."""
    return cli_common.parse_vector(text, what, list(space.names))


@dataclass
class VisionInput:
    """How images become encoder inputs: side, normalisation and where that came from."""
    image_size: int
    normalize: bool
    mean: list[float]
    std: list[float]
    source: str


def read_encoder(path: str, device: str, image_size: int | None = None) -> tuple[Any, dict[str, Any]]:
    """``(encoder in eval mode, extra)`` of an encoder file or checkpoint for RGB images, or
    of a calibration baseline on the two-group space: ``band-stats`` (mean and std of every
    image row, per channel; ``image_size`` rows, else the borrowed pipeline's, else 224) or
    ``untrained:<arch>`` (seeded random weights), see :mod:`core.encoders.calibration`.

    Raises:
        EncoderFileMissing / EncoderFileError (user errors): missing file, a directory, a
            damaged or foreign file, a non-vision space or modality, or an encoder for another
            channel count (names the file).
    """
    from aivision.augment.policy import DEFAULT_GROUPS, augmentation_mapping
    from core.encoders.serialise import EncoderFileError, check_input_channels, read_encoder_option

    from aivision.space import group_space

    def rows(extra: dict[str, Any]) -> int:  # the side input_pipeline will choose
        stored = extra.get("image_size")
        return image_size or (stored if isinstance(stored, int) and stored > 0 else 224)

    encoder, extra = read_encoder_option(path, device, space=group_space(), in_chans=3, band_rows=rows)
    modality = extra.get("modality")
    if modality not in (None, "vision"):
        raise EncoderFileError(f"{path}: the encoder was pre-trained on {modality}, not on images")
    try:
        augmentation_mapping(encoder.space.names, DEFAULT_GROUPS)
    except ValueError as error:
        raise EncoderFileError(f"{path}: the encoder's space {list(encoder.space.names)} is not a vision space "
                               f"({error}); give an image encoder (aiaudio reads audio encoders)") from None
    check_input_channels(encoder, path, 3, "RGB images")
    return encoder, extra


def input_pipeline(encoder: Any, extra: dict[str, Any], path: str, image_size: int | None) -> VisionInput:
    """The input pipeline an encoder was pre-trained with (``extra``), else ``image_size``
    (or the ViT's fixed ``img_size``, or 224) with ImageNet normalisation and a warning."""
    config = encoder.config if isinstance(getattr(encoder, "config", None), dict) else {}
    fixed = config.get("img_size")
    if isinstance(fixed, (list, tuple)):
        fixed = fixed[0] if len(set(fixed)) == 1 else tuple(fixed)
    if image_size is not None and image_size < 1:
        raise ValueError(f"--image-size {image_size}: must be a positive number of pixels")
    stored = extra.get("image_size")
    if stored is not None:
        mean, std = list(extra.get("mean", IMAGENET_MEAN)), list(extra.get("std", IMAGENET_STD))
        if not isinstance(stored, int) or stored < 1 or len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"{path}: extra holds a malformed input pipeline (image_size {stored!r}, "
                             f"mean {mean}, std {std})")
        size, source = stored, "the encoder file"
        if image_size is not None and image_size != stored:
            warnings.warn(f"--image-size {image_size} differs from the {stored} px the encoder {path} was "
                          f"pre-trained on; using {image_size}", UserWarning, stacklevel=2)
            size, source = image_size, "--image-size (mean/std from the encoder file)"
        normalize = bool(extra.get("normalize", True))
    else:
        size = image_size or (fixed if isinstance(fixed, int) else None) or 224
        mean, std, normalize = list(IMAGENET_MEAN), list(IMAGENET_STD), True
        source = "defaults (--image-size, ImageNet mean/std)"
        warnings.warn(f"{path} stores no input pipeline (extra['image_size']): using {size} px images "
                      f"normalised with the ImageNet mean and std", UserWarning, stacklevel=2)
    if fixed is not None and fixed != size:
        raise ValueError(f"--image-size {size}: the encoder {path} is a ViT for {fixed} px images")
    return VisionInput(int(size), normalize, [float(v) for v in mean], [float(v) for v in std], source)


@dataclass
class VisionSetup:
    """What a command works on: the encoder, its input pipeline and the opened dataset."""
    encoder: Any
    extra: dict[str, Any]
    input: VisionInput
    dataset: Any
    reader: str
    spec_split: Any


def setup(args: argparse.Namespace) -> VisionSetup:
    """Read ``--encoder`` and its input pipeline, and open ``--dataset``."""
    from aivision.data import open_image_dataset, parse_spec

    device = check_device(args.device)
    encoder, extra = read_encoder(args.encoder, device, args.image_size)
    if getattr(args, "blocks", None) is not None:  # finetune trains the encoder's weights
        from core.encoders.calibration import check_weights_to_train

        check_weights_to_train(encoder, args.encoder, "finetune")
    pipeline = input_pipeline(encoder, extra, args.encoder, args.image_size)
    name, _, options = parse_spec(args.dataset)
    data = open_image_dataset(args.dataset)
    if len(data) == 0:
        raise ValueError(f"--dataset {args.dataset}: no images")
    return VisionSetup(encoder, extra, pipeline, data, name, options.get("split"))


def open_part(spec: str, split: str) -> Any:
    """The dataset ``spec`` names, with its reader's ``split`` option set to ``split``."""
    from aivision.data import READERS, parse_spec
    from core.dataspec import call_reader, check_options

    name, path, options = parse_spec(spec)
    options = {**options, "split": split}
    check_options(name, READERS[name], options)
    data = call_reader(READERS[name], path, **options)
    if len(data) == 0:
        raise ValueError(f"--dataset {spec}: no images in its {split!r} split")
    return data


def make_clips(s: VisionSetup, args: argparse.Namespace, data: Any, targets: Any = None) -> Any:
    """``ImageClips`` of ``data`` with the encoder's input pipeline (``targets``: regression)."""
    from aivision.clips import ImageClips

    p = s.input
    return ImageClips(data, p.image_size, p.mean, p.std, p.normalize, targets=targets, cache_mb=args.cache_mb)
