"""Batched time stretch and pitch shift with a phase vocoder.

Both public functions take ``wave`` of shape ``(B, T)`` and a per-row parameter of shape
``(B,)`` and return a new ``(B, T)`` tensor of the same dtype and device. The STFT uses a
periodic Hann window, ``center=True`` and zero padding. Output frame ``j`` of a stretch by
``rate`` reads input position ``j * rate``: magnitudes are interpolated linearly between the
two neighbouring input frames and phases accumulate the input's frame-to-frame phase
advance. With identity phase locking each bin keeps, in every output frame, its input phase
offset to its louder neighbour (one step towards the local spectral peak), so partials stay
coherent and a stretched tone keeps its loudness; a rate of 1 reproduces the input up to
rounding.

Rows are sorted by their parameter and processed in a few groups (``STRETCH_GROUPS``, more
only when ``MAX_CELLS`` needs smaller groups to bound memory; a group holds at least one
row), so each group computes only the frames its own rows can reach.

For float32 on the CPU, :func:`vocode` and the overlap-add of :func:`istft` run as compiled
kernels (:mod:`aiaudio.augment.cpu_kernels`); the tensor code here is their specification.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from aiaudio.augment import cpu_kernels
from aiaudio.augment.ops import work_dtype
from aiaudio.augment.resample import resample

# Magnitude (relative to a row's loudest STFT bin) at or below which a bin's phase is ignored,
# per compute dtype: -200 dB in float64, -120 dB in float32; far below audibility and above
# the rounding noise of the STFT.
SILENT_RATIO = {torch.float64: 1e-10, torch.float32: 1e-6}
# Upper bound on rows x frames x bins computed at once (about 16 MB per float32 tensor).
MAX_CELLS = 1 << 20
# Rows sorted by their rate are split into this many groups (fewer when B is smaller).
STRETCH_GROUPS = 4


def _check(wave: Tensor, values: Tensor, n_fft: int, hop: int, where: str) -> None:
    if wave.dim() != 2 or not wave.is_floating_point():
        raise ValueError(f"{where}: wave must be a float (B, T) tensor, got {wave.dtype} {tuple(wave.shape)}")
    if values.shape != (wave.shape[0],):
        raise ValueError(f"{where}: expected ({wave.shape[0]},) parameters, got {tuple(values.shape)}")
    if hop <= 0 or n_fft < 2 * hop:
        raise ValueError(f"{where}: need n_fft >= 2 * hop > 0, got n_fft={n_fft}, hop={hop}")


@lru_cache(maxsize=16)
def hann_window(n_fft: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Cached periodic Hann window of shape ``(n_fft,)``."""
    return torch.hann_window(n_fft, periodic=True, device=device, dtype=dtype)


