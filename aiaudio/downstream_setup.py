"""Shared plumbing of the audio downstream commands (``probe``, ``fewshot``, ``measure``,
``finetune``): common flags, reading the encoder and its input pipeline, opening and
splitting the dataset and building ``AudioClips``. The modality-free helpers (descriptor
lists, clip-level splits, JSON output, one-line errors) live in
``core.downstream.cli_common`` and are re-exported here."""
from __future__ import annotations

import argparse
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

from aiaudio.space import AUDIO_AUGMENTATIONS
from core.downstream import cli_common
from core.downstream.cli_common import (add_run_args, add_source_args, check_device, descriptor_table,
                                        floats_arg, parse_descriptors, stratified_split, warm_if_fits,
                                        write_json)

__all__ = ["BAND_STATS_NAMES", "SPLITS", "AudioSetup", "add_common_args", "add_task_args", "attach_frontend",
           "check_device", "choose_part", "cli_errors", "clip_split", "descriptor_table", "floats_arg", "make_clips",
           "parse_descriptors", "parse_vector", "read_encoder", "setup", "stratified_split", "warm_if_fits",
           "write_json"]

SPLITS = ("train", "val", "test", "all")
# ``--encoder`` names of the band-statistics calibration baseline (core's generic name last)
BAND_STATS_NAMES = ("logmel-stats", "band-stats")


def add_common_args(p: argparse.ArgumentParser) -> None:
    """Flags every downstream command takes (contract K)."""
    from core.encoders.calibration import encoder_help

    add_source_args(p, "esc50:/data/ESC-50", encoder_help(BAND_STATS_NAMES[0]))
    p.add_argument("--split-file", default=None, help="MetaAudio class split (pickled [train, val, test]); "
                   "default: seeded 70/10/20 class split")
    p.add_argument("--cache", default=None, help="directory for decoded, resampled audio")
    p.add_argument("--cache-mb", type=float, default=2048.0, help="in-memory cache of computed log-mels (MB)")
    p.add_argument("--seconds", type=float, default=5.0, help="piece length: clips are cut into pieces of this "
                   "many seconds, the last zero-padded (MetaAudio: 5)")
    p.add_argument("--sample-rate", type=int, default=16000,
                   help="decode rate when the encoder file stores no front end (else the stored one is used)")
    add_run_args(p)


def add_task_args(p: argparse.ArgumentParser) -> None:
    """Flags of the commands that train on a clip-level split (probe, finetune)."""
    p.add_argument("--task", default="classification", choices=["classification", "regression"])
    p.add_argument("--target", default=None, help="regression: numeric metadata field(s) of the clips, "
                   "comma-separated (e.g. pitch_value of the synthetic set)")
    p.add_argument("--split", default="all", choices=SPLITS,
                   help="classes to use (a part of the class split, or all); clips are then split at clip level")
    p.add_argument("--val-fraction", type=float, default=0.2, help="fraction of each class's clips for validation")
    p.add_argument("--test-fraction", type=float, default=0.2, help="fraction of each class's clips for test")


def clip_split(args: argparse.Namespace, s: "AudioSetup") -> tuple[Any, list[int], list[int], list[int], str]:
    """The chosen classes' dataset and its seeded clip-level train/val/test indices.

    Raises:
        ValueError: too few clips to split; TooFewClassesError: a classification training
            split of fewer than 2 classes (names the dataset and the class found).
    """
    data = choose_part(s, args.split, args.dataset)
    if args.task == "classification":
        labels = torch.from_numpy(data.labels)
    else:
        if not args.target:
            raise ValueError("--task regression needs --target FIELD[,FIELD] (numeric metadata of the clips)")
        labels = torch.zeros(len(data), 1)
    train, val, test = stratified_split(labels, args.val_fraction, args.test_fraction, args.seed)
    if not train or not test:
        raise ValueError(f"--dataset {args.dataset}: {len(data)} clips are too few for a train/test split")
    if args.task == "classification":
        from core.downstream.checks import check_classes

        check_classes(labels[train], data.class_names,
                      f"--dataset {args.dataset}: the training split of its {args.split} classes")
    how = "stratified by class" if args.task == "classification" else "random"
    classes = "all classes" if args.split == "all" else f"the {args.split} classes"
    note = (f"clip-level split {how} (seed {args.seed}) of {classes}: train {len(train)}, "
            f"val {len(val)}, test {len(test)} clips")
    return data, train, val, test, note


def cli_errors(command: str) -> AbstractContextManager[list[int]]:
    """Turn user-facing errors (also unreadable audio) into one line on stderr and exit
    status 2 (``status[0]``); warnings are printed as ``aiaudio <command>: warning: ...``."""
    from aiaudio.data.base import BadAudioError

    return cli_common.cli_errors("aiaudio", command, (BadAudioError,))


def _mel_bands(extra: dict[str, Any]) -> int:
    """Mel bands of the front end a command will use: the stored one's, else the default
    ``FrontendConfig``'s (what :func:`aiaudio.clips.encoder_frontend` then fits)."""
    from aiaudio.clips import frontend_from_extra
    from aiaudio.frontend import FrontendConfig

    stored = frontend_from_extra(extra, "the encoder file of frontend=PATH")
    return stored.config.n_mels if stored is not None else FrontendConfig().n_mels


