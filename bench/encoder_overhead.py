"""Cost of the hypernetwork: Hyper-ResNet18 vs a plain ResNet18, measured side by side.

On log-mel-sized input (1 x 128 x 200) at batch 64 this prints, from one run:
  (a) training-step time (forward, backward, AdamW step) of hyper_resnet18 / resnet18,
  (b) inference time of hyper_resnet18.specialise(d) / resnet18,
plus parameter counts. Repetitions of the two models are interleaved so that load on the
machine affects both alike; medians are compared. Targets: (a) <= 1.15, (b) <= 1.02.

    python bench/encoder_overhead.py                 # defaults: CPU, batch 64, 5 reps
    python bench/encoder_overhead.py --generator full --reps 3
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from core import InvarianceSpace, build_encoder

AUDIO = ["pitch_shift", "fade_in", "fade_out", "noise", "time_mask", "time_shift", "time_stretch"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(model, opt, x, d, device) -> float:
    sync(device)
    start = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    model(x, d).pow(2).mean().backward()
    opt.step()
    sync(device)
    return time.perf_counter() - start


@torch.no_grad()
def infer(module, x, device, d=None) -> float:
    sync(device)
    start = time.perf_counter()
    module(x) if d is None else module(x, d)
    sync(device)
    return time.perf_counter() - start


def interleaved(fns: dict, reps: int, warmup: int) -> dict[str, float]:
    """Median seconds of each callable, calling them in turn ``warmup + reps`` times."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(warmup + reps):
        for key, fn in fns.items():
            t = fn()
            if i >= warmup:
                times[key].append(t)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--generator", default="lowrank", choices=["lowrank", "full"])
    parser.add_argument("--embed-dim", type=int, default=16)
    parser.add_argument("--hidden-dim", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    space = InvarianceSpace(AUDIO, min_active=2)
    hyper = build_encoder(
        "hyper_resnet18", space, in_chans=1, width=args.width, generator=args.generator,
        embed_dim=args.embed_dim, hidden_dim=args.hidden_dim,
    ).to(device)
    plain = build_encoder("resnet18", space, in_chans=1, width=args.width).to(device)
    x = torch.randn(args.batch, 1, 128, 200, device=device)
    d = space.sample(torch.Generator().manual_seed(0)).to(device)
    opts = {m: torch.optim.AdamW(m.parameters(), lr=1e-4) for m in (hyper, plain)}

    train = interleaved(
        {
            "hyper": lambda: train_step(hyper.train(), opts[hyper], x, d, device),
            "plain": lambda: train_step(plain.train(), opts[plain], x, d, device),
        },
        args.reps, args.warmup,
    )
    special = hyper.eval().specialise(d)
    plain_net = plain.eval().net
    infer_t = interleaved(
        {
            "special": lambda: infer(special, x, device),
            "plain": lambda: infer(plain_net, x, device),
            "hyper": lambda: infer(hyper, x, device, d),
        },
        args.reps, args.warmup,
    )

    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"device: {device} ({machine}); torch {torch.__version__}")
    print(f"input: {args.batch} x 1 x 128 x 200; width {args.width}; generator {args.generator} (E={args.embed_dim}, H={args.hidden_dim})")
    print(f"parameters: hyper_resnet18 {count(hyper) / 1e6:.2f}M, resnet18 {count(plain) / 1e6:.2f}M, ratio {count(hyper) / count(plain):.2f}")
    print(f"train step (fwd+bwd+AdamW): hyper {train['hyper']:.3f} s, plain {train['plain']:.3f} s")
    print(f"inference: specialise(d) {infer_t['special']:.3f} s, plain {infer_t['plain']:.3f} s, hyper(x, d) {infer_t['hyper']:.3f} s")
    ratio_a = train["hyper"] / train["plain"]
    ratio_b = infer_t["special"] / infer_t["plain"]
    print(f"(a) train-step ratio hyper/plain: {ratio_a:.3f}  (target <= 1.15: {'met' if ratio_a <= 1.15 else 'MISSED'})")
    print(f"(b) inference ratio specialise/plain: {ratio_b:.3f}  (target <= 1.02: {'met' if ratio_b <= 1.02 else 'MISSED'})")


if __name__ == "__main__":
    main()
