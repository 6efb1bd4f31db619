"""Two-view audio augmentation + log-mel throughput: batched backend vs audiomentations.

Both backends get the same clips (4 s, 16 kHz) and the same sampled parameters (the
parameters come from one shared sampler seeded identically), with all seven augmentations
active and applied to every clip (p = 1), then the log-mel front end on both views.
Prints clips per second of each and the ratio batched / audiomentations. Target: >= 20x on
CPU. Torch's intra-op threads apply to the batched backend; audiomentations works per
clip on one core, so the table also gives the batched backend on a single thread. On the
CPU the batched backend runs its phase vocoder, overlap-add and resampling reads as compiled
kernels (aiaudio/augment/cpu_kernels.py), and batches of more than 32 clips as row blocks in
parallel threads (aiaudio/augment/cpu_blocks.py). Two more rows show the batch as one block
on torch's threads (cpu_block_rows=0) and the eager tensor code alone, kernels switched
off (AIAUDIO_CPU_KERNELS=0), as it runs on a GPU.

    python bench/augment_throughput.py                  # batch 64, 2 repetitions
    python bench/augment_throughput.py --batch 256 --device cuda
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from aiaudio.augment import AudioPolicy, AugmentConfig, cpu_kernels
from aiaudio.data.synthetic import SyntheticAudio, SyntheticConfig
from aiaudio.frontend import FrontendConfig, LogMel
from aiaudio.space import AUDIO_AUGMENTATIONS, audio_space


def clips(n: int, seconds: float, sample_rate: int) -> torch.Tensor:
    """``(n, T)`` synthetic clips (harmonic notes over background noise)."""
    data = SyntheticAudio(SyntheticConfig(n_clips=n, seconds=seconds, sample_rate=sample_rate, seed=0))
    return torch.stack([data[i][0] for i in range(n)])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(policy: AudioPolicy, logmel: LogMel, wave: torch.Tensor, seed: int, device: torch.device) -> float:
    """Seconds for two views + log-mel of the whole batch."""
    d = policy.space.ones()
    sync(device)
    start = time.perf_counter()
    v1, v2 = policy.views(wave.to(device), d, torch.Generator().manual_seed(seed))
    logmel(v1), logmel(v2)
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reference-clips", type=int, default=None,
                    help="clips for the (slow) audiomentations run; default: the whole batch")
    args = ap.parse_args()
    device = torch.device(args.device)
    sr = 16000
    every = {name: {"p": 1.0} for name in AUDIO_AUGMENTATIONS}
    config = AugmentConfig.from_dict(every)
    space = audio_space()
    batched = AudioPolicy(space, config, sample_rate=sr, backend="batched")
    one_block = AudioPolicy(space, AugmentConfig.from_dict({"cpu_block_rows": 0, **every}), sample_rate=sr,
                            backend="batched")
    reference = AudioPolicy(space, config, sample_rate=sr, backend="audiomentations")
    logmel = LogMel(FrontendConfig(sample_rate=sr)).to(device)
    wave = clips(args.batch, args.seconds, sr)
    n_ref = args.reference_clips or args.batch
    threads = torch.get_num_threads()

    with torch.no_grad():
        run(batched, logmel, wave, 0, device)  # warm-up (FFT plans, allocator)
        t_batched = min(run(batched, logmel, wave, 1 + r, device) for r in range(args.reps))
        t_tensor = t_one_block = float("nan")
        if device.type == "cpu":
            t_one_block = min(run(one_block, logmel, wave, 1 + r, device) for r in range(args.reps))
            os.environ[cpu_kernels.ENV_SWITCH] = "0"
            t_tensor = min(run(batched, logmel, wave, 1 + r, device) for r in range(args.reps))
            del os.environ[cpu_kernels.ENV_SWITCH]
        torch.set_num_threads(1)
        t_single = min(run(batched, logmel, wave, 1 + r, torch.device("cpu")) for r in range(args.reps)) \
            if device.type == "cpu" else float("nan")
        t_ref = run(reference, logmel.cpu(), wave[:n_ref], 1, torch.device("cpu"))
        torch.set_num_threads(threads)

    rate_b, rate_1, rate_r = args.batch / t_batched, args.batch / t_single, n_ref / t_ref
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{threads} threads, device {device}")
    print(f"clips: {args.batch} x {args.seconds:g} s at {sr} Hz, two views, all 7 augmentations (p=1), log-mel")
    print(f"{'backend':<34}{'clips/s':>10}{'ratio':>8}")
    print(f"{'audiomentations (per clip, 1 core)':<34}{rate_r:>10.1f}{1.0:>8.2f}")
    print(f"{f'batched ({threads} threads)':<34}{rate_b:>10.1f}{rate_b / rate_r:>8.2f}")
    if device.type == "cpu":
        print(f"{'batched (1 thread)':<34}{rate_1:>10.1f}{rate_1 / rate_r:>8.2f}")
        rate_o = args.batch / t_one_block
        print(f"{'batched, one block on torch threads':<34}{rate_o:>10.1f}{rate_o / rate_r:>8.2f}")
        rate_t = args.batch / t_tensor
        print(f"{f'batched, tensor code ({threads} thr.)':<34}{rate_t:>10.1f}{rate_t / rate_r:>8.2f}")
    print(f"target: batched / audiomentations >= 20 -> {'met' if rate_b / rate_r >= 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
