"""The ``aiaudio`` command: audio entry points of the toolkit.

Sub-commands: ``quickstart`` (pre-train AI-SimCLR and SimCLR on the built-in synthetic audio
and evaluate every synthetic task, ``aiaudio.quickstart``), ``demo`` (what the descriptor
changes in an untrained encoder), ``encoders``, ``dataset`` (inspect a dataset
spec), ``synth`` (write the synthetic set in ESC-50 layout), ``augment`` (hear and see
the seven augmentations), ``pretrain --config FILE [--resume] [a.b=v ...]`` (contrastive
pre-training through the engine with the audio modality, ``aiaudio.modality``; several
GPUs or nodes with ``torchrun -m aiaudio.cli pretrain ...``) and ``export --checkpoint C
--out encoder.pt`` (the encoder of a training checkpoint, loadable by
``core.load_encoder``), and the downstream evaluations ``probe``, ``fewshot``, ``measure``
and ``finetune`` (``aiaudio.cli_downstream``), and ``compare`` (pre-train AI-SimCLR and the
baselines with one budget and compare them on every task, ``aiaudio.compare``).
"""
from __future__ import annotations

import argparse
import sys

import torch

from aiaudio.baselines import BASELINES
from aiaudio.cli_data import add_data_commands
from aiaudio.cli_downstream import add_downstream_commands
from aiaudio.compare_cli import add_compare_command
from aiaudio.data.synthetic import FACTORS
from aiaudio.modality import make_audio_modality
from aiaudio.space import FREQUENCY_GROUP, TIME_GROUP, audio_space
from core import build_encoder
from core.cli import add_encoders_command, add_pareto_command, run_cli
from core.demo import demo_report
from core.engine.cli import add_pretrain_commands


def synthetic_logmels(n: int, seconds: float, seed: int) -> torch.Tensor:
    """Normalised log-mels ``(n, 1, 128, frames)`` of the built-in synthetic clips."""
    from aiaudio.data.synthetic import SyntheticConfig, synthesise_batch
    from aiaudio.frontend import Frontend

    waves = torch.from_numpy(synthesise_batch(range(n), SyntheticConfig(n_clips=n, seconds=seconds, seed=seed)))
    frontend = Frontend()
    frontend.fit([waves])
    return frontend(waves)


def cmd_demo(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    space = audio_space()
    encoder = build_encoder(args.encoder, space, in_chans=1, width=args.width)
    params = sum(p.numel() for p in encoder.parameters())
    print(f"encoder: {args.encoder} (width {args.width}), {params / 1e6:.2f}M parameters")
    print(f"space: {len(space.descriptors)} binary descriptors over {list(space.names)}")
    x = synthetic_logmels(args.batch, args.seconds, args.seed)
    print(f"input: {tuple(x.shape)} log-mels of built-in synthetic clips (untrained encoder)\n")

    learned = torch.tensor([0.76, 0.24, 0.39, 0.48, 0.40, 0.45, 0.24])  # the paper's NSynth descriptor
    descriptors = {
        "default (all ones)": space.ones(),
        "frequency group": space.from_active(FREQUENCY_GROUP),
        "time group": space.from_active(TIME_GROUP),
        "pitch+noise only": space.from_active(["pitch_shift", "noise"]),
        "NSynth-like learned": learned,
        "  ...quantised, 1 bit": space.quantise(learned, bits=1),
        "  ...quantised, 2 bits": space.quantise(learned, bits=2),
    }
    print(demo_report(encoder, x, descriptors, reference="default (all ones)",
                      interpolate=("frequency group", "time group"), specialise_on="NSynth-like learned"))
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from aiaudio.quickstart import EvalSettings, run_quickstart
    from core.engine.runs import RunStoppedEarly
    from core.errors import EXIT_FAILED, EXIT_USER, UserError

    settings = EvalSettings(episodes=args.episodes, clips=args.clips)
    try:
        run_quickstart(args.out, args.overrides, settings, tasks=args.tasks, progress=not args.no_progress)
    except UserError as err:
        print(f"aiaudio quickstart: error: {err}", file=sys.stderr)
        return EXIT_USER
    except RunStoppedEarly as err:  # SIGTERM or stop_at: rerunning resumes it
        print(f"aiaudio quickstart: {err}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiaudio", description="Amortised invariance learning for audio.")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also AI_DEBUG=1)")
    sub = parser.add_subparsers(dest="command")
    quick = sub.add_parser("quickstart", help="pre-train AI-SimCLR and SimCLR on synthetic audio (CPU, minutes) "
                           "and print few-shot accuracy per task with the descriptor each task chose")
    quick.add_argument("--out", default="runs/quickstart", help="output directory (a finished model is reused, "
                       "an interrupted one resumed)")
    quick.add_argument("--episodes", type=int, default=100, help="few-shot episodes per task and model")
    quick.add_argument("--clips", type=int, default=300, help="fresh evaluation clips per task")
    quick.add_argument("--tasks", nargs="+", default=list(FACTORS), choices=list(FACTORS), help="synthetic tasks")
    quick.add_argument("--no-progress", action="store_true", help="no progress bars")
    quick.add_argument("overrides", nargs="*", metavar="a.b=value",
                       help="pre-training config overrides over aiaudio/configs/quickstart.yaml, e.g. train.steps=300")
    quick.set_defaults(func=cmd_quickstart)
    demo = sub.add_parser("demo", help="build an encoder and show what the descriptor changes")
    demo.add_argument("--encoder", default="hyper_resnet18", choices=["hyper_resnet18", "hyper_resnet50", "resnet18", "resnet50"])
    demo.add_argument("--width", type=int, default=32, help="first-stage channels (64 = standard ResNet)")
    demo.add_argument("--batch", type=int, default=8)
    demo.add_argument("--seconds", type=float, default=4.0, help="clip length (4 s = 126 log-mel frames)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)
    add_encoders_command(sub)
    add_pareto_command(sub, "aiaudio")
    add_data_commands(sub)
    add_pretrain_commands(sub, make_audio_modality, BASELINES)
    add_downstream_commands(sub)
    add_compare_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
