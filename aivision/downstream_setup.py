"""Shared plumbing of the vision downstream commands (``probe``, ``fewshot``, ``measure``,
``finetune``): the vision flags, reading the encoder and its input pipeline, opening the
dataset and its parts, and building ``ImageClips``. Split rules: ``aivision.cli_downstream``.

The modality-free helpers (descriptor lists, clip-level splits, JSON output, one-line errors)
come from ``core.downstream.cli_common``.
"""
from __future__ import annotations

import argparse
import json
import warnings
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from aivision.augment.config import IMAGENET_MEAN, IMAGENET_STD
from core.downstream import cli_common
from core.downstream.cli_common import add_run_args, add_source_args, check_device

CLASS_PARTS = ("all", "train", "val", "test")
PROBE_SPLITS = ("auto", "published", "clips")
# Image-level splits a reader publishes: the values of its ``split=`` option for each role.
PUBLISHED: dict[str, dict[str, str | None]] = {
    "imagenet100": {"train": "train", "val": None, "test": "val", "trainval": None},
    "cifar10": {"train": "train", "val": None, "test": "test", "trainval": None},
    "cifar100": {"train": "train", "val": None, "test": "test", "trainval": None},
    "flowers102": {"train": "train", "val": "val", "test": "test", "trainval": "trainval"},
    "dtd": {"train": "train", "val": "val", "test": "test", "trainval": "trainval"},
    "pets": {"train": "trainval", "val": None, "test": "test", "trainval": None},
    "caltech101": {"train": "train", "val": None, "test": "test", "trainval": None},
    "cub200": {"train": "train", "val": None, "test": "test", "trainval": None},
    "300w": {"train": "train", "val": "val", "test": "test", "trainval": "trainval"},
    "lsp": {"train": "train", "val": None, "test": "test", "trainval": None},
    "celeba": {"train": "train", "val": "val", "test": "test", "trainval": "trainval"},
}
# Readers whose ``split=`` option chooses disjoint classes (few-shot class splits).
CLASS_SPLIT_READERS = ("fc100",)


def add_common_args(p: argparse.ArgumentParser) -> None:
    """Flags every vision downstream command takes (the audio ones less the audio front end)."""
    add_source_args(p, "cub200:/data/CUB_200_2011?split=all")
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


def read_encoder(path: str, device: str) -> tuple[Any, dict[str, Any]]:
    """``(encoder in eval mode, extra)`` of an encoder file or checkpoint for RGB images.

    Raises:
        FileNotFoundError / ValueError: missing or foreign file, a non-vision space or
            modality, or an encoder for another channel count (names the file).
    """
    from aivision.augment.policy import DEFAULT_GROUPS, augmentation_mapping
    from core.encoders.serialise import read_encoder_file

    if not Path(path).expanduser().is_file():
        raise FileNotFoundError(f"--encoder {path}: no such file (give an encoder.pt or a training checkpoint)")
    encoder, extra = read_encoder_file(Path(path).expanduser(), map_location=device)
    modality = extra.get("modality")
    if modality not in (None, "vision"):
        raise ValueError(f"{path}: the encoder was pre-trained on {modality}, not on images")
    try:
        augmentation_mapping(encoder.space.names, DEFAULT_GROUPS)
    except ValueError as error:
        raise ValueError(f"{path}: the encoder's space {list(encoder.space.names)} is not a vision space "
                         f"({error})") from None
    chans = encoder.config.get("in_chans") if isinstance(getattr(encoder, "config", None), dict) else None
    if chans is not None and chans != 3:
        raise ValueError(f"{path}: the encoder takes {chans} input channel(s); RGB images have 3")
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
    encoder, extra = read_encoder(args.encoder, device)
    pipeline = input_pipeline(encoder, extra, args.encoder, args.image_size)
    name, _, options = parse_spec(args.dataset)
    data = open_image_dataset(args.dataset)
    if len(data) == 0:
        raise ValueError(f"--dataset {args.dataset}: no images")
    return VisionSetup(encoder, extra, pipeline, data, name, options.get("split"))


