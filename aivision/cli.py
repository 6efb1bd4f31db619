"""The ``aivision`` command: vision entry points of the toolkit.

Sub-commands: ``demo`` (what the descriptor changes in an untrained encoder, on the built-in
synthetic images), ``encoders``, ``pareto``, ``pretrain --config FILE [--resume] [a.b=v ...]``
(contrastive pre-training through the engine with the vision modality, ``aivision.modality``;
``--model NAME`` for a baseline of ``aivision.baselines``; several GPUs or nodes with
``torchrun -m aivision.cli pretrain ...``), ``export --checkpoint C --out encoder.pt``,
``quickstart`` (``aivision.quickstart``) and the downstream evaluations ``probe``,
``fewshot``, ``measure`` and ``finetune`` (``aivision.cli_downstream``); they share their
options with the ``aiaudio`` commands.
"""
from __future__ import annotations

import argparse
import sys

import torch

from aivision.cli_downstream import add_downstream_commands
from aivision.modality import make_vision_modality
from aivision.space import group_space
from aivision.synthetic import FACTORS
from core import build_encoder
from core.cli import add_encoders_command, add_pareto_command, run_cli
from core.demo import demo_report
from core.engine.cli import add_pretrain_commands
from aivision.baselines import BASELINES

DEMO_ENCODERS = {
    "hyper_resnet50": lambda space, size: build_encoder("hyper_resnet50", space, in_chans=3, width=16),
    "prompt_vit_small": lambda space, size: build_encoder(
        "prompt_vit_small", space, img_size=size, patch_size=8, depth=4, num_prompts=256
    ),
}


def synthetic_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Normalised built-in synthetic images ``(n, 3, size, size)`` (``aivision.synthetic``)."""
    from aivision.augment.ops import normalize, to_unit_float
    from aivision.augment.config import IMAGENET_MEAN, IMAGENET_STD
    from aivision.synthetic import SyntheticImageConfig, synthesise

    images, _ = synthesise(range(n), SyntheticImageConfig(n_images=n, size=size, seed=seed))
    return normalize(to_unit_float(images), IMAGENET_MEAN, IMAGENET_STD)


def cmd_demo(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    space = group_space()
    encoder = DEMO_ENCODERS[args.encoder](space, args.size)
    params = sum(p.numel() for p in encoder.parameters())
    print(f"encoder: {args.encoder}, {params / 1e6:.2f}M parameters; space {list(space.names)}")
    x = synthetic_images(args.batch, args.size, args.seed)
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


def cmd_quickstart(args: argparse.Namespace) -> int:
    from aivision.quickstart import EvalSettings, run_quickstart
    from core.engine.runs import RunStoppedEarly
    from core.errors import EXIT_FAILED, EXIT_USER, UserError

    settings = EvalSettings(episodes=args.episodes, images=args.images)
    try:
        run_quickstart(args.out, args.overrides, settings, tasks=args.tasks, progress=not args.no_progress)
    except UserError as err:
        print(f"aivision quickstart: error: {err}", file=sys.stderr)
        return EXIT_USER
    except RunStoppedEarly as err:  # SIGTERM or stop_at: rerunning resumes it
        print(f"aivision quickstart: {err}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aivision", description="Amortised invariance learning for images.")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also AI_DEBUG=1)")
    sub = parser.add_subparsers(dest="command")
    quick = sub.add_parser("quickstart", help="pre-train AI-SimCLR and SimCLR on synthetic images (CPU, minutes) "
                           "and print few-shot accuracy per task with the descriptor each task chose")
    quick.add_argument("--out", default="runs/quickstart_vision", help="output directory (a finished model is "
                       "reused, an interrupted one resumed)")
    quick.add_argument("--episodes", type=int, default=100, help="few-shot episodes per task and model")
    quick.add_argument("--images", type=int, default=300, help="fresh evaluation images per task")
    quick.add_argument("--tasks", nargs="+", default=list(FACTORS), choices=list(FACTORS), help="synthetic tasks")
    quick.add_argument("--no-progress", action="store_true", help="no progress bars")
    quick.add_argument("overrides", nargs="*", metavar="a.b=value",
                       help="pre-training config overrides over aivision/configs/quickstart.yaml, e.g. train.steps=300")
    quick.set_defaults(func=cmd_quickstart)
    demo = sub.add_parser("demo", help="build an encoder and show what the descriptor changes")
    demo.add_argument("--encoder", default="hyper_resnet50", choices=sorted(DEMO_ENCODERS))
    demo.add_argument("--size", type=int, default=64, help="image side in pixels")
    demo.add_argument("--batch", type=int, default=8)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)
    add_encoders_command(sub)
    add_pareto_command(sub, "aivision")
    add_pretrain_commands(sub, make_vision_modality, BASELINES)
    add_downstream_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
