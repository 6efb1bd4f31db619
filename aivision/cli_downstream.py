"""``aivision probe | fewshot | measure | finetune``: use a pre-trained encoder on images.

The options are the audio commands' (``aiaudio.cli_downstream``) wherever they apply: the
shared flags of ``core.downstream.cli_common`` (``--encoder --dataset --seed --device --json
--no-progress``), ``--split-file``, ``--cache-mb`` and every command's own flags. The audio
front end's flags (``--seconds``, ``--sample-rate``, ``--cache``) give way to
``--image-size``. The input pipeline (image side, mean, std) comes from the encoder file's
``extra``; files without one use ``--image-size`` (default 224, or a ViT's own size) and the
ImageNet mean/std, with a warning. Every image is one piece: short side resized to the
image size, centre-cropped (regression sets: the whole image resized, so the normalised
landmarks stay exact); see ``aivision.clips``.

Which images each command uses:

* ``probe`` / ``finetune`` (``--split``): ``auto`` (default) takes the reader's published
  image-level split (CIFAR train/test, CUB train/test, Flowers/DTD/300W/CelebA
  train/val/test, Pets trainval/test, ImageNet-100 train/val, Caltech101 and LSP seeded by
  the reader's own ``seed=``) when the spec names no ``split=``; otherwise, and for sets
  without one (folder, plant_disease, synthetic, fc100), a seeded image-level split of the
  images the spec opens, stratified by class (``--val-fraction``, ``--test-fraction``),
  as the audio commands do. ``published`` and ``clips`` force either rule. Without a
  published validation split, ``--val-fraction`` of the training images is carved off
  for model selection; the test images are never used for a choice. ``finetune`` trains
  on train + validation.
* ``fewshot`` / ``measure`` (``--split``, default ``all``): every class of the images the
  spec opens, which is how the paper samples episodes (FC100 meta-test: the reader's
  default ``split=test``; CUB: ``cub200:...?split=all``; Plant Disease: the whole set).
  ``train``/``val``/``test`` choose a part of a class split: ``--split-file``, else the
  reader's own class split (FC100), else a seeded 70/10/20 split. The ``dataset`` and
  ``corners`` descriptor modes learn on the ``train`` classes.

Regression (300W, LSP, CelebA) follows the dataset's task: probe and finetune report R²
over the whole test set.
"""
from __future__ import annotations

import argparse
import warnings
from typing import Any

from aivision.downstream_setup import (CLASS_PARTS, add_common_args, add_task_args, cli_errors, make_clips,
                                       parse_vector, setup)
from aivision.downstream_splits import class_part, task_data
from core.downstream.cli_common import parse_descriptors, warm_if_fits
from core.downstream.cli_options import (add_fewshot_options, add_finetune_options, add_measure_options,
                                         add_probe_options)
from core.downstream.cli_reports import (fewshot_config, finetune_config, measured_inputs, probe_config,
                                         report_fewshot, report_finetune, report_probe, run_measure)

# Heavy imports (core.downstream, core.analysis, matplotlib) happen inside the commands.


def _progress(args: argparse.Namespace) -> bool:
    return not args.no_progress


def _warm(*sources: Any, progress: bool) -> None:
    """Prepare the images behind ``sources`` (subsets warm their parent) when they fit the cache."""
    seen: list[int] = []
    for source in sources:
        clips = getattr(source, "parent", source)
        if source is not None and id(clips) not in seen:
            seen.append(id(clips))
            warm_if_fits(clips, progress, "images")


def _pipeline(s: Any) -> dict[str, Any]:
    p = s.input
    return {"image_size": p.image_size, "normalize": p.normalize, "mean": p.mean, "std": p.std,
            "input_source": p.source}


def cmd_fewshot(args: argparse.Namespace) -> int:
    """N-way K-shot episodes on the classes of ``--split``."""
    with cli_errors("fewshot") as status:
        from core.downstream.fewshot import parse_descriptor, run_fewshot

        fewshot_config(args)  # check the flags before reading anything
        s = setup(args)
        config = fewshot_config(args, s.encoder)
        parse_descriptor(config.descriptor, s.encoder.space)  # fail before any image is decoded
        if s.dataset.task != "classification":
            raise ValueError(f"--dataset {args.dataset}: few-shot episodes need a classification dataset")
        test_data, note = class_part(s, args, args.split)
        if test_data.num_classes < config.ways:
            raise ValueError(f"--split {args.split}: {test_data.num_classes} classes of {args.dataset} "
                             f"({note}), fewer than --ways {config.ways}")
        test = make_clips(s, args, test_data)
        train = None
        if config.mode in ("dataset", "corners"):
            if args.split == "all":
                warnings.warn(f"--descriptor {config.descriptor} with --split all: the descriptor is chosen on "
                              "episodes of the same classes it is tested on", UserWarning)
                train = test
            else:
                train = make_clips(s, args, class_part(s, args, "train")[0])
        _warm(test, progress=_progress(args))
        result = run_fewshot(s.encoder, test, config, train=train, device=args.device, progress=_progress(args))
        data = {"split": args.split, "split_source": note, "classes": test_data.num_classes,
                "clips": len(test_data), **_pipeline(s)}
        report_fewshot(args, config, result, data, f"few-shot on {args.dataset}: split {args.split} ({note}), "
                       f"{data['classes']} classes, {data['clips']} images at {s.input.image_size} px")
    return status[0]


