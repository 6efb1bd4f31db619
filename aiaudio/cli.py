"""The ``aiaudio`` command: audio entry points of the toolkit.

Sub-commands: ``demo`` (the quickstart), ``encoders``, ``dataset`` (inspect a dataset
spec), ``synth`` (write the synthetic set in ESC-50 layout) and ``augment`` (hear and see
the seven augmentations). Pre-training, probing and few-shot evaluation arrive with the
engine and downstream issues.
"""
from __future__ import annotations

import argparse
import sys

import torch

from aiaudio.cli_data import add_data_commands
from aiaudio.space import FREQUENCY_GROUP, TIME_GROUP, audio_space
from core import build_encoder
from core.cli import add_encoders_command, run_cli
from core.demo import demo_report


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiaudio", description="Amortised invariance learning for audio.")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="build an encoder and show what the descriptor changes (quickstart)")
    demo.add_argument("--encoder", default="hyper_resnet18", choices=["hyper_resnet18", "hyper_resnet50", "resnet18", "resnet50"])
    demo.add_argument("--width", type=int, default=32, help="first-stage channels (64 = standard ResNet)")
    demo.add_argument("--batch", type=int, default=8)
    demo.add_argument("--seconds", type=float, default=4.0, help="clip length (4 s = 126 log-mel frames)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)
    add_encoders_command(sub)
    add_data_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
