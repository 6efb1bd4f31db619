"""Compiled CPU kernels (numba) for the inner loops of the pitch shift and time stretch.

Eager PyTorch runs the phase vocoder as a dozen memory-bound passes over every
``rows x frames x bins`` cell (complex abs, gathers, a complex cumulative product, the
phase-locking gathers); on a CPU that costs about 3-5 ms per 4 s clip. :func:`vocode` does
the same arithmetic in one pass per output frame that stays in the L1 cache, about 12x
faster. :func:`overlap_add` (inverse STFT), :func:`lowpass_` and :func:`cubic_read` (the
resampler) do the same for their loops. They are used only for float32 tensors on the CPU;
CUDA and float64 keep the tensor code in :mod:`aiaudio.augment.phase_vocoder` and
:mod:`aiaudio.augment.resample`, which is also the specification the tests compare these
kernels against.

Rows are independent, so a batch is split into contiguous row blocks that run in a thread
pool of ``torch.get_num_threads()`` workers (the kernels release the GIL); a row's result
does not depend on the other rows of its batch or on the number of threads.
"""
from __future__ import annotations

import importlib.util
import math
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

# numba (pinned; librosa needs it too) is imported on first use; without it the tensor
# code runs everywhere.
HAVE_NUMBA = importlib.util.find_spec("numba") is not None
# Fast-math flags without "nnan"/"ninf": results stay defined for any finite input.
_FLAGS = {"nsz", "arcp", "contract", "reassoc"}
# Set AIAUDIO_CPU_KERNELS=0 to force the eager tensor code on the CPU (for comparisons).
ENV_SWITCH = "AIAUDIO_CPU_KERNELS"


def enabled(x: Tensor) -> bool:
    """Whether the compiled kernel handles ``x``: numba present, float32/complex64 on the
    CPU, and not switched off with ``AIAUDIO_CPU_KERNELS=0``."""
    return (HAVE_NUMBA and x.device.type == "cpu" and x.dtype in (torch.float32, torch.complex64)
            and os.environ.get(ENV_SWITCH, "1") != "0")


def _vocode_rows(spec, positions, out, lock, silent_ratio):  # pragma: no cover - compiled
    """``spec`` (B, N, F, 2) float32 (re, im), ``positions`` (B, M) float64 -> ``out``
    (B, M, F, 2); the arithmetic of :func:`aiaudio.augment.phase_vocoder.vocode_tensor`."""
    n_rows, n_frames, n_bins, _ = spec.shape
    n_out = positions.shape[1]
    one, zero = np.float32(1.0), np.float32(0.0)
    tiny = np.float32(1.1754944e-38)
    mag = np.empty((n_frames, n_bins), np.float32)
    ur = np.empty((n_frames, n_bins), np.float32)  # unit phasors, real and imaginary parts
    ui = np.empty((n_frames, n_bins), np.float32)
    ar = np.empty(n_bins, np.float32)  # accumulated (plain vocoder) phasors
    ai = np.empty(n_bins, np.float32)
    rr = np.empty(n_bins, np.float32)  # accumulated phasor relative to the input frame's
    ri = np.empty(n_bins, np.float32)
    om = np.empty(n_bins + 2, np.float32)  # output magnitudes, padded with -1 at both ends
    src = np.empty(n_bins, np.int64)
    ones = np.ones(n_bins, np.float32)  # table[0] = unit[0] = unit[0] * conj(1)
    zeros = np.zeros(n_bins, np.float32)
    om[0] = -one
    om[n_bins + 1] = -one
    for b in range(n_rows):
        peak = zero
        for i in range(n_frames):
            for k in range(n_bins):
                re, im = spec[b, i, k, 0], spec[b, i, k, 1]
                m = np.float32(math.sqrt(re * re + im * im))
                mag[i, k] = m
                peak = max(peak, m)
        floor = peak * silent_ratio
        for i in range(n_frames):
            for k in range(n_bins):
                m = mag[i, k]
                inv = one / max(m, tiny)
                quiet = m <= floor
                ur[i, k] = one if quiet else spec[b, i, k, 0] * inv
                ui[i, k] = zero if quiet else spec[b, i, k, 1] * inv
        prev = 0
        for j in range(n_out):  # 1-D row slices below: contiguous loops the compiler vectorises
            p = positions[b, j]
            i0 = min(max(int(math.floor(p)), 0), n_frames)
            frac = np.float32(min(max(p - i0, 0.0), 1.0))
            at, nxt = min(i0, n_frames - 1), min(i0 + 1, n_frames - 1)
            w0 = (one - frac) * np.float32(i0 < n_frames)
            w1 = frac * np.float32(i0 + 1 < n_frames)
            m0, m1 = mag[at], mag[nxt]
            for k in range(n_bins):
                om[k + 1] = m0[k] * w0 + m1[k] * w1
            if j == 0:
                ar[:] = ur[0]
                ai[:] = ui[0]
            else:  # advance by table[prev]: unit[0] or unit[prev] * conj(unit[prev - 1])
                r1, i1 = ur[prev], ui[prev]
                if prev == 0:
                    r0, i0_ = ones, zeros
                else:
                    r0, i0_ = ur[prev - 1], ui[prev - 1]
                for k in range(n_bins):
                    tr = r1[k] * r0[k] + i1[k] * i0_[k]
                    ti = i1[k] * r0[k] - r1[k] * i0_[k]
                    xr = ar[k] * tr - ai[k] * ti
                    ai[k] = ar[k] * ti + ai[k] * tr
                    ar[k] = xr
            prev = nxt
            o = out[b, j]
            if lock:
                ua, va = ur[at], ui[at]
                for k in range(n_bins):
                    rr[k] = ar[k] * ua[k] + ai[k] * va[k]
                    ri[k] = ai[k] * ua[k] - ar[k] * va[k]
                for k in range(n_bins):  # one step towards the louder neighbour
                    lo, c, hi = om[k], om[k + 1], om[k + 2]
                    src[k] = k + np.int64((hi > c) & (hi >= lo)) - np.int64((lo > c) & (lo > hi))
                for k in range(n_bins):
                    s = src[k]
                    g = om[k + 1]
                    o[k, 0] = (rr[s] * ua[k] - ri[s] * va[k]) * g
                    o[k, 1] = (rr[s] * va[k] + ri[s] * ua[k]) * g
            else:
                for k in range(n_bins):
                    o[k, 0] = ar[k] * om[k + 1]
                    o[k, 1] = ai[k] * om[k + 1]