def read_encoder(path: str, device: str) -> tuple[Any, dict[str, Any]]:
    """``(encoder in eval mode, extra)`` of an encoder file or checkpoint for the audio space,
    or of a calibration baseline: ``logmel-stats`` (mean and std of every mel band over time)
    or ``untrained:<arch>`` (seeded random weights), with options ``?seed=N``,
    ``frontend=PATH`` (the front end stored in that encoder file) and, for ``untrained``,
    architecture options (see :mod:`core.encoders.calibration`).

    Raises:
        EncoderFileMissing / EncoderFileError (user errors): missing file, a directory, a
            damaged or foreign file, an encoder trained on another space or for inputs with
            another channel count (names the file); an unknown calibration architecture or
            option (names the value).
    """
    from aiaudio.space import audio_space
    from core.encoders.serialise import EncoderFileError, check_input_channels, read_encoder_option

    encoder, extra = read_encoder_option(path, device, space=audio_space(), in_chans=1, band_rows=_mel_bands,
                                         band_names=BAND_STATS_NAMES)
    if tuple(encoder.space.names) != AUDIO_AUGMENTATIONS:
        raise EncoderFileError(f"{path}: the encoder was trained on the space {list(encoder.space.names)}, not the "
                               f"audio space {list(AUDIO_AUGMENTATIONS)}; give an audio encoder (aivision reads "
                               f"image encoders)")
    check_input_channels(encoder, path, 1, "audio log-mels")
    return encoder, extra


@dataclass
class AudioSetup:
    """What a command works on: the encoder, the dataset (whole and split by class) and,
    after :func:`attach_frontend`, the front end."""
    encoder: Any
    extra: dict[str, Any]
    dataset: Any                    # the whole AudioDataset
    parts: dict[str, Any]           # "all" plus, when split, the "train"/"val"/"test" class parts
    split_note: str
    frontend: Any = None


def setup(args: argparse.Namespace) -> AudioSetup:
    """Read ``--encoder``, open ``--dataset`` at its front end's rate (``--sample-rate`` when
    the file stores none) and split it by class (``--split-file`` or the seeded 70/10/20
    split; datasets with fewer than 3 classes are not split)."""
    from aiaudio.clips import frontend_from_extra
    from aiaudio.data import open_dataset, split_dataset

    device = check_device(args.device)
    encoder, extra = read_encoder(args.encoder, device)
    if getattr(args, "blocks", None) is not None:  # finetune trains the encoder's weights
        from core.encoders.calibration import check_weights_to_train

        check_weights_to_train(encoder, args.encoder, "finetune")
    stored = frontend_from_extra(extra, args.encoder)
    rate = stored.config.sample_rate if stored is not None else args.sample_rate
    data = open_dataset(args.dataset, sample_rate=rate, cache=args.cache)
    if len(data) == 0:
        raise ValueError(f"--dataset {args.dataset}: no clips")
    parts: dict[str, Any] = {"all": data}
    if args.split_file is not None or data.num_classes >= 3:
        parts.update(split_dataset(data, split_file=args.split_file, seed=args.seed))
        note = (f"class split from {args.split_file}" if args.split_file
                else f"seeded 70/10/20 class split (seed {args.seed})")
    else:
        note = "no class split (fewer than 3 classes)"
    return AudioSetup(encoder, extra, data, parts, note)


def attach_frontend(s: AudioSetup, args: argparse.Namespace, fit_data: Any) -> Any:
    """The encoder's stored front end, else one fitted on ``fit_data`` (warning naming the
    encoder file); stored in ``s.frontend`` on ``--device`` and returned."""
    from aiaudio.clips import encoder_frontend

    frontend = encoder_frontend(s.extra, args.encoder, fit_data, seconds=args.seconds,
                                progress=not args.no_progress)
    s.frontend = frontend.to(args.device)
    return s.frontend


def make_clips(s: AudioSetup, args: argparse.Namespace, data: Any, targets: Any = None) -> Any:
    """``AudioClips`` of ``data`` (regression when ``targets``: meta field names)."""
    from aiaudio.clips import AudioClips

    kwargs = {"cache_mb": args.cache_mb}
    if targets is not None:
        return AudioClips.regression(data, s.frontend, targets, seconds=args.seconds, **kwargs)
    return AudioClips(data, s.frontend, seconds=args.seconds, **kwargs)


def choose_part(s: AudioSetup, split: str, dataset: str) -> Any:
    """The class-split part ``split`` (``all`` = every class)."""
    if split not in s.parts:
        raise ValueError(f"--split {split}: {dataset} has no class split ({s.split_note}); use --split all")
    part = s.parts[split]
    if len(part) == 0:
        raise ValueError(f"--split {split}: no clips of {dataset} in that part ({s.split_note})")
    return part


def parse_vector(text: str, what: str) -> list[float] | None:
    """``ones`` -> None (all ones), else ``v1,...,v7`` as floats (names ``what`` on errors)."""
    return cli_common.parse_vector(text, what, AUDIO_AUGMENTATIONS)