def open_part(spec: str, split: str) -> Any:
    """The dataset ``spec`` names, with its reader's ``split`` option set to ``split``."""
    from aivision.data import READERS, parse_spec
    from core.dataspec import check_options

    name, path, options = parse_spec(spec)
    options = {**options, "split": split}
    check_options(name, READERS[name], options)
    data = READERS[name](path, **options)
    if len(data) == 0:
        raise ValueError(f"--dataset {spec}: no images in its {split!r} split")
    return data


def make_clips(s: VisionSetup, args: argparse.Namespace, data: Any, targets: Any = None) -> Any:
    """``ImageClips`` of ``data`` with the encoder's input pipeline (``targets``: regression)."""
    from aivision.clips import ImageClips

    p = s.input
    return ImageClips(data, p.image_size, p.mean, p.std, p.normalize, targets=targets, cache_mb=args.cache_mb)


def read_split_file(path: str, class_names: Sequence[str]) -> dict[str, list[str]]:
    """A class split ``{"train", "val", "test"}`` (or ``[train, val, test]``) of class names."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"--split-file {path}: no such file")
    try:
        obj = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"--split-file {path}: not JSON ({error})") from None
    if isinstance(obj, list) and len(obj) == 3:
        obj = dict(zip(("train", "val", "test"), obj))
    if not isinstance(obj, dict) or set(obj) != {"train", "val", "test"}:
        raise ValueError(f"--split-file {path}: expected {{\"train\": [...], \"val\": [...], \"test\": [...]}}")
    split = {k: [str(c) for c in v] for k, v in obj.items()}
    unknown = [c for part in split.values() for c in part if c not in set(class_names)]
    if unknown:
        raise ValueError(f"--split-file {path}: class {unknown[0]!r} is not a class of the dataset")
    return split


def seeded_class_split(class_names: Sequence[str], seed: int) -> dict[str, list[str]]:
    """Disjoint 70/10/20 class split drawn with ``torch.Generator().manual_seed(seed)``."""
    from aivision.data.splits import split_sizes

    order = torch.randperm(len(class_names), generator=torch.Generator().manual_seed(int(seed))).tolist()
    out, start = {}, 0
    for part, size in zip(("train", "val", "test"), split_sizes(len(class_names), (0.7, 0.1, 0.2))):
        out[part] = [class_names[i] for i in sorted(order[start:start + size])]
        start += size
    return out


def class_part(s: VisionSetup, args: argparse.Namespace, part: str) -> tuple[Any, str]:
    """Images of one part of the class split (``all`` = the opened dataset) and a note."""
    data = s.dataset
    if part == "all":
        return data, "all classes of the opened dataset"
    if args.split_file is not None:
        chosen, note = read_split_file(args.split_file, data.class_names)[part], f"class split from {args.split_file}"
    elif s.reader in CLASS_SPLIT_READERS:
        if s.spec_split not in (None, part):
            raise ValueError(f"--split {part}: the spec {args.dataset} already chooses split={s.spec_split}; "
                             f"drop one of them")
        return open_part(args.dataset, part), f"the reader's published {part} classes"
    else:
        if data.num_classes < 3:
            raise ValueError(f"--split {part}: {args.dataset} has {data.num_classes} classes, too few for a "
                             f"class split; use --split all")
        chosen = seeded_class_split(data.class_names, args.seed)[part]
        note = f"seeded 70/10/20 class split (seed {args.seed})"
    out = data.with_classes(chosen)
    if len(out) == 0:
        raise ValueError(f"--split {part}: no images of {args.dataset} in that part ({note})")
    return out, f"the {part} classes of a {note}"


@dataclass
class TaskData:
    """Train / validation / test images of a probe or fine-tuning run (``ImageClips`` views)."""
    task: str
    train: Any
    val: Any
    test: Any
    note: str
    target_names: list[str] | None


def _columns(args: argparse.Namespace, data: Any) -> tuple[str, list[int] | None, list[str] | None]:
    """The task (the dataset's unless ``--task`` agrees) and, for regression, the target columns."""
    task = args.task or data.task
    if task != data.task:
        kind = "landmark regression" if data.task == "regression" else "classification"
        raise ValueError(f"--task {task}: {args.dataset} is a {kind} dataset (regression sets: 300w, lsp, celeba)")
    if task == "classification":
        if args.target:
            raise ValueError("--target applies to regression datasets only")
        return task, None, None
    names = data.target_names or [f"t{k}" for k in range(data.targets.shape[1])]
    wanted = [t.strip() for t in (args.target or "").split(",") if t.strip()] or names
    unknown = [t for t in wanted if t not in names]
    if unknown:
        raise ValueError(f"--target {unknown[0]!r}: not a target of {args.dataset} (targets: "
                         f"{', '.join(names[:6])}{', ...' if len(names) > 6 else ''})")
    return task, [names.index(t) for t in wanted], wanted


def task_data(s: VisionSetup, args: argparse.Namespace, merge_val: bool = False) -> TaskData:
    """Split for ``probe`` (``merge_val=False``) or ``finetune`` (train + val together).

    ``--split auto`` takes the reader's published split (``PUBLISHED``) when the spec names no
    ``split=``, else ``clips``: a seeded image-level split of the opened dataset, stratified
    by class. A published split without validation images gets ``--val-fraction`` of the
    training images (per class, seeded) carved off for model selection.
    """
    from core.downstream.selection import carve_splits

    task, columns, names = _columns(args, s.dataset)
    table = PUBLISHED.get(s.reader)
    mode = args.split if args.split != "auto" else ("published" if table and s.spec_split is None else "clips")

    def clips(data: Any) -> Any:
        return make_clips(s, args, data, None if columns is None else torch.from_numpy(data.targets)[:, columns])

    def carve(source: Any, fraction: float) -> tuple[Any, Any]:
        if merge_val or fraction <= 0:
            return source, None
        stratify = task == "classification"
        train, val = carve_splits(source.labels, [fraction], args.seed, stratify)
        return source.subset(train), (source.subset(val) if val else None)

    if mode == "published":
        if table is None:
            raise ValueError(f"--split published: {s.reader} publishes no image-level train/test split; "
                             f"use --split clips")
        if s.spec_split is not None:
            raise ValueError(f"--split published: the spec {args.dataset} already chooses split={s.spec_split}; "
                             f"drop it, or use --split clips to split that part")
        test = clips(open_part(args.dataset, table["test"]))
        if table["val"] is not None:
            parts = (table["trainval"],) if merge_val else (table["train"], table["val"])
            train, val = clips(open_part(args.dataset, parts[0])), None
            if not merge_val:
                val = clips(open_part(args.dataset, parts[1]))
        else:
            parts = (table["train"],)
            train, val = carve(clips(open_part(args.dataset, table["train"])), args.val_fraction)
        if table["val"] is None and not merge_val:
            roles = f"train = split {parts[0]} less {args.val_fraction:g} of it for val (seed {args.seed})"
        else:
            roles = f"train = split {parts[0]}" + ("" if merge_val else f", val = split {parts[1]}")
        note = f"published split of {s.reader}: {roles}, test = split {table['test']}"
    else:
        whole = clips(s.dataset)
        labels = whole.labels if task == "classification" else torch.zeros(len(whole), 1)
        train_idx, val_idx, test_idx = cli_common.stratified_split(labels, args.val_fraction, args.test_fraction,
                                                                   args.seed)
        if not train_idx or not test_idx:
            raise ValueError(f"--dataset {args.dataset}: {len(whole)} images are too few for a train/test split")
        if merge_val:
            train_idx, val_idx = sorted(train_idx + val_idx), []
        train, test = whole.subset(train_idx), whole.subset(test_idx)
        val = whole.subset(val_idx) if val_idx else None
        how = "stratified by class" if task == "classification" else "random"
        note = f"image-level split {how} (seed {args.seed}) of the opened dataset"
    counts = f"train {len(train)}, val {len(val) if val is not None else 0}, test {len(test)} images"
    return TaskData(task, train, val, test, f"{note}: {counts}", names)