def _cubic_read_rows(dense, step, out):  # pragma: no cover - compiled
    """``out[b, n] = Keys cubic of dense[b] at n * step[b]`` with zeros outside the row and
    from the last sample on; the arithmetic of :func:`aiaudio.augment.resample.resample`."""
    n_rows, n_dense = dense.shape
    length = out.shape[1]
    half, one_half = np.float32(0.5), np.float32(1.5)
    for b in range(n_rows):
        for n in range(length):
            pos = n * step[b]
            i0 = int(pos)
            if i0 >= n_dense - 1:
                out[b, n] = 0.0
                continue
            t = np.float32(pos - i0)
            p0 = dense[b, i0 - 1] if i0 >= 1 else np.float32(0.0)
            p1 = dense[b, i0]
            p2 = dense[b, i0 + 1]
            p3 = dense[b, i0 + 2] if i0 + 2 < n_dense else np.float32(0.0)
            c3 = half * (p3 - p0) + one_half * (p1 - p2)
            c2 = p0 - np.float32(2.5) * p1 + np.float32(2.0) * p2 - half * p3
            out[b, n] = ((c3 * t + c2) * t + half * (p2 - p0)) * t + p1


def _lowpass_rows(spec, keep, transition):  # pragma: no cover - compiled
    """Multiply ``spec`` (B, F, 2) in place by the half-cosine low-pass of
    :func:`aiaudio.augment.resample._lowpass_gain` (cutoff ``keep[b]`` of Nyquist)."""
    n_rows, n_bins, _ = spec.shape
    for b in range(n_rows):
        cut = np.float32(keep[b])
        if cut >= 1.0:
            continue
        width = max(np.float32(transition) * cut, np.float32(1e-9))
        for k in range(n_bins):
            f = np.float32(k) / np.float32(max(n_bins - 1, 1))  # torch.linspace(0, 1, n_bins)
            u = min(max((cut - f) / width, np.float32(0.0)), np.float32(1.0))
            if u < 1.0:
                g = np.float32(0.5) - np.float32(0.5) * np.float32(math.cos(math.pi * u))
                spec[b, k, 0] *= g
                spec[b, k, 1] *= g


def _overlap_add_rows(frames, out, window, envelope, hop, offset):  # pragma: no cover - compiled
    """``out[b, t] = sum_m frames[b, m, t + offset - m hop] window[.] / envelope[t + offset]``:
    the windowed overlap-add of :func:`aiaudio.augment.phase_vocoder.istft`."""
    n_rows, n_frames, n_fft = frames.shape
    length = out.shape[1]
    buf = np.empty((n_frames - 1) * hop + n_fft, np.float32)
    n = max(0, min(length, buf.shape[0] - offset))
    for b in range(n_rows):
        buf[:] = 0.0
        for m in range(n_frames):  # 1-D slices: contiguous loops the compiler vectorises
            seg = buf[m * hop:m * hop + n_fft]
            frame = frames[b, m]
            for i in range(n_fft):
                seg[i] += frame[i] * window[i]
        row = out[b]
        for t in range(n):
            row[t] = buf[t + offset] / envelope[t + offset]
        for t in range(n, length):
            row[t] = 0.0


