"""Two-view vision augmentation throughput: batched backend vs torchvision per image.

Both backends get the same images (256 x 256 procedural images from
``aivision.synthetic``) and the same sampled parameters (each run draws them from a
generator seeded identically), with both groups on (descriptor ``[1, 1]``: crop, flip,
colour jitter, grayscale, blur, solarize at their default probabilities, or all at p = 1
with ``--all``), 224 px normalised output views. Prints images per second of each and the
ratio batched / torchvision. Torch's intra-op threads serve both backends; on the CPU the
table also gives both on a single thread.

    python bench/vision_augment_throughput.py                    # batch 64, 2 repetitions
    python bench/vision_augment_throughput.py --batch 256 --device cuda
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from aivision.augment import VISION_AUGMENTATIONS, VisionAugmentConfig, VisionPolicy
from aivision.space import group_space
from aivision.synthetic import SyntheticImageConfig, synthesise


def images(n: int, side: int) -> torch.Tensor:
    """``(n, 3, side, side)`` float images in [0, 1]."""
    raw, _ = synthesise(range(n), SyntheticImageConfig(n_images=n, size=side, seed=0))
    return raw.float() / 255


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(policy: VisionPolicy, x: torch.Tensor, seed: int, device: torch.device) -> float:
    """Seconds for two views of the whole batch (input already on ``device``)."""
    sync(device)
    start = time.perf_counter()
    policy.views(x, policy.space.ones(), torch.Generator().manual_seed(seed))
    sync(device)
    return time.perf_counter() - start


def best(policy: VisionPolicy, x: torch.Tensor, reps: int, device: torch.device) -> float:
    return min(run(policy, x, 1 + r, device) for r in range(reps))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--input-size", type=int, default=256)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--all", action="store_true", help="apply every augmentation to every image (p = 1)")
    args = ap.parse_args()
    device = torch.device(args.device)
    data: dict = {"size": args.size}
    if args.all:
        data.update({name: {"p": 1.0} for name in VISION_AUGMENTATIONS})
    config = VisionAugmentConfig.from_dict(data)
    space = group_space()
    batched = VisionPolicy(space, config, backend="batched")
    reference = VisionPolicy(space, config, backend="torchvision")
    x = images(args.batch, args.input_size).to(device)
    threads = torch.get_num_threads()

    with torch.no_grad():
        run(batched, x, 0, device)                     # warm-up (allocator, kernels)
        run(reference, x[:4], 0, device)
        t_batched = best(batched, x, args.reps, device)
        t_ref = best(reference, x, args.reps, device)
        t_b1 = t_r1 = float("nan")
        if device.type == "cpu":
            torch.set_num_threads(1)
            t_b1 = best(batched, x, args.reps, device)
            t_r1 = best(reference, x, args.reps, device)
            torch.set_num_threads(threads)

    n = args.batch
    rate_b, rate_r = n / t_batched, n / t_ref
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{threads} threads, device {device}")
    print(f"images: {n} x {args.input_size}x{args.input_size} -> two {args.size}x{args.size} views, "
          f"groups [spatial, appearance] = [1, 1], {'p = 1 for all' if args.all else 'default probabilities'}")
    print(f"{'backend':<36}{'images/s':>10}{'ratio':>8}")
    print(f"{f'torchvision per image ({threads} threads)':<36}{rate_r:>10.1f}{1.0:>8.2f}")
    print(f"{f'batched ({threads} threads)':<36}{rate_b:>10.1f}{rate_b / rate_r:>8.2f}")
    if device.type == "cpu":
        print(f"{'torchvision per image (1 thread)':<36}{n / t_r1:>10.1f}{(n / t_r1) / rate_r:>8.2f}")
        print(f"{'batched (1 thread)':<36}{n / t_b1:>10.1f}{(n / t_b1) / rate_r:>8.2f}")


if __name__ == "__main__":
    main()
