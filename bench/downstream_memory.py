"""Memory and time of fitting the probe with a fixed vs a learned descriptor.

Each fit runs in its own fresh process (``--worker MODE`` prints one JSON line), so peak
memory is the whole process's peak resident set (``ru_maxrss``) on the CPU, or
``torch.cuda.max_memory_allocated`` on a GPU. A ``baseline`` worker only imports torch and
the package, builds the encoder and the batch and pays the libraries' one-time costs that
every worker pays first (the optimiser's lazy imports, kernel code for one gradient-free
single-input pass): subtracting it gives memory "net of the interpreter". Same encoder, same batch, same number of Adam steps in every mode:

  (a) fixed     descriptor fixed (all ones): features computed once, linear readout only
  (b) backprop  descriptor learned, ordinary back-propagation through the frozen encoder
  (c) light     descriptor learned, the probe's memory-light path: each batch back-propagated
                micro-batch by micro-batch, gradients accumulated (exact: the loss is a mean)
  (-) recompute descriptor learned, features_with_descriptor_grad(mode="light"): features of
                the batch without a graph, micro-batched recomputation in backward (the
                general path, for losses that couple the samples), for reference
  (-) forward   descriptor learned, forward mode (batched jvp tangents), for reference

Prints (b)/(a) and (c)/(a) for memory, (c)/(b) for time, and the targets: (c) at most 1.5x
(a)'s peak memory (whole process) and at most 2x (b)'s time. Workers of the modes are
interleaved over ``--reps`` rounds and medians are compared, so load on the machine hits all
modes alike; one intra-op thread per worker (``--threads``) keeps timings stable.

    python bench/downstream_memory.py                        # hyper_resnet18 width 16, 1x64x64, batch 64, K=7
    python bench/downstream_memory.py --width 32 --micro-batch 8 --modes fixed,backprop,light
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODES = ("fixed", "backprop", "light", "recompute", "forward")
AUDIO = ["pitch_shift", "fade_in", "fade_out", "noise", "time_mask", "time_shift", "time_stretch"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=("baseline",) + MODES, help="run one measurement (internal)")
    parser.add_argument("--encoder", default="hyper_resnet18")
    parser.add_argument("--width", type=int, default=16, help="channels of the first stage")
    parser.add_argument("--size", type=int, default=64, help="input is 1 x size x size")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10, help="timed Adam steps (after one warm-up step)")
    parser.add_argument("--micro-batch", type=int, default=16, help="micro-batch of the light and forward paths")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads per worker")
    parser.add_argument("--reps", type=int, default=3, help="rounds of workers; medians are reported")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES))
    args = parser.parse_args(argv)
    for key in ("width", "size", "batch", "classes", "steps", "micro_batch", "threads", "reps"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    unknown = [m for m in args.modes.split(",") if m not in MODES]
    if unknown or "fixed" not in args.modes.split(","):
        parser.error(f"--modes must be a subset of {','.join(MODES)} including fixed, got {args.modes!r}")
    return args


def peak_mb(device) -> float:
    """Peak memory so far: process RSS on the CPU, allocated tensors on a GPU (MB)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    scale = 1.0 if sys.platform == "darwin" else 1024.0  # ru_maxrss: bytes on macOS, KB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def worker(args: argparse.Namespace) -> dict:
    """Build the encoder and batch, fit the probe in one mode, return its peak memory and time."""
    import torch

    from core import InvarianceSpace, build_encoder
    from core.downstream.clips import encode_pieces
    from core.downstream.probe import ProbeConfig, train_probe

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    space = InvarianceSpace(AUDIO, min_active=2)
    torch.manual_seed(0)
    encoder = build_encoder(args.encoder, space, in_chans=1, width=args.width).to(device).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 1, args.size, args.size, generator=gen)
    y = torch.randint(0, args.classes, (args.batch,), generator=gen)
    # One-time library costs paid by every worker before measuring: lazy imports of the
    # optimiser (torch._dynamo, ~150 MB) and kernel code of a gradient-free single-input pass.
    scalar = torch.zeros(1, device=device, requires_grad=True)
    torch.optim.Adam([scalar]).step()
    with torch.no_grad():
        encoder(x[:1].to(device), space.ones().to(device))
    out = {"mode": args.worker, "steps": args.steps}
    if args.worker != "baseline":
        grad = {"fixed": "backprop", "recompute": "light"}.get(args.worker, args.worker)
        config = ProbeConfig(epochs=1, batch_size=args.batch, grad=grad, micro_batch=args.micro_batch)

        def fit(epochs: int) -> None:
            config.epochs = epochs
            if args.worker == "fixed":  # features once, then the linear readout only
                ones = space.ones()
                feats = encode_pieces(encoder, x, ones, args.batch, device)
                train_probe(encoder, feats, y, args.classes, config, 1e-3, 0.0, ones, device)
            else:
                train_probe(encoder, x, y, args.classes, config, 1e-3, 0.0, None, device,
                            accumulate=args.worker != "recompute")

        fit(1)  # warm-up: one-time allocations and kernel selection
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fit(args.steps)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        out["wall_s"] = time.perf_counter() - start
    out["peak_mb"] = peak_mb(device)
    return out


