"""The options of each downstream command that do not depend on the modality, so ``aiaudio``
and ``aivision`` offer the same flags with the same defaults. A modality registers the
sub-command, adds its own flags (``--split``, ``--transforms``, ...) and calls these."""
from __future__ import annotations

import argparse

from core.downstream.cli_common import floats_arg


def add_fewshot_options(p: argparse.ArgumentParser) -> None:
    """Episodes, readout and descriptor mode of ``fewshot``."""
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--queries", type=int, default=15, help="queries per class")
    p.add_argument("--episodes", type=int, default=600)
    p.add_argument("--readout", default="ridge", choices=["ridge", "logistic", "prototype"])
    p.add_argument("--ridge-lambda", type=float, default=1.0)
    p.add_argument("--descriptor", default="auto",
                   help="auto (default): 'dataset' for an encoder told its invariance (the descriptor "
                        "learned once on episodes of the training classes, then frozen), 'fixed:ones' for "
                        "one whose features ignore the descriptor | fixed:ones (invariant to everything: "
                        "switches the method off) | fixed:v1,...,vK | episode (learned per episode) | "
                        "dataset | corners (best binary descriptor on training episodes)")
    p.add_argument("--train-episodes", type=int, default=100, help="training-class episodes (dataset/corners)")
    p.add_argument("--inner-steps", type=int, default=20, help="descriptor steps (episode/dataset)")
    p.add_argument("--descriptor-lr", type=float, default=0.05)
    p.add_argument("--descriptor-init", type=float, default=0.5,
                   help="start of every entry of a learned descriptor (episode/dataset): 0.5 undecided, "
                        "1 the all-invariant corner")
    p.add_argument("--batch-size", type=int, default=256)


def add_probe_options(p: argparse.ArgumentParser) -> None:
    """Descriptor mode, hyper-parameter grid and gradient path of ``probe``."""
    p.add_argument("--descriptor", default="learned", choices=["learned", "fixed", "best_corner", "quantised"])
    p.add_argument("--fixed", default=None, help="for --descriptor fixed: ones or v1,...,vK (default ones)")
    p.add_argument("--bits", type=int, default=1, help="for --descriptor quantised")
    p.add_argument("--lrs", type=floats_arg, default=[1e-3, 1e-2], help="learning rates to choose from on val")
    p.add_argument("--weight-decays", type=floats_arg, default=[0.0, 1e-4])
    p.add_argument("--descriptor-lr", type=float, default=None, help="default: the head's learning rate")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--grad", default="backprop", choices=["backprop", "forward", "light"],
                   help="how the descriptor gradient is computed (forward/light: less memory)")
    p.add_argument("--micro-batch", type=int, default=32)


def add_finetune_options(p: argparse.ArgumentParser) -> None:
    """Blocks, fixed descriptor, optimiser and budget of ``finetune``."""
    p.add_argument("--blocks", default="all", help="all | last:<k>")
    p.add_argument("--descriptor", default="ones", help="fixed descriptor: ones or v1,...,vK")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--budget-s", type=float, default=None, help="wall-clock budget for training (seconds)")


def add_measure_options(p: argparse.ArgumentParser, descriptor_example: str, strength_example: str) -> None:
    """Descriptors, strength grids, sample count and output folder of ``measure``."""
    p.add_argument("--descriptors", nargs="+", default=["ones"],
                   help="ones | zeros | active:a+b | LABEL:v1,...,vK | LABEL:result.json (comma-separated "
                        f"or separate), e.g. {descriptor_example}")
    p.add_argument("--strength", action="append", default=[], metavar="NAME=V1,V2",
                   help=f"replace a transform's strength grid (repeatable), e.g. {strength_example}")
    p.add_argument("--clips", type=int, default=64, help="inputs measured (seeded choice)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out-dir", default="invariance", help="folder for invariance.png")