def _task_fields(args: argparse.Namespace, s: Any, data: Any) -> dict[str, Any]:
    fields = {"split": args.split, "split_source": data.note, "task": data.task, "train_clips": len(data.train),
              "val_clips": len(data.val) if data.val is not None else 0, "test_clips": len(data.test)}
    if data.target_names is not None:
        fields["targets"] = data.target_names
    return {**fields, **_pipeline(s)}


def _check_training_classes(args: argparse.Namespace, data: Any) -> None:
    """A classifier needs at least 2 classes among the training images (names the dataset and class)."""
    from core.downstream.checks import check_classes

    if data.task == "classification":
        check_classes(data.train.labels, data.train.class_names,
                      f"--dataset {args.dataset}: the training images ({data.note})")


def cmd_probe(args: argparse.Namespace) -> int:
    """Linear probe (with a learned, fixed, best-corner or quantised descriptor) on frozen features."""
    with cli_errors("probe") as status:
        from core.downstream.probe import fit_probe

        s = setup(args)
        fixed = parse_vector(args.fixed, "--fixed", s.encoder.space) if args.fixed is not None else None
        data = task_data(s, args)
        _check_training_classes(args, data)
        config = probe_config(args, data.task, fixed)
        _warm(data.train, data.val, data.test, progress=_progress(args))
        _, result = fit_probe(s.encoder, data.train, config, val=data.val, device=args.device,
                              progress=_progress(args), test=data.test)
        report_probe(args, result, _task_fields(args, s, data),
                     f"probe on {args.dataset}: {data.note}; {s.input.image_size} px images")
    return status[0]


def cmd_finetune(args: argparse.Namespace) -> int:
    """Fine-tune all or the last blocks of the encoder with a linear head (baseline)."""
    with cli_errors("finetune") as status:
        from core.downstream.finetune import finetune

        s = setup(args)
        descriptor = parse_vector(args.descriptor, "--descriptor", s.encoder.space)
        data = task_data(s, args, merge_val=True)  # no model selection here: train on train+val
        _check_training_classes(args, data)
        config = finetune_config(args, data.task, descriptor)
        _warm(data.train, data.test, progress=_progress(args))
        result = finetune(s.encoder, data.train, config, test=data.test, device=args.device,
                          progress=_progress(args))
        fields = _task_fields(args, s, data)
        fields["split_source"] += " (train and val used for training)"
        report_finetune(args, result, fields, f"fine-tuning on {args.dataset}: {data.note}; training on train+val")
    return status[0]


def cmd_measure(args: argparse.Namespace) -> int:
    """Invariance of the encoder to each augmentation, per descriptor, over a strength grid."""
    with cli_errors("measure") as status:
        from aivision.augment.config import VisionAugmentConfig
        from aivision.measure import (STRENGTH_UNITS, default_strengths, image_prepare, invariance_transforms,
                                      parse_strengths)

        names = [n.strip() for n in args.transforms.split(",") if n.strip()]
        strengths = parse_strengths(args.strength, default_strengths(names))
        augment = VisionAugmentConfig.from_yaml(args.augment_config) if args.augment_config else VisionAugmentConfig()
        transforms = invariance_transforms(names, augment)
        s = setup(args)
        descriptors = parse_descriptors(args.descriptors, s.encoder.space)
        data, note = class_part(s, args, args.split)
        chosen = measured_inputs(len(data), args.clips, args.seed, "images", args.dataset)
        measured = make_clips(s, args, data)
        clean = measured.images(chosen).float().div_(255.0)
        p = s.input
        run_measure(args, s.encoder, clean, image_prepare(p.mean, p.std, p.normalize), transforms, strengths,
                    descriptors, STRENGTH_UNITS, {"split": args.split, "split_source": note, "clips": len(chosen),
                                                  **_pipeline(s)},
                    f"invariance on {args.dataset}: {len(chosen)} images of {note}, {p.image_size} px; "
                    f"mean over each strength grid", names=[measured.describe(i) for i in chosen])
    return status[0]


def add_downstream_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``probe``, ``fewshot``, ``measure`` and ``finetune`` on ``sub``."""
    from aivision.measure import DEFAULT_TRANSFORMS, MEASURE_TRANSFORMS

    p = sub.add_parser("fewshot", help="N-way K-shot episodes with a ridge/logistic/prototype readout")
    add_common_args(p)
    p.add_argument("--split", default="all", choices=CLASS_PARTS,
                   help="classes the episodes come from: all classes the spec opens, or a part of a class split")
    add_fewshot_options(p)
    p.set_defaults(func=cmd_fewshot)

    p = sub.add_parser("probe", help="linear probe with a learned descriptor on frozen features")
    add_common_args(p)
    add_task_args(p)
    add_probe_options(p)
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("finetune", help="fine-tuning baseline (all or the last k blocks) with its cost")
    add_common_args(p)
    add_task_args(p)
    add_finetune_options(p)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("measure", help="invariance (cosine, Mahalanobis) to each augmentation per descriptor")
    add_common_args(p)
    p.add_argument("--split", default="all", choices=CLASS_PARTS,
                   help="images of all classes the spec opens, or of a part of a class split")
    add_measure_options(p, "ones,spatial:1,0 active:appearance", "blur=0.5,2")
    p.add_argument("--transforms", default=",".join(DEFAULT_TRANSFORMS),
                   help=f"transforms to measure, from {', '.join(MEASURE_TRANSFORMS)}")
    p.add_argument("--augment-config", default=None, help="vision augmentation YAML (jitter ranges, blur kernel)")
    p.set_defaults(func=cmd_measure)