def run_worker(mode: str, args: argparse.Namespace) -> dict:
    options = ["--encoder", args.encoder, "--width", str(args.width), "--size", str(args.size),
               "--batch", str(args.batch), "--classes", str(args.classes), "--steps", str(args.steps),
               "--micro-batch", str(args.micro_batch), "--threads", str(args.threads), "--device", args.device]
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", mode, *options],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if proc.returncode != 0:
        raise RuntimeError(f"worker {mode} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    modes = [m for m in MODES if m in args.modes.split(",")]
    runs: dict[str, list[dict]] = {m: [] for m in ("baseline", *modes)}
    for rep in range(args.reps):
        for mode in runs:
            runs[mode].append(run_worker(mode, args))
        print(f"round {rep + 1}/{args.reps} done", file=sys.stderr)
    mem = {m: statistics.median(r["peak_mb"] for r in rs) for m, rs in runs.items()}
    wall = {m: statistics.median(r["wall_s"] for r in rs) for m, rs in runs.items() if m != "baseline"}
    net = {m: mem[m] - mem["baseline"] for m in modes}
    print(f"{args.encoder} width {args.width}, input 1x{args.size}x{args.size}, batch {args.batch}, K={len(AUDIO)}, "
          f"{args.steps} Adam steps, micro-batch {args.micro_batch}, {args.threads} thread(s), {args.device}; "
          f"{platform.processor() or platform.machine()}, medians of {args.reps} rounds")
    print(f"baseline (interpreter + libraries warmed + encoder + batch): {mem['baseline']:.1f} MB")
    print(f"{'mode':<10}{'peak MB':>10}{'net MB':>10}{'time s':>10}{'mem/(a)':>10}{'net/(a)':>10}{'time/(b)':>10}")
    for m in modes:
        time_b = wall[m] / wall["backprop"] if "backprop" in wall else float("nan")
        print(f"{m:<10}{mem[m]:>10.1f}{net[m]:>10.1f}{wall[m]:>10.2f}{mem[m] / mem['fixed']:>10.2f}"
              f"{net[m] / net['fixed']:>10.2f}{time_b:>10.2f}")
    if "backprop" in modes:
        print(f"(b)/(a) memory: {mem['backprop'] / mem['fixed']:.2f}x whole process, "
              f"{net['backprop'] / net['fixed']:.2f}x net of the interpreter")
    if "light" in modes:
        ratio = mem["light"] / mem["fixed"]
        print(f"(c)/(a) memory: {ratio:.2f}x whole process, {net['light'] / net['fixed']:.2f}x net "
              f"(target <= 1.5x whole process: {'met' if ratio <= 1.5 else 'MISSED'})")
    if "light" in modes and "backprop" in modes:
        ratio = wall["light"] / wall["backprop"]
        print(f"(c)/(b) time: {ratio:.2f}x (target <= 2x: {'met' if ratio <= 2.0 else 'MISSED'})")
    for extra in ("recompute", "forward"):
        if extra not in modes:
            continue
        line = f"{extra}/(a) memory: {mem[extra] / mem['fixed']:.2f}x whole, {net[extra] / net['fixed']:.2f}x net"
        if "backprop" in modes:
            line += f"; {extra}/(b) time: {wall[extra] / wall['backprop']:.2f}x"
        print(line)


if __name__ == "__main__":
    main()
