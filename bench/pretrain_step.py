"""Throughput of an AI-SimCLR pre-training step vs a plain SimCLR step, side by side.

Both steps run on the same data, in the same process, interleaved (the order alternates
every repeat, warm-up repeats excluded), and are compared by their median step time:

* AI-SimCLR: ``hyper_resnet18``, a new binary descriptor sampled every step (so the
  hypernetwork generates its kernels every step), views made with that descriptor;
* SimCLR: plain ``resnet18`` of the same width (the descriptor is checked and ignored),
  same views (same descriptor, same generator seed), same batch.

The data are built-in synthetic clips through the audio modality (``aiaudio.modality``):
batched on-device augmentation, log-mel front end. A step is method forward (SimCLR loss),
backward and AdamW step (``core.optim`` defaults); view making is timed separately, so one
run prints the ratio without it (the model step alone) and with it (what a training loop
pays per step; the views are identical work for both models, so their common cost is the
median over all view timings). On CUDA the step runs under bfloat16 autocast with
channels-last inputs, as the engine does. Ratio = AI-SimCLR samples/s / SimCLR samples/s;
target >= 0.85.

    python bench/pretrain_step.py                                   # GPU if present
    python bench/pretrain_step.py --device cpu --width 64 --batch 64 --seconds 4 --steps 10
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Callable

import torch

from aiaudio.modality import AudioDataConfig, AudioModality
from core import build_encoder
from core.config import from_dict
from core.methods import MethodConfig, build_method
from core.optim import OptimConfig, build_optimizer

TARGET = 0.85


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(method, optimizer, device: torch.device) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], None]:
    """One optimiser step of ``method`` on given views (bf16 autocast and channels-last on CUDA)."""
    cuda = device.type == "cuda"

    def step(v1: torch.Tensor, v2: torch.Tensor, d: torch.Tensor, index: int) -> None:
        if cuda:
            v1, v2 = (v.contiguous(memory_format=torch.channels_last) for v in (v1, v2))
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
            loss, _ = method(v1, v2, d, index)
        loss.backward()
        optimizer.step()
        method.on_step_end(index, 10**9)

    return step


def timed(fn: Callable[[], object], device: torch.device) -> tuple[object, float]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def measure(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    """Seconds per repeat: ``{model: {"views": [...], "step": [...]}}``."""
    device = torch.device(args.device)
    data = from_dict(AudioDataConfig, {"dataset": f"synthetic?n_clips={args.batch}&seconds={args.seconds}",
                                       "seconds": args.seconds, "fit_clips": args.batch}, "data")
    modality = AudioModality(data, seed=0)
    modality.setup(device)
    dataset = modality.train_dataset()
    wave = torch.stack([dataset[i]["input"] for i in range(args.batch)]).to(device)
    space = modality.space
    steps = {}
    for name, encoder_name in (("ai", "hyper_resnet18"), ("plain", "resnet18")):
        torch.manual_seed(0)
        encoder = build_encoder(encoder_name, space, in_chans=1, width=args.width)
        method = build_method(encoder, MethodConfig(name="simclr"), seed=0).to(device).train()
        steps[name] = make_step(method, build_optimizer(method, OptimConfig(name="adamw")), device)
    times: dict[str, dict[str, list[float]]] = {k: {"views": [], "step": []} for k in steps}
    for rep in range(args.warmup + args.steps):
        d = space.sample(torch.Generator().manual_seed(1000 + rep))  # a new descriptor every step
        order = list(steps) if rep % 2 == 0 else list(steps)[::-1]
        for name in order:
            generator = torch.Generator().manual_seed(rep)  # same views for both models
            (v1, v2), t_views = timed(lambda: modality.views(wave, d, generator), device)
            _, t_step = timed(lambda: steps[name](v1, v2, d.to(device), rep), device)
            if rep >= args.warmup:
                times[name]["views"].append(t_views)
                times[name]["step"].append(t_step)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--width", type=int, default=64, help="first-stage channels (64 = standard ResNet18)")
    parser.add_argument("--batch", type=int, default=256, help="clips per step (CLAR: 256)")
    parser.add_argument("--steps", type=int, default=20, help="timed repeats per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed repeats per model first")
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length (4 s = 126 log-mel frames)")
    parser.add_argument("--include-augment", choices=["both", "yes", "no"], default="both",
                        help="count view making in the step time (yes), not (no), or print both")
    args = parser.parse_args()
    if args.batch < 2 or args.steps < 1 or args.warmup < 0 or args.width < 1 or args.seconds <= 0:
        parser.error("need --batch >= 2, --steps >= 1, --warmup >= 0, --width >= 1, --seconds > 0")

    device = torch.device(args.device)
    times = measure(args)
    machine = (torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    print(f"device: {device} ({machine}); torch {torch.__version__}")
    print(f"batch {args.batch} x {args.seconds:g} s clips -> 2 views of 1 x 128 x {1 + int(args.seconds * 16000) // 512} "
          f"log-mels; width {args.width}; {args.steps} timed repeats after {args.warmup} warm-up, interleaved")
    # Both models get the same views (same descriptor and seed): identical work, so one
    # median over all view timings is their common cost (differences are machine noise).
    views = statistics.median(times["ai"]["views"] + times["plain"]["views"])
    modes = {"both": ("no", "yes"), "yes": ("yes",), "no": ("no",)}[args.include_augment]
    for mode in modes:
        label = "step incl. view making" if mode == "yes" else "model step only (views made beforehand)"
        sps = {}
        for name in ("ai", "plain"):
            sps[name] = args.batch / (statistics.median(times[name]["step"]) + (views if mode == "yes" else 0.0))
        ratio = sps["ai"] / sps["plain"]
        print(f"{label}: AI-SimCLR (hyper_resnet18) {sps['ai']:.1f} samples/s, "
              f"SimCLR (resnet18) {sps['plain']:.1f} samples/s, ratio {ratio:.3f} "
              f"(target >= {TARGET}: {'met' if ratio >= TARGET else 'MISSED'})")
    print(f"view making (median, same views for both): {1000 * views:.0f} ms per step")


if __name__ == "__main__":
    main()
