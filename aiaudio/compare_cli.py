"""The ``aiaudio compare`` sub-command (see :mod:`aiaudio.compare`)."""
from __future__ import annotations

import argparse
import sys

from aiaudio.baselines import BASELINES
from aiaudio.data.synthetic import FACTORS
from core.engine.runs import RunStoppedEarly
from core.errors import EXIT_FAILED, EXIT_USER, UsageError, UserError


def _split_files(items: list[str]) -> dict[str, str]:
    """``NAME=PATH`` items -> {name: path}."""
    out = {}
    for item in items:
        name, eq, path = item.partition("=")
        if not eq or not name or not path:
            raise UsageError(f"--split-file {item!r}: expected NAME=PATH, e.g. esc50=/data/esc50_split.pkl")
        if name in out:
            raise UsageError(f"--split-file: {name!r} given twice")
        out[name] = path
    return out


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return name


def cmd_compare(args: argparse.Namespace) -> int:
    """Run :func:`aiaudio.compare.run_compare` with the parsed flags; errors -> one line, status 2
    (a pre-training run stopped early -> status 1, rerun to resume)."""
    from aiaudio.compare import run_compare
    from aiaudio.compare_tasks import CompareSettings

    # Overrides may follow a --models / --tasks list (argparse gives them to the list): names never hold "=".
    lists = {key: getattr(args, key) or [] for key in ("models", "tasks")}
    overrides = [item for values in lists.values() for item in values if "=" in item] + list(args.overrides)
    models = [m for m in lists["models"] if "=" not in m] if args.models is not None else None
    tasks = [] if args.no_synthetic else [t for t in lists["tasks"] if "=" not in t]
    try:
        settings = CompareSettings(clips=args.clips, max_ways=args.max_ways, shots=args.shots, queries=args.queries,
                                   episodes=args.episodes, train_episodes=args.train_episodes,
                                   inner_steps=args.inner_steps, descriptor_init=args.descriptor_init, seed=args.seed,
                                   dataset_shots=args.dataset_shots, dataset_seconds=args.dataset_seconds,
                                   probe_epochs=args.probe_epochs, evaluations=list(args.evaluations),
                                   device=_device(args.device))
        run_compare(args.out, models, args.config, overrides, args.dataset or [], _split_files(args.split_file or []),
                    settings, tasks=tasks, cache=args.cache, progress=not args.no_progress,
                    calibration=args.calibration)
    except UserError as error:
        print(f"aiaudio compare: error: {error}", file=sys.stderr)
        return EXIT_USER
    except RunStoppedEarly as error:  # SIGTERM or stop_at: rerunning resumes it
        print(f"aiaudio compare: {error}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def add_compare_command(sub: argparse._SubParsersAction) -> None:
    """Register ``compare`` on ``sub``."""
    p = sub.add_parser("compare", help="pre-train AI-SimCLR and the baselines with one budget, then compare them "
                       "few-shot and with a linear probe on the synthetic tasks (and real datasets)")
    p.add_argument("--out", default="runs/compare", help="output directory: <model>/ run dirs (finished runs are "
                   "reused, interrupted ones resumed), results.json, comparison.md, comparison.png")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME",
                   help=f"models to pre-train and compare (default all: {' '.join(BASELINES)})")
    p.add_argument("--config", default=None, help="base pre-training YAML shared by every model "
                   "(default aiaudio/configs/quickstart.yaml)")
    p.add_argument("--tasks", nargs="+", default=list(FACTORS), metavar="TASK",
                   help=f"synthetic tasks (default all: {' '.join(FACTORS)})")
    p.add_argument("--no-synthetic", action="store_true", help="skip the synthetic tasks (real datasets only)")
    p.add_argument("--dataset", action="append", metavar="SPEC", help="real dataset to evaluate on, "
                   "name:path?options (repeatable), e.g. esc50:/data/ESC-50 or nsynth:/data/nsynth?split=test; "
                   "TASK=name:path?options names its column TASK, e.g. pitch=folder:/data/pitch")
    p.add_argument("--split-file", action="append", metavar="NAME=PATH",
                   help="MetaAudio class split of dataset NAME (repeatable); default: seeded 70/10/20 split")
    p.add_argument("--cache", default=None, help="directory for decoded, resampled audio of the real datasets")
    p.add_argument("--calibration", action=argparse.BooleanOptionalAction, default=True,
                   help="add the calibration rows 'log-mel stats' (mean and std of every mel band, no training) "
                   "and 'untrained' (the base config's encoder with seeded random weights), on the first model's "
                   "front end (default: on)")
    p.add_argument("--episodes", type=int, default=100, help="few-shot test episodes per task and model")
    p.add_argument("--train-episodes", type=int, default=60,
                   help="training episodes AI-SimCLR's few-shot descriptor is learned on")
    p.add_argument("--inner-steps", type=int, default=20,
                   help="Adam steps of AI-SimCLR's few-shot descriptor, each over a share of the training episodes")
    p.add_argument("--evaluations", nargs="+", choices=["fewshot", "probe"], default=["fewshot", "probe"],
                   help="which evaluations to run (default both; the probe with a learned descriptor is the slow one)")
    p.add_argument("--descriptor-init", type=float, default=0.5,
                   help="start of every entry of AI-SimCLR's few-shot descriptor (0.5 undecided, 1 all-invariant)")
    p.add_argument("--max-ways", type=int, default=5, help="ways = min(this, classes of the task)")
    p.add_argument("--shots", type=int, default=5, help="shots on the synthetic tasks")
    p.add_argument("--dataset-shots", type=int, default=1, help="shots on real datasets (MetaAudio: 1)")
    p.add_argument("--queries", type=int, default=10, help="queries per class")
    p.add_argument("--clips", type=int, default=300, help="fresh synthetic clips per task, for test and for training")
    p.add_argument("--dataset-seconds", type=float, default=5.0, help="piece length on real datasets (MetaAudio: 5)")
    p.add_argument("--probe-epochs", type=int, default=30, help="epochs of each linear-probe fit")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device of the evaluation "
                   "(pre-training uses the engine's choice)")
    p.add_argument("--seed", type=int, default=0, help="seed of episodes and splits (pre-training: seed=N override)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or per-task lines")
    p.add_argument("overrides", nargs="*", metavar="a.b=value",
                   help="pre-training config overrides applied to every model, e.g. train.steps=300")
    p.set_defaults(func=cmd_compare)
