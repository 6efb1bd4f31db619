"""``pretrain`` and ``export`` sub-commands, shared by the modality CLIs (``aiaudio``, ``aivision``).

Failures are raised as named errors and reported by :func:`core.cli.run_cli` in one line
(the traceback with ``--debug``): the user's mistakes (bad config, no checkpoint to resume,
a checkpoint that is corrupt or does not fit, a garbage file to export) exit with status 2;
named run failures (non-finite loss, diverged weights, a run directory in use, a full disk)
with status 1.
"""
from __future__ import annotations

import argparse
import signal
import sys
from typing import Callable, Mapping, Sequence

from core.config import ConfigError
from core.encoders.serialise import read_encoder_file, save_encoder
from core.engine.checkpoint import CheckpointError
from core.engine.config import CrossKeyError, PretrainConfig, blame, check_across, load_config
from core.engine.loop import pretrain
from core.errors import UserError
from core.modality import Modality

EXIT_SIGTERM = 128 + signal.SIGTERM  # 143, the shell's status for a TERM-ed process


def run_pretrain(args: argparse.Namespace, make_modality: Callable[[PretrainConfig], Modality],
                 models: Mapping[str, Sequence[str]] | None = None) -> int:
    """Load the config, build the modality and pre-train; returns the exit status (0, or 143
    after SIGTERM).

    ``--model NAME`` puts ``models[NAME]``'s overrides before the command line's own. Failures
    are raised for :func:`core.cli.run_cli` to report (one line, or the traceback with
    ``--debug``); config errors found after loading are re-raised naming the file (and the
    ``data.`` overrides, or the override that set a clashing key).

    Raises:
        ConfigError, UserError: the user's to fix (exit status 2).
        RunError: non-finite loss, divergence, run directory in use, full disk (exit status 1).
    """
    overrides = list(args.overrides)
    if getattr(args, "model", None) is not None:
        overrides = [*(models or {})[args.model], *overrides]
    source = args.config or "default config"
    config = load_config(args.config, overrides)
    try:
        check_across(config)
    except CrossKeyError as err:
        raise blame(err, args.config, overrides) from err
    try:
        modality = make_modality(config)
    except ConfigError as err:
        data_overrides = [o for o in overrides if o.strip().startswith("data.")]
        where = f" (with command line overrides {' '.join(data_overrides)})" if data_overrides else ""
        raise ConfigError(f"{source}{where}: {err}") from err
    try:
        result = pretrain(config, modality, resume=args.resume, progress=not args.no_progress)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from err
    if result.stopped == "sigterm":
        print(f"stopped by SIGTERM after step {result.steps}; checkpoint {result.checkpoint}; "
              f"continue with --resume", file=sys.stderr)
        return EXIT_SIGTERM
    if result.stopped == "stop_at":
        print(f"stopped at step {result.steps} (train.stop_at); checkpoint {result.checkpoint}; "
              f"continue with --resume")
        return 0
    print(f"pre-trained {result.steps} steps in {result.run_dir}; encoder: {result.encoder_path}")
    if result.skipped_files:
        print(f"skipped {result.skipped_files} bad file(s) (data.skip_bad; per row in metrics.csv, column "
              f"skipped_files): check the data with the dataset command's --scan", file=sys.stderr)
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Write the encoder of a checkpoint (or encoder file) as an encoder file with its extras.

    Raises:
        UserError: a missing, corrupt, truncated or foreign ``--checkpoint`` (names the file;
            exit status 2 through :func:`core.cli.run_cli`); nothing is written.
    """
    try:
        encoder, extra = read_encoder_file(args.checkpoint)
    except UserError:
        raise
    except (FileNotFoundError, ValueError) as err:
        text = str(err) if str(args.checkpoint) in str(err) else f"{args.checkpoint}: {err}"
        raise CheckpointError(f"cannot export: {text}") from err
    path = save_encoder(encoder, args.out, extra=extra)
    params = sum(p.numel() for p in encoder.parameters())
    print(f"wrote {path}: {encoder.name} ({params / 1e6:.2f}M parameters), space {list(encoder.space.names)}, "
          f"extra keys {sorted(extra)}")
    return 0


def add_pretrain_commands(sub: argparse._SubParsersAction,
                          make_modality: Callable[[PretrainConfig], Modality],
                          models: Mapping[str, Sequence[str]] | None = None) -> None:
    """Add ``pretrain --config FILE [--model NAME] [--resume] [--no-progress] [a.b=v ...]`` and
    ``export --checkpoint C --out encoder.pt``.

    Args:
        sub: the CLI's sub-parsers.
        make_modality: builds the modality from the validated config (validates ``data:``).
        models: named models (the modality's baselines): name -> config overrides.
    """
    p = sub.add_parser("pretrain", help="contrastive pre-training from a YAML config (torchrun for several GPUs)")
    p.add_argument("--config", default=None, metavar="FILE", help="YAML config (default: built-in defaults)")
    if models:
        p.add_argument("--model", default=None, choices=list(models),
                       help="a named model: its overrides come before the command line's (same budget)")
    p.add_argument("--resume", action="store_true",
                   help="continue from run_dir/checkpoints/last.pt (else the newest good step_*.pt)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides such as train.steps=100 (values parsed as YAML)")
    p.set_defaults(func=lambda args: run_pretrain(args, make_modality, models))
    e = sub.add_parser("export", help="write the encoder of a training checkpoint as an encoder file")
    e.add_argument("--checkpoint", required=True, help="checkpoint (e.g. run/checkpoints/last.pt)")
    e.add_argument("--out", required=True, help="encoder file to write (e.g. encoder.pt)")
    e.set_defaults(func=run_export)