_KERNELS = {"vocode": _vocode_rows, "cubic_read": _cubic_read_rows, "lowpass": _lowpass_rows,
            "overlap_add": _overlap_add_rows}


@lru_cache(maxsize=None)
def _compiled(name: str):
    """Kernel ``name`` compiled on first use (1-2 s), cached on disk where numba can write."""
    from numba import njit

    try:
        return njit(nogil=True, fastmath=_FLAGS, cache=True)(_KERNELS[name])
    except RuntimeError:  # no writable cache location: compile in memory each process
        return njit(nogil=True, fastmath=_FLAGS)(_KERNELS[name])


@lru_cache(maxsize=4)
def thread_pool(workers: int) -> ThreadPoolExecutor:
    """The process's pool of ``workers`` threads for CPU work on row blocks (shared by the
    kernels here and :mod:`aiaudio.augment.cpu_blocks`)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aiaudio-cpu")


# A forked child (e.g. a DataLoader worker) inherits the pool object but not its threads:
# forget it there, so the child starts its own instead of waiting on threads that do not exist.
os.register_at_fork(after_in_child=thread_pool.cache_clear)


def _run_rows(name: str, rows: list[np.ndarray], *shared) -> None:
    """Run kernel ``name`` on ``rows`` (arrays whose first axis is the batch) and ``shared``
    arguments, in contiguous row blocks over ``torch.get_num_threads()`` threads."""
    kernel = _compiled(name)
    n = rows[0].shape[0]
    workers = min(torch.get_num_threads(), n)
    if workers <= 1:
        kernel(*rows, *shared)
        return
    size = math.ceil(n / workers)
    pool = thread_pool(workers - 1)
    jobs = [pool.submit(kernel, *(a[lo:lo + size] for a in rows), *shared) for lo in range(size, n, size)]
    kernel(*(a[:size] for a in rows), *shared)  # the first block in this thread, the others in the pool
    for job in jobs:
        job.result()


def vocode(spec: Tensor, positions: Tensor, lock: bool, silent_ratio: float) -> Tensor:
    """Compiled :func:`aiaudio.augment.phase_vocoder.vocode_tensor` for complex64 on the CPU.

    Args:
        spec: ``(B, N, F)`` complex64 STFT, frames first.
        positions: ``(B, M)`` input frame positions of the output frames.
        lock: identity phase locking.
        silent_ratio: magnitude relative to the row's peak at or below which a bin's phase
            is ignored.

    Returns:
        ``(B, M, F)`` complex64.
    """
    spec_r = torch.view_as_real(spec.resolve_conj().contiguous()).numpy()
    pos = positions.detach().to(torch.float64).contiguous().numpy()
    out = torch.empty((spec.shape[0], pos.shape[1], spec.shape[2]), dtype=torch.complex64)
    _run_rows("vocode", [spec_r, pos, torch.view_as_real(out).numpy()], lock, np.float32(silent_ratio))
    return out


def cubic_read(dense: Tensor, step: Tensor, length: int) -> Tensor:
    """Keys cubic reads of ``dense`` (B, L) float32 at ``n * step`` (step (B,) float64) for
    ``n < length`` -> ``(B, length)``; zeros from position ``L - 1`` on."""
    out = torch.empty(dense.shape[0], length, dtype=torch.float32)
    _run_rows("cubic_read", [dense.contiguous().numpy(), step.to(torch.float64).contiguous().numpy(),
                             out.numpy()])
    return out


def lowpass_(spec: Tensor, keep_fraction: Tensor, transition: float) -> Tensor:
    """Apply the resampler's half-cosine low-pass in place to ``spec`` (B, F) complex64."""
    _run_rows("lowpass", [torch.view_as_real(spec).numpy(), keep_fraction.to(torch.float32).contiguous().numpy()],
              float(transition))
    return spec


def overlap_add(frames: Tensor, window: Tensor, envelope: Tensor, hop: int, offset: int, length: int) -> Tensor:
    """Windowed overlap-add of ``frames`` (B, M, n_fft) float32 at ``hop``, divided by
    ``envelope`` (the summed squared window), samples ``offset .. offset + length`` -> ``(B, length)``."""
    out = torch.empty(frames.shape[0], length, dtype=torch.float32)
    _run_rows("overlap_add", [frames.contiguous().numpy(), out.numpy()], window.contiguous().numpy(),
              envelope.contiguous().numpy(), int(hop), int(offset))
    return out
