"""Batched low-pass filtering and resampling by per-row ratios (used by the pitch shift).

Shapes follow ``aiaudio.augment.ops``: ``wave`` is ``(B, T)``, parameters are ``(B,)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from aiaudio.augment import cpu_kernels
from aiaudio.augment.ops import _check_wave, work_dtype


def _lowpass_gain(n_bins: int, keep_fraction: Tensor, transition: float, dtype: torch.dtype) -> Tensor:
    """``(B, n_bins)`` rFFT gains: 1 below ``(1 - transition) * cutoff``, a half-cosine down
    to 0 at the cutoff (``keep_fraction`` of Nyquist), 0 above; all ones where it is >= 1."""
    freq = torch.linspace(0.0, 1.0, n_bins, device=keep_fraction.device, dtype=dtype)
    cut = keep_fraction.to(dtype)[:, None]
    u = ((cut - freq[None, :]) / (transition * cut).clamp_min(1e-9)).clamp(0.0, 1.0)
    return torch.where(cut >= 1.0, torch.ones_like(u), 0.5 - 0.5 * torch.cos(math.pi * u))


def lowpass(wave: Tensor, keep_fraction: Tensor, transition: float = 0.05) -> Tensor:
    """Zero-phase low-pass in the rFFT domain, cutting at ``keep_fraction`` of Nyquist.

    Args:
        wave: ``(B, T)``.
        keep_fraction: ``(B,)`` cutoff as a fraction of Nyquist; rows with a value >= 1 pass
            unchanged (up to rounding).
        transition: width of the half-cosine roll-off below the cutoff, as a fraction of it.

    Returns:
        ``(B, T)`` filtered copy.
    """
    _check_wave(wave, "lowpass")
    spec = torch.fft.rfft(wave.to(work_dtype(wave.dtype)), dim=1)
    gain = _lowpass_gain(spec.shape[1], keep_fraction.to(wave.device), transition, spec.real.dtype)
    return torch.fft.irfft(spec * gain, n=wave.shape[1], dim=1).to(wave.dtype)


def fft_size(n: int) -> int:
    """The smallest ``m >= n`` with no prime factor above 5 (fast FFT lengths)."""
    m = max(1, n)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def _keys_cubic(p: Tensor, frac: Tensor) -> Tensor:
    """Keys cubic (a = -0.5) interpolation: ``p`` ``(4, b, n)`` samples at offsets -1..2 of
    each point, ``frac`` ``(b, n)`` in [0, 1) -> ``(b, n)``."""
    d1 = p[2] - p[0]
    d2 = p[1] - p[2]
    c3 = 0.5 * (p[3] - p[0]) + 1.5 * d2
    c2 = p[0] - 2.5 * p[1] + 2.0 * p[2] - 0.5 * p[3]
    return ((c3 * frac + c2) * frac + 0.5 * d1) * frac + p[1]


def _oversampled(spec: Tensor, fft_len: int, t_len: int, oversample: int) -> Tensor:
    """The first ``t_len * oversample`` samples of the band-limited signal with rFFT ``spec``
    (of an ``fft_len``-point transform) at ``oversample`` times its rate, ``(B, t_len * os)``.

    Phase ``q`` of the oversampled signal (samples ``q, q + os, ...``) is the signal delayed
    by ``q / os`` of a sample: one ``fft_len``-point inverse transform of ``spec`` times a
    linear phase each, instead of one ``os``-times longer transform (cheaper on a CPU, and
    exactly the same signal).
    """
    k = torch.arange(spec.shape[1], device=spec.device, dtype=spec.real.dtype)
    out = spec.real.new_empty(spec.shape[0], t_len, oversample)
    for q in range(oversample):
        delay = k * (2.0 * math.pi * q / (oversample * fft_len))  # q / os of a sample, per bin
        delayed = spec if q == 0 else spec * torch.polar(torch.ones_like(k), delay)
        out[:, :, q] = torch.fft.irfft(delayed, n=fft_len, dim=1)[:, :t_len]  # (strided copies: stack is slower)
    return out.view(spec.shape[0], t_len * oversample)


def resample(wave: Tensor, ratio: Tensor, length: int, keep_fraction: Tensor | None = None,
             oversample: int = 2, transition: float = 0.05) -> Tensor:
    """Read each row at ``n * ratio`` for ``n < length``: ``out[b, n] = wave[b](n * ratio[b])``.

    The row is optionally low-passed (see :func:`lowpass`), band-limited-interpolated to
    ``oversample`` times its rate from one FFT (the low-pass is applied to that spectrum),
    then read by Keys cubic interpolation, which on the 2x-oversampled signal keeps the level
    within about 0.2 dB up to 0.75 Nyquist. Positions past the end of the row read zeros.
    For float32 on the CPU the low-pass and the reads run as compiled kernels
    (:mod:`aiaudio.augment.cpu_kernels`).

    Args:
        wave: ``(B, L)``.
        ratio: ``(B,)`` positive reading speeds (> 1 shortens, and needs
            ``keep_fraction <= 1 / ratio`` to avoid aliasing).
        length: output length.
        keep_fraction: optional ``(B,)`` low-pass cutoff as a fraction of Nyquist.
        oversample: interpolation factor of the FFT step.
        transition: roll-off width of the low-pass (fraction of its cutoff).

    Returns:
        ``(B, length)``, same dtype as ``wave``.
    """
    _check_wave(wave, "resample")
    n, t_len = wave.shape
    dev = wave.device
    dtype = work_dtype(wave.dtype)
    fft_len = fft_size(t_len)  # zero-padded to a fast length
    spec = torch.fft.rfft(wave.to(dtype), n=fft_len, dim=1)
    compiled = cpu_kernels.enabled(spec)
    if keep_fraction is not None:
        if compiled:
            cpu_kernels.lowpass_(spec, keep_fraction, transition)
        else:
            spec *= _lowpass_gain(spec.shape[1], keep_fraction.to(dev), transition, dtype)
    if fft_len % 2 == 0:
        spec[:, -1] = 0.0  # the old Nyquist bin has no well-defined interpolation
    dense_len = t_len * oversample
    dense = _oversampled(spec, fft_len, t_len, oversample)  # (B, L * os)
    if compiled:  # the same reads in one compiled pass
        return cpu_kernels.cubic_read(dense, ratio.to(torch.float64) * oversample, length).to(wave.dtype)
    dense = F.pad(dense, (1, 3))  # index i + 1 holds dense[i]; zeros around the ends
    pos = torch.arange(length, device=dev, dtype=torch.float64)[None, :] * (ratio.to(dev, torch.float64) * oversample)[:, None]
    i0 = pos.to(torch.int64)  # positions are >= 0: truncation is floor
    frac = pos.sub_(i0).to(dtype)
    inside = i0 < dense_len - 1  # the last sample and beyond read zeros (one sample early)
    i0.clamp_(max=dense_len - 1)
    taps = torch.stack([dense.gather(1, i0 + k) for k in range(4)])  # dense[i0 - 1 .. i0 + 2]
    return _keys_cubic(taps, frac).mul_(inside).to(wave.dtype)