@lru_cache(maxsize=32)
def _ola_envelope(n_fft: int, hop: int, n_frames: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Overlap-added squared window of ``n_frames`` frames, ``((n_frames - 1) * hop + n_fft,)``;
    positions no frame covers hold 1 so dividing by it is safe."""
    sq = torch.hann_window(n_fft, periodic=True, dtype=torch.float64).square()
    env = torch.zeros((n_frames - 1) * hop + n_fft, dtype=torch.float64)  # on the CPU: deterministic
    starts = torch.arange(n_frames)[:, None] * hop + torch.arange(n_fft)
    env.index_add_(0, starts.reshape(-1), sq.expand(n_frames, n_fft).reshape(-1))
    return torch.where(env > 1e-10, env, 1.0).to(device, dtype)


def stft(x: Tensor, n_fft: int, hop: int) -> Tensor:
    """``(B, L)`` real -> ``(B, 1 + L // hop, n_fft // 2 + 1)`` complex, frames first."""
    window = hann_window(n_fft, x.device, x.dtype)
    frames = F.pad(x, (n_fft // 2, n_fft // 2)).unfold(1, n_fft, hop) * window  # (B, N, n_fft)
    return torch.fft.rfft(frames, dim=2)  # torch.stft(center=True) framing, frames first, one copy


def istft(spec: Tensor, n_fft: int, hop: int, length: int) -> Tensor:
    """Inverse of :func:`stft`: ``(B, M, F)`` complex -> ``(B, length)`` (zeros past frame M)."""
    n, m_frames, _ = spec.shape
    window = hann_window(n_fft, spec.device, spec.real.dtype)
    if cpu_kernels.enabled(spec):
        envelope = _ola_envelope(n_fft, hop, m_frames, spec.device, window.dtype)
        return cpu_kernels.overlap_add(torch.fft.irfft(spec, n=n_fft, dim=2), window, envelope, hop, n_fft // 2, length)
    frames = torch.fft.irfft(spec, n=n_fft, dim=2).mul_(window)  # (B, M, n_fft)
    if n_fft % hop:
        total = (m_frames - 1) * hop + n_fft
        starts = torch.arange(m_frames, device=spec.device)[:, None] * hop + torch.arange(n_fft, device=spec.device)
        buf = frames.new_zeros(n, total).index_add_(1, starts.reshape(-1), frames.reshape(n, -1))
    else:
        overlap = n_fft // hop
        blocks = frames.view(n, m_frames, overlap, hop)
        buf = frames.new_zeros(n, m_frames + overlap - 1, hop)
        for r in range(overlap):  # overlap-add as n_fft / hop shifted sums (4 for the defaults)
            buf[:, r:r + m_frames] += blocks[:, :, r]
        buf = buf.view(n, -1)
    y = (buf / _ola_envelope(n_fft, hop, m_frames, spec.device, frames.dtype))[:, n_fft // 2:n_fft // 2 + length]
    return F.pad(y, (0, length - y.shape[1])) if y.shape[1] < length else y


def _from_louder_neighbour(values: Tensor, mag: Tensor) -> Tensor:
    """Take each bin's value from its louder neighbour (one step uphill in ``mag``), if any.

    A bin moves to the larger of its two neighbours when that neighbour is louder than the
    bin itself; with a Hann window this reaches the peak bin from anywhere in its main lobe.

    Args:
        values, mag: ``(..., F)``.

    Returns:
        ``(..., F)``.
    """
    lo, hi = mag[..., :-1], mag[..., 1:]
    up = hi > lo  # [k]: bin k + 1 louder than bin k
    up[..., 1:] &= hi[..., 1:] >= lo[..., :-1]  # ... and not quieter than bin k - 1
    down = lo > hi  # [k - 1]: bin k - 1 louder than bin k
    down[..., :-1] &= lo[..., :-1] > hi[..., 1:]  # ... and louder than bin k + 1
    src = torch.arange(mag.shape[-1], device=mag.device).expand(mag.shape).clone()
    src[..., :-1] += up
    src[..., 1:] -= down.long()  # up and down exclude each other
    return values.gather(-1, src)


def vocode(spec: Tensor, positions: Tensor, lock: bool = True) -> Tensor:
    """:func:`vocode_tensor`, run by the compiled kernel of :mod:`aiaudio.augment.cpu_kernels`
    for complex64 on the CPU (same arithmetic, about 12x faster there). Shapes as there."""
    if cpu_kernels.enabled(spec):
        return cpu_kernels.vocode(spec, positions, lock, SILENT_RATIO[torch.float32])
    return vocode_tensor(spec, positions, lock)


def vocode_tensor(spec: Tensor, positions: Tensor, lock: bool = True) -> Tensor:
    """Read STFT frames at fractional positions with phase accumulation (tensor code, any device).

    Phases are carried as unit phasors (no angle, cos or sin): the phase advance from input
    frame ``i`` to ``i + 1`` is ``u[i + 1] * conj(u[i])`` and output phasors are cumulative
    products of the advances read along the positions. Bins of zero magnitude get phasor 1.

    Args:
        spec: ``(B, N, F)`` complex STFT (frames first).
        positions: ``(B, M)`` non-decreasing, non-negative input frame positions of the
            output frames; positions past the last input frame give silence.
        lock: identity phase locking (see the module docstring).

    Returns:
        ``(B, M, F)`` complex.
    """
    n, n_frames, n_bins = spec.shape
    rows = torch.arange(n, device=spec.device)[:, None]
    mag = spec.abs()
    # Bins below SILENT_DB of the row's loudest bin count as silent (phasor 1): their phase is
    # rounding noise, and accumulating it would make a row's output depend on last-bit
    # differences of its STFT (which vary with the batch it was computed in).
    floor = mag.amax(dim=(1, 2), keepdim=True) * SILENT_RATIO.get(mag.dtype, 1e-6)
    silent = mag <= floor
    unit = torch.where(silent, torch.ones_like(spec), spec * mag.clamp_min(torch.finfo(mag.dtype).tiny).reciprocal())
    # table[0] = phasor of frame 0, table[i + 1] = phase advance from input frame i to i + 1.
    table = torch.empty_like(unit)
    table[:, 0] = unit[:, 0]
    torch.mul(unit[:, 1:], unit[:, :-1].conj(), out=table[:, 1:])
    i0 = torch.floor(positions).long().clamp(0, n_frames)
    frac = (positions - i0.to(positions.dtype)).clamp(0.0, 1.0).to(mag.dtype)
    at = i0.clamp(max=n_frames - 1)
    nxt = (i0 + 1).clamp(max=n_frames - 1)
    out_mag = mag[rows, at] * ((1.0 - frac) * (i0 < n_frames))[..., None]
    out_mag += mag[rows, nxt] * (frac * (i0 + 1 < n_frames))[..., None]  # (B, M, F)
    step = torch.cat([i0.new_zeros(n, 1), nxt[:, :-1]], dim=1)
    out = torch.cumprod(table[rows, step], dim=1)  # plain phase-vocoder phasors
    if lock:
        unit_at = unit[rows, at]
        out = _from_louder_neighbour(out.mul_(unit_at.conj()), out_mag).mul_(unit_at)
    return out.mul_(out_mag)


def _stretch(x: Tensor, rate: Tensor, out_len: int, n_fft: int, hop: int, lock: bool) -> Tensor:
    """Stretch rows ``(b, L)`` by ``rate`` ``(b,)`` float64 -> ``(b, out_len)``, computing only
    the input and output frames the group's rates can reach."""
    in_len = min(x.shape[1], math.ceil(out_len * float(rate.max())) + n_fft)
    spec = stft(x[:, :in_len], n_fft, hop)
    n_out = min(1 + math.ceil(out_len / hop), math.ceil((spec.shape[1] + 1) / float(rate.min())) + 1)
    pos = torch.arange(n_out, device=x.device, dtype=torch.float64)[None, :] * rate[:, None]
    return istft(vocode(spec, pos, lock), n_fft, hop, out_len)


def _grouped(values: Tensor, frames_per_row: Callable[[Tensor], float], n_bins: int,
             run: Callable[[Tensor, Tensor], Tensor], out: Tensor) -> Tensor:
    """Sort rows by ``values`` (B,), split them into groups and write ``run(rows, values)``
    (each ``(b, T)``) into ``out`` (B, T) at those rows."""
    order = torch.argsort(values)
    n = values.shape[0]
    chunk = max(1, math.ceil(n / STRETCH_GROUPS))
    lo = 0
    while lo < n:  # a few groups of rows, never one iteration per row unless B is tiny
        size = min(chunk, max(1, int(MAX_CELLS // (frames_per_row(values[order[lo:lo + chunk]]) * n_bins))))
        idx = order[lo:lo + size]
        out.index_copy_(0, idx, run(idx, values[idx]))  # (index_put is several times slower)
        lo += size
    return out


def time_stretch(wave: Tensor, rate: Tensor, n_fft: int = 512, hop: int = 256, lock: bool = True) -> Tensor:
    """Change speed by ``rate`` per row (> 1 faster and shorter), keeping pitch.

    The result is cropped or zero-padded back to ``T``: content of a row with rate ``r``
    lasts ``T / r`` samples, followed by silence when ``r > 1``.

    Args:
        wave: ``(B, T)``.
        rate: ``(B,)`` positive rates.
        n_fft, hop: STFT settings (``n_fft >= 2 * hop``).
        lock: identity phase locking.

    Returns:
        ``(B, T)``.
    """
    _check(wave, rate, n_fft, hop, "time_stretch")
    if not bool((rate > 0).all()):
        raise ValueError(f"time_stretch: rates must be positive, got min {float(rate.min())}")
    n, t_len = wave.shape
    x = wave.to(work_dtype(wave.dtype))
    if n == 0 or t_len == 0:
        return wave.clone()
    out = torch.empty_like(x)
    frames = 1 + t_len / hop
    _grouped(rate.to(wave.device, torch.float64), lambda r: frames * (1 + min(1.0, float(r.max()))),
             n_fft // 2 + 1, lambda idx, r: _stretch(x.index_select(0, idx), r, t_len, n_fft, hop, lock), out)
    return out.to(wave.dtype)


def _pitch_rows(x: Tensor, ratio: Tensor, n_fft: int, hop: int, lock: bool) -> Tensor:
    """Pitch-shift rows ``(b, T)`` whose ratios ``(b,)`` are all >= 1 or all < 1."""
    t_len = x.shape[1]
    if float(ratio.min()) >= 1.0:  # shorten first (band-limited against aliasing), then stretch back
        short = resample(x, ratio, math.ceil(t_len / float(ratio.min())) + 2, keep_fraction=1.0 / ratio)
        return _stretch(short, 1.0 / ratio, t_len, n_fft, hop, lock)
    long = _stretch(x, 1.0 / ratio, math.ceil(t_len * float(ratio.max())) + 2, n_fft, hop, lock)
    return resample(long, ratio, t_len)


def pitch_shift(wave: Tensor, semitones: Tensor, n_fft: int = 512, hop: int = 256, lock: bool = True) -> Tensor:
    """Shift pitch by ``semitones`` per row, keeping duration.

    With ``r = 2 ** (semitones / 12)`` each row becomes ``y[n] = z[n * r]`` where ``z`` is the
    row time-stretched to ``r`` times its duration. For ``r >= 1`` the row is low-passed at
    ``Nyquist / r`` (against aliasing) and resampled first, then stretched back to ``T``
    samples; for ``r < 1`` it is stretched first and then resampled. Either way the vocoder
    never produces more than ``T`` samples per row. Resampling is FFT oversampling followed
    by linear interpolation (:func:`aiaudio.augment.resample.resample`).

    Args:
        wave: ``(B, T)``.
        semitones: ``(B,)``.
        n_fft, hop: STFT settings (``n_fft >= 2 * hop``).
        lock: identity phase locking.

    Returns:
        ``(B, T)``.
    """
    _check(wave, semitones, n_fft, hop, "pitch_shift")
    n, t_len = wave.shape
    x = wave.to(work_dtype(wave.dtype))
    if n == 0 or t_len == 0:
        return wave.clone()
    ratio = torch.pow(2.0, semitones.to(wave.device, torch.float64) / 12.0)
    out = torch.empty_like(x)
    frames = 1 + t_len / hop
    for up in (True, False):  # two paths (ratio >= 1 or < 1), each in sorted groups
        idx = ((ratio >= 1.0) == up).nonzero().squeeze(1)
        if idx.numel():
            sub = x.index_select(0, idx)
            part = _grouped(ratio[idx], lambda r: 2.0 * frames, n_fft // 2 + 1,
                            lambda rows, r: _pitch_rows(sub.index_select(0, rows), r, n_fft, hop, lock),
                            torch.empty_like(sub))
            out.index_copy_(0, idx, part)
    return out.to(wave.dtype)
