"""The ``aivision`` command: vision entry points of the toolkit.

Sub-commands available now: ``demo`` and ``encoders``. Pre-training, probing, few-shot
evaluation and measurement arrive with the vision pipeline.
"""
from __future__ import annotations

import argparse
import sys

import torch

from aivision.space import group_space
from core import build_encoder
from core.cli import add_encoders_command, add_pareto_command, run_cli
from core.demo import demo_report

DEMO_ENCODERS = {
    "hyper_resnet50": lambda space, size: build_encoder("hyper_resnet50", space, in_chans=3, width=16),
    "prompt_vit_small": lambda space, size: build_encoder(
        "prompt_vit_small", space, img_size=size, patch_size=8, depth=4, num_prompts=256
    ),
}


def synthetic_images(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Test images ``(n, 3, size, size)``: one coloured rectangle each on a grey background
    (a stand-in until the vision pipeline's synthetic shapes land)."""
    x = torch.full((n, 3, size, size), 0.5)
    for i in range(n):
        h, w = (int(v) for v in torch.randint(size // 4, size // 2, (2,), generator=generator))
        top, left = (int(v) for v in torch.randint(0, size - size // 2, (2,), generator=generator))
        x[i, :, top : top + h, left : left + w] = torch.rand(3, 1, 1, generator=generator)
    return (x - 0.5) / 0.25


def cmd_demo(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    space = group_space()
    encoder = DEMO_ENCODERS[args.encoder](space, args.size)
    params = sum(p.numel() for p in encoder.parameters())
    print(f"encoder: {args.encoder}, {params / 1e6:.2f}M parameters; space {list(space.names)}")
    x = synthetic_images(args.batch, args.size, torch.Generator().manual_seed(args.seed))
    print(f"input: {tuple(x.shape)} synthetic images (untrained encoder)\n")
    descriptors = {
        "default [1,1]": space.ones(),
        "spatial [1,0]": space.from_active(["spatial"]),
        "appearance [0,1]": space.from_active(["appearance"]),
        "halfway [.5,.5]": torch.tensor([0.5, 0.5]),
    }
    print(demo_report(encoder, x, descriptors, reference="default [1,1]",
                      interpolate=("spatial [1,0]", "appearance [0,1]"), specialise_on="spatial [1,0]"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aivision", description="Amortised invariance learning for images.")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="build an encoder and show what the descriptor changes")
    demo.add_argument("--encoder", default="hyper_resnet50", choices=sorted(DEMO_ENCODERS))
    demo.add_argument("--size", type=int, default=64, help="image side in pixels")
    demo.add_argument("--batch", type=int, default=8)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)
    add_encoders_command(sub)
    add_pareto_command(sub, "aivision")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
