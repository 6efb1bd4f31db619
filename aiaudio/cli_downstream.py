"""``aiaudio probe | fewshot | measure | finetune``: use a pre-trained encoder on a dataset.

Every command takes ``--encoder`` (encoder file or training checkpoint; the log-mel front
end comes from the file's ``extra["frontend"]``, else it is fitted on the training data
with a warning), ``--dataset name:path?options``, ``--json OUT`` (the printed numbers) and
the other flags of :func:`aiaudio.downstream_setup.add_common_args`. Clips are cut into
``--seconds`` pieces; classifiers vote over a clip's pieces.

Class splits: ``fewshot`` and ``measure`` use classes of one part of the class split
(``--split-file`` or the seeded 70/10/20 split; ``--split all`` = every class). ``probe``
and ``finetune`` need the same classes in training and test, so they split the clips of
the chosen classes (default all) at clip level, stratified by class, with ``--seed``.
"""
from __future__ import annotations

import argparse
import warnings
from typing import Any

from aiaudio.downstream_setup import (SPLITS, add_common_args, add_task_args, attach_frontend, choose_part,
                                      cli_errors, clip_split, make_clips,
                                      parse_descriptors, parse_vector, setup, warm_if_fits)
from aiaudio.space import AUDIO_AUGMENTATIONS
from core.downstream.cli_options import (add_fewshot_options, add_finetune_options, add_measure_options,
                                         add_probe_options)
from core.downstream.cli_reports import (fewshot_config, finetune_config, measured_inputs, probe_config,
                                         report_fewshot, report_finetune, report_probe, run_measure)

# Heavy imports (core.downstream, core.analysis, matplotlib) happen inside the commands.


def _progress(args: argparse.Namespace) -> bool:
    return not args.no_progress


def cmd_fewshot(args: argparse.Namespace) -> int:
    """N-way K-shot episodes on the classes of ``--split``."""
    with cli_errors("fewshot") as status:
        from core.downstream.fewshot import parse_descriptor, run_fewshot

        fewshot_config(args)  # check the flags before reading anything
        s = setup(args)
        config = fewshot_config(args, s.encoder)
        parse_descriptor(config.descriptor, s.encoder.space)  # fail before any audio is decoded
        test_data = choose_part(s, args.split, args.dataset)
        if test_data.num_classes < config.ways:
            raise ValueError(f"--split {args.split}: {test_data.num_classes} classes of {args.dataset} "
                             f"({s.split_note}), fewer than --ways {config.ways}")
        train_data = s.parts["train"] if args.split != "all" else test_data
        attach_frontend(s, args, train_data)
        test = make_clips(s, args, test_data)
        train = None
        if config.mode in ("dataset", "corners"):
            if args.split == "all":
                warnings.warn(f"--descriptor {config.descriptor} with --split all: the descriptor is chosen on "
                              "episodes of the same classes it is tested on", UserWarning)
            train = make_clips(s, args, train_data) if train_data is not test_data else test
        warm_if_fits(test, _progress(args), "log-mels")
        result = run_fewshot(s.encoder, test, config, train=train, device=args.device, progress=_progress(args))
        data = {"split": args.split, "split_source": s.split_note, "classes": test_data.num_classes,
                "clips": len(test_data)}
        report_fewshot(args, config, result, data, f"few-shot on {args.dataset}: split {args.split} "
                       f"({s.split_note}), {data['classes']} classes, {data['clips']} clips, {args.seconds:g} s pieces")
    return status[0]


def _task_clips(args: argparse.Namespace, s: Any, data: Any) -> Any:
    targets = [t for t in args.target.split(",") if t] if args.task == "regression" else None
    return make_clips(s, args, data, targets)


def cmd_probe(args: argparse.Namespace) -> int:
    """Linear probe (with a learned, fixed, best-corner or quantised descriptor) on frozen features."""
    with cli_errors("probe") as status:
        from core.downstream.probe import fit_probe

        fixed = parse_vector(args.fixed, "--fixed") if args.fixed is not None else None
        config = probe_config(args, args.task, fixed)
        s = setup(args)
        data, train_idx, val_idx, test_idx, note = clip_split(args, s)
        attach_frontend(s, args, data.subset(train_idx))
        clips = _task_clips(args, s, data)
        warm_if_fits(clips, _progress(args), "log-mels")
        train, test = clips.subset(train_idx), clips.subset(test_idx)
        val = clips.subset(val_idx) if val_idx else None
        _, result = fit_probe(s.encoder, train, config, val=val, device=args.device, progress=_progress(args),
                              test=test)
        fields = {"split": args.split, "split_source": note, "task": args.task, "train_clips": len(train_idx),
                  "val_clips": len(val_idx), "test_clips": len(test_idx)}
        if args.task == "regression":
            fields["targets"] = args.target.split(",")
        report_probe(args, result, fields, f"probe on {args.dataset}: {note}")
    return status[0]


