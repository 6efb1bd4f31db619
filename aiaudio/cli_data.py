"""``aiaudio`` sub-commands for data: ``dataset`` (inspect a spec), ``synth`` (write the
synthetic set in ESC-50 layout) and ``augment`` (listen to and look at the augmentations).

Errors follow ``core.errors``: a wrong spec or layout (``DatasetError``), a bad audio file
(``BadAudioError``) or an existing output without ``--overwrite`` (``OutputExistsError``) is one
line naming it, exit status 2. ``dataset --scan`` reports unreadable files and, as warnings,
WAV files cut short, and still exits 0.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from aiaudio.space import AUDIO_AUGMENTATIONS

# Heavy imports (numpy, torch, the readers) happen inside the commands so that
# ``aiaudio --help`` stays fast.


def cmd_dataset(args: argparse.Namespace) -> int:
    """Print what a dataset spec resolves to: clips, classes, class split, bad files."""
    import numpy as np

    from aiaudio.data import open_dataset, scan, split_dataset
    data = open_dataset(args.spec, sample_rate=args.sample_rate, cache=args.cache)
    counts = Counter(data.labels.tolist())
    report: dict = {"spec": args.spec, "name": data.name, "clips": len(data), "classes": data.num_classes,
                    "sample_rate": data.sample_rate}
    print(f"{data.name}: {len(data)} clips, {data.num_classes} classes, resampled to {data.sample_rate} Hz")
    if not data.num_classes:
        print("unlabelled (pre-training data: no classes)")
    elif counts:
        common = ", ".join(f"{data.class_names[c]} ({n})" for c, n in counts.most_common(5) if c >= 0)
        print(f"largest classes: {common}")
        report["clips_per_class"] = {"min": min(counts.values()), "max": max(counts.values())}
    if data.num_classes >= 3:
        splits = split_dataset(data, split_file=args.split_file, seed=args.split_seed)
        source = args.split_file or f"seeded 70/10/20 class split (seed {args.split_seed})"
        print(f"class split ({source}): " + ", ".join(
            f"{k} {s.num_classes} classes / {len(s)} clips" for k, s in splits.items()))
        report["split"] = {k: {"classes": s.num_classes, "clips": len(s)} for k, s in splits.items()}
    if args.scan:
        lengths: dict[int, int] = {}
        warned: list[tuple[int, str, str]] = []
        bad = scan(data, progress=True, lengths=lengths, warned=warned)
        seconds = [n / data.sample_rate for n in lengths.values()]
        if seconds:
            print(f"durations: min {min(seconds):.2f} s, median {np.median(seconds):.2f} s, max {max(seconds):.2f} s")
            report["seconds"] = {"min": min(seconds), "median": float(np.median(seconds)), "max": max(seconds)}
        for title, rows in (("bad files", bad), ("files with warnings", warned)):
            print(f"{title}: {len(rows)}")
            for index, path, reason in rows[:20]:
                print(f"  {path}: {reason}")
            if len(rows) > 20:
                print(f"  ... and {len(rows) - 20} more" + (" (all in --json)" if args.json else ""))
        report["bad_files"] = [{"index": i, "path": p, "reason": r} for i, p, r in bad]
        report["warned_files"] = [{"index": i, "path": p, "reason": r} for i, p, r in warned]
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    """Write the built-in synthetic set in ESC-50 layout (an existing one only with --overwrite)."""
    from aiaudio.data.synthetic import FACTORS, SyntheticConfig, write_esc50_layout
    from core.errors import OutputExistsError

    config = SyntheticConfig(n_clips=args.n_clips, seconds=args.seconds, sample_rate=args.sample_rate,
                             seed=args.seed, label=args.label)
    csv_path = Path(args.out).expanduser() / "meta" / "esc50.csv"
    if csv_path.exists() and not args.overwrite:
        raise OutputExistsError(f"{csv_path} already exists (a synthetic set was written to {args.out}); "
                                "pass --overwrite to replace it, or choose another output folder")
    write_esc50_layout(args.out, config, overwrite=args.overwrite)
    print(f"wrote {args.n_clips} clips to {args.out} ({csv_path}); factor columns: {', '.join(FACTORS)}")
    print(f"read it with --dataset esc50:{args.out}?label_column=<factor>")
    return 0


def cmd_augment(args: argparse.Namespace) -> int:
    """Apply each augmentation alone (p = 1) and all together to a few clips; write PNG + wavs."""
    import torch

    from aiaudio.data import open_dataset, write_audio
    from aiaudio.augment import AudioPolicy, AugmentConfig
    from aiaudio.augment.figure import augmentation_grid
    from aiaudio.frontend import FrontendConfig, LogMel
    from core.invariance import InvarianceSpace

    from core.errors import OutputExistsError

    figure_path = Path(args.out) / "augmentations.png"
    if figure_path.exists() and not args.overwrite:
        raise OutputExistsError(f"{figure_path} already exists (augment wrote to {args.out} before); "
                                "pass --overwrite to replace its figure and wav files, or choose another --out")
    config = AugmentConfig.from_yaml(args.config) if args.config else AugmentConfig()
    if args.backend:
        config.backend = args.backend
    for name in AUDIO_AUGMENTATIONS:
        config.of(name).p = 1.0
    data = open_dataset(args.dataset, sample_rate=args.sample_rate)
    n = min(args.clips, len(data))
    length = int(args.seconds * args.sample_rate)
    clips = torch.zeros(n, length)
    for i in range(n):
        wave = torch.from_numpy(data.load(i))[:length]
        clips[i, : wave.numel()] = wave
    space = InvarianceSpace(AUDIO_AUGMENTATIONS, min_active=1)
    policy = AudioPolicy(space, config, sample_rate=args.sample_rate)
    columns = {"clean": clips}
    descriptors = {name: space.from_active([name]) for name in AUDIO_AUGMENTATIONS}
    descriptors["all seven"] = space.ones()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(args.seed)
    for label, d in descriptors.items():
        view, params = policy.augment(clips, d, generator, return_params=True)
        columns[label] = view
        for i in range(n):
            write_audio(out / f"clip{i}_{label.replace(' ', '_')}.wav", view[i].numpy(), args.sample_rate,
                        subtype="FLOAT")
        if label in AUDIO_AUGMENTATIONS:
            values = {k: [round(float(v), 3) for v in t] for k, t in params[label].items() if k != "applied"}
            print(f"{label:<13} {values}")
    for i in range(n):
        write_audio(out / f"clip{i}_clean.wav", clips[i].numpy(), args.sample_rate, subtype="FLOAT")
    logmel = LogMel(FrontendConfig(sample_rate=args.sample_rate, n_fft=512, hop_length=128, n_mels=64))
    figure = augmentation_grid({k: logmel(v)[:, 0] for k, v in columns.items()}, out / "augmentations.png")
    print(f"wrote {figure} and {n * len(columns)} wav files to {out} (backend {config.backend})")
    return 0


def add_data_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``dataset``, ``synth`` and ``augment``."""
    p = sub.add_parser("dataset", help="inspect a dataset spec (name:path?options): clips, classes, split, bad files")
    p.add_argument("spec", help="e.g. esc50:/data/ESC-50, nsynth:/data/nsynth?split=test, synthetic?n_clips=200")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--split-file", default=None, help="MetaAudio class split (pickled [train, val, test])")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--scan", action="store_true", help="decode every clip: durations and unreadable files")
    p.add_argument("--cache", default=None, help="directory for decoded, resampled arrays")
    p.add_argument("--json", default=None, help="write the printed numbers to this file")
    p.set_defaults(func=cmd_dataset)

    p = sub.add_parser("synth", help="write the built-in synthetic set in ESC-50 layout")
    p.add_argument("out")
    p.add_argument("--n-clips", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", default="family", help="factor used as ESC-50's category/target")
    p.add_argument("--overwrite", action="store_true", help="replace a synthetic set already written to OUT")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("augment", help="apply each augmentation to a few clips: PNG of log-mels + wav files")
    p.add_argument("--dataset", default="synthetic?n_clips=8", help="dataset spec (default: built-in synthetic)")
    p.add_argument("--config", default=None, help="augmentation YAML (default: aiaudio/configs/augment.yaml values)")
    p.add_argument("--backend", choices=["batched", "audiomentations"], default=None)
    p.add_argument("--clips", type=int, default=3)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/augment")
    p.add_argument("--overwrite", action="store_true", help="replace the figure and wav files of an earlier run")
    p.set_defaults(func=cmd_augment)
