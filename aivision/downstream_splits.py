"""Which images a vision downstream command works on: class splits (few-shot, measure) and
train / val / test image splits (probe, fine-tuning), from a reader's published split, a
split file or a seeded split. The rules are stated in ``aivision.cli_downstream``.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from aivision.downstream_setup import VisionSetup, make_clips, open_part
from core.downstream import cli_common

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