def cmd_finetune(args: argparse.Namespace) -> int:
    """Fine-tune all or the last blocks of the encoder with a linear head (baseline)."""
    with cli_errors("finetune") as status:
        from core.downstream.finetune import finetune

        config = finetune_config(args, args.task, parse_vector(args.descriptor, "--descriptor"))
        s = setup(args)
        data, train_idx, val_idx, test_idx, note = clip_split(args, s)
        train_idx = sorted(train_idx + val_idx)  # no model selection here: train on train+val
        attach_frontend(s, args, data.subset(train_idx))
        clips = _task_clips(args, s, data)
        warm_if_fits(clips, _progress(args), "log-mels")
        result = finetune(s.encoder, clips.subset(train_idx), config, test=clips.subset(test_idx),
                          device=args.device, progress=_progress(args))
        fields = {"split": args.split, "split_source": note + " (train and val used for training)",
                  "task": args.task, "train_clips": len(train_idx), "test_clips": len(test_idx)}
        report_finetune(args, result, fields, f"fine-tuning on {args.dataset}: {note}; training on train+val")
    return status[0]


def cmd_measure(args: argparse.Namespace) -> int:
    """Invariance of the encoder to each augmentation, per descriptor, over a strength grid."""
    with cli_errors("measure") as status:
        import torch

        from aiaudio.augment.config import AugmentConfig
        from aiaudio.clips import clip_name
        from aiaudio.data.crops import Pieces
        from aiaudio.measure import (STRENGTH_UNITS, default_strengths, frontend_prepare, invariance_transforms,
                                     parse_strengths)

        names = [n.strip() for n in args.transforms.split(",") if n.strip()]
        strengths = parse_strengths(args.strength, default_strengths(names))
        augment = AugmentConfig.from_yaml(args.augment_config) if args.augment_config else AugmentConfig()
        transforms = invariance_transforms(names, augment, args.fade_shape)
        s = setup(args)
        descriptors = parse_descriptors(args.descriptors, s.encoder.space)
        data = choose_part(s, args.split, args.dataset)
        attach_frontend(s, args, s.parts["train"] if args.split != "all" else data)
        chosen = measured_inputs(len(data), args.clips, args.seed, "clips", args.dataset)
        cutter = Pieces(data, seconds=args.seconds)
        clean = torch.stack([cutter.cut(torch.from_numpy(data.load(i)))[0] for i in chosen])
        classes = "all classes" if args.split == "all" else f"the {args.split} classes"
        run_measure(args, s.encoder, clean, frontend_prepare(s.frontend, args.batch_size), transforms, strengths,
                    descriptors, STRENGTH_UNITS, {"split": args.split, "clips": len(chosen)},
                    f"invariance on {args.dataset}: {len(chosen)} clips of {classes} ({s.split_note}), "
                    f"first {args.seconds:g} s piece of each; mean over each strength grid",
                    names=[clip_name(data, i) for i in chosen])
    return status[0]


def add_downstream_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``probe``, ``fewshot``, ``measure`` and ``finetune`` on ``sub``."""
    p = sub.add_parser("fewshot", help="N-way K-shot episodes with a ridge/logistic/prototype readout")
    add_common_args(p)
    p.add_argument("--split", default="test", choices=SPLITS,
                   help="classes the episodes come from (all: every class, e.g. for the synthetic set)")
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
    p.add_argument("--split", default="test", choices=SPLITS)
    add_measure_options(p, "ones,learned:0.76,0.24,0.39,0.48,0.40,0.45,0.24", "noise=20,10,3")
    p.add_argument("--transforms", default=",".join(AUDIO_AUGMENTATIONS), help="augmentations to measure")
    p.add_argument("--augment-config", default=None, help="augmentation YAML (STFT sizes, fade shapes, ...)")
    p.add_argument("--fade-shape", default=None, choices=["linear", "logarithmic", "exponential"],
                   help="fixed fade shape (default: drawn per clip, as in pre-training)")
    p.set_defaults(func=cmd_measure)
