"""Batched waveform augmentations that need no phase vocoder (fades, noise, mask, shift).

Every transform takes a batch ``wave`` of shape ``(B, T)`` (float, any device) and per-row
parameters of shape ``(B,)``, returns a new ``(B, T)`` tensor of the same dtype and device,
and never modifies its input. Nothing loops over rows in Python. Fractions are of the clip
length ``T``. Half-precision input is processed in float32 where arithmetic is needed.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

# Curvature of the logarithmic / exponential fade shapes: the curves are
# log1p(a u) / log1p(a) and expm1(u ln(1 + a)) / a, inverse functions of one another.
_FADE_CURVATURE = 99.0
# A time mask filled with noise gets white Gaussian noise of this RMS relative to the clip's
# own RMS (-40 dB); a silent clip gets zeros.
MASK_NOISE_LEVEL = 0.01


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype to compute in: float64 stays float64, everything else runs in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def same_device(a: torch.device, b: torch.device) -> bool:
    """Whether two devices are the same (``cuda`` and ``cuda:0`` count as one)."""
    a, b = torch.device(a), torch.device(b)
    return a.type == b.type and (a.index or 0) == (b.index or 0)


def _check_wave(wave: Tensor, where: str) -> None:
    if wave.dim() != 2 or not wave.is_floating_point():
        raise ValueError(f"{where}: wave must be a float (B, T) tensor, got {wave.dtype} {tuple(wave.shape)}")


def fade_curve(u: Tensor, shape: str) -> Tensor:
    """Fade-in gain for ramp positions ``u`` in [0, 1]: 0 at 0, 1 at 1, monotone increasing.

    Args:
        u: positions along the ramp, any shape.
        shape: ``linear``; ``logarithmic`` (fast rise, concave); ``exponential`` (slow rise,
            convex).
    """
    if shape == "linear":
        return u
    if shape == "logarithmic":
        return torch.log1p(_FADE_CURVATURE * u) / math.log1p(_FADE_CURVATURE)
    if shape == "exponential":
        return torch.expm1(u * math.log1p(_FADE_CURVATURE)) / _FADE_CURVATURE
    raise ValueError(f"fade: unknown shape {shape!r}; expected linear, logarithmic or exponential")


def fade(wave: Tensor, fraction: Tensor, shape: Tensor, shapes: Sequence[str], direction: str) -> Tensor:
    """Fade in or out over ``round(fraction * T)`` samples.

    The gain rises from exactly 0 at the clip edge to 1 at the end of the ramp and is exactly
    1 over the rest of the clip (a fade out is the mirror image at the end of the clip).

    Args:
        wave: ``(B, T)``.
        fraction: ``(B,)`` fade length as a fraction of ``T`` in [0, 1].
        shape: ``(B,)`` integer index into ``shapes``.
        shapes: shape names (see :func:`fade_curve`).
        direction: ``"in"`` or ``"out"``.

    Returns:
        ``(B, T)`` faded copy.
    """
    _check_wave(wave, "fade")
    if direction not in ("in", "out"):
        raise ValueError(f"fade: direction must be 'in' or 'out', got {direction!r}")
    n, t_len = wave.shape
    dev = wave.device
    length = torch.round(fraction.to(dev, torch.float64) * t_len).long().clamp(0, t_len)
    out = wave.clone()
    l_max = int(length.max()) if n else 0
    if l_max == 0:
        return out
    dtype = work_dtype(wave.dtype)
    pos = torch.arange(l_max, device=dev, dtype=dtype)
    u = (pos / length.clamp_min(1).to(dtype)[:, None]).clamp(max=1.0)  # (B, l_max)
    gain = torch.ones_like(u)
    shape = shape.to(dev)
    for k, name in enumerate(shapes):  # a few shape names, never the rows
        rows = (shape == k).nonzero().squeeze(1)
        if rows.numel():  # (index_select / index_copy_: several times faster than [rows] on a CPU)
            sub = u.index_select(0, rows)
            gain.index_copy_(0, rows, fade_curve(sub, name).masked_fill_(sub >= 1.0, 1.0))  # exactly 1 past the ramp
    gain = gain.to(wave.dtype)
    if direction == "in":
        out[:, :l_max] *= gain
    else:
        out[:, t_len - l_max:] *= gain.flip(1)
    return out


def _noise_spectrum(shape_bt: tuple[int, int], f_decay: Tensor, generator: torch.Generator,
                    dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """rFFT ``(B, T // 2 + 1)`` complex of coloured Gaussian noise and its mean square ``(B,)``.

    Each bin is a complex Gaussian times ``f ** (f_decay / 6.02)``; DC and (for even ``T``)
    Nyquist are zero, so by Parseval the waveform ``irfft(spec, n=T)`` has mean square
    ``2 sum |spec|^2 / T^2`` exactly.
    """
    n, t_len = shape_bt
    dev = generator.device
    n_bins = t_len // 2 + 1
    spec = torch.randn(n, n_bins, 2, generator=generator, device=dev, dtype=dtype)
    log_bins = torch.log(torch.arange(n_bins, device=dev, dtype=dtype).clamp_min(1.0))
    exponent = f_decay.to(dev, dtype) / (20.0 * math.log10(2.0))  # amplitude ~ f ** exponent
    weight = torch.exp(exponent[:, None] * log_bins[None, :])
    weight[:, 0] = 0.0
    if t_len % 2 == 0:
        weight[:, -1] = 0.0
    spec.mul_(weight[..., None])
    power = spec.square().sum(dim=(1, 2)).mul_(2.0 / float(t_len) ** 2)
    return torch.view_as_complex(spec), power


def coloured_noise(shape_bt: tuple[int, int], f_decay: Tensor, generator: torch.Generator,
                   dtype: torch.dtype = torch.float32) -> Tensor:
    """Zero-mean Gaussian noise whose spectrum falls by ``f_decay`` dB per octave, unit power per row.

    Built in the rFFT domain: a complex Gaussian per bin times ``f ** (f_decay / 6.02)`` (DC
    and Nyquist removed), scaled by Parseval to mean square exactly 1, then one inverse FFT.

    Args:
        shape_bt: ``(B, T)``.
        f_decay: ``(B,)`` slope in dB/octave (0 white, -3.01 pink, -6.02 brown).
        generator: draws the spectrum; its device is the output's device.
        dtype: float32 or float64.

    Returns:
        ``(B, T)`` noise with mean square 1 per row.
    """
    spec, power = _noise_spectrum(shape_bt, f_decay, generator, dtype)
    spec.mul_(torch.rsqrt(power.clamp_min(torch.finfo(dtype).tiny))[:, None])
    return torch.fft.irfft(spec, n=shape_bt[1], dim=1)


def add_coloured_noise(wave: Tensor, snr_db: Tensor, f_decay: Tensor, generator: torch.Generator) -> Tensor:
    """Add coloured noise at a per-row signal-to-noise ratio relative to the clip's own power.

    The noise (see :func:`coloured_noise`) is scaled so that
    ``10 log10(mean(wave^2) / mean(noise^2)) == snr_db`` for every row (exactly, up to
    rounding). A silent row (power 0) gets noise of power 0, i.e. comes back unchanged.

    Args:
        wave: ``(B, T)``.
        snr_db: ``(B,)`` target SNR in dB.
        f_decay: ``(B,)`` spectral slope in dB/octave (see :func:`coloured_noise`).
        generator: on ``wave.device``; draws the noise samples.

    Returns:
        ``(B, T)`` noisy copy.
    """
    _check_wave(wave, "add_coloured_noise")
    if not same_device(generator.device, wave.device):
        raise ValueError(f"add_coloured_noise: generator is on {generator.device}, wave on {wave.device}")
    if wave.numel() == 0:
        return wave.clone()
    dtype = work_dtype(wave.dtype)
    x = wave.to(dtype)
    spec, noise_power = _noise_spectrum(tuple(wave.shape), f_decay, generator, dtype)
    signal_power = torch.linalg.vector_norm(x, dim=1).square_().div_(x.shape[1])
    target = signal_power * torch.pow(10.0, -snr_db.to(wave.device, dtype) / 10.0)
    spec.mul_(torch.sqrt(target / noise_power.clamp_min(torch.finfo(dtype).tiny))[:, None])
    return torch.fft.irfft(spec, n=wave.shape[1], dim=1).add_(x).to(wave.dtype)


def time_mask(wave: Tensor, start: Tensor, fraction: Tensor, fill: str = "zero",
              generator: torch.Generator | None = None) -> Tensor:
    """Replace one span ``[floor(start T), floor(start T) + floor(fraction T))`` per row.

    Args:
        wave: ``(B, T)``.
        start: ``(B,)`` span start as a fraction of ``T``.
        fraction: ``(B,)`` span length as a fraction of ``T`` (the span is cut at the clip end).
        fill: ``"zero"`` or ``"noise"``: white Gaussian noise with RMS ``MASK_NOISE_LEVEL``
            (0.01, -40 dB) times the row's RMS.
        generator: on ``wave.device``; required for ``fill="noise"``.

    Returns:
        ``(B, T)`` masked copy.
    """
    _check_wave(wave, "time_mask")
    if fill not in ("zero", "noise"):
        raise ValueError(f"time_mask: fill must be 'zero' or 'noise', got {fill!r}")
    n, t_len = wave.shape
    dev = wave.device
    s = torch.floor(start.to(dev, torch.float64) * t_len).long().clamp(0, t_len)
    length = torch.floor(fraction.to(dev, torch.float64) * t_len).long().clamp(min=0)
    length = torch.minimum(length, t_len - s)
    out = wave.clone()
    l_max = int(length.max()) if n else 0
    if l_max == 0:
        return out
    offsets = torch.arange(l_max, device=dev)
    index = (s[:, None] + offsets) % t_len  # distinct positions per row; wrapped ones are outside the span
    inside = offsets[None, :] < length[:, None]  # (B, l_max)
    if fill == "zero":
        values = torch.zeros((), dtype=wave.dtype, device=dev)
    else:
        if generator is None or not same_device(generator.device, dev):
            raise ValueError(f"time_mask: fill='noise' needs a generator on {dev}")
        rms = wave.to(work_dtype(wave.dtype)).square().mean(dim=1, keepdim=True).sqrt()
        values = (torch.randn(n, l_max, generator=generator, device=dev, dtype=rms.dtype)
                  * (MASK_NOISE_LEVEL * rms)).to(wave.dtype)
    out.scatter_(1, index, torch.where(inside, values, wave.gather(1, index)))
    return out


def time_shift(wave: Tensor, fraction: Tensor) -> Tensor:
    """Roll each row by ``round(fraction * T)`` samples with roll-over (positive: later).

    Row ``b`` equals ``torch.roll(wave[b], round(fraction[b] * T))``.

    Args:
        wave: ``(B, T)``.
        fraction: ``(B,)`` signed shift as a fraction of ``T``.

    Returns:
        ``(B, T)`` shifted copy.
    """
    _check_wave(wave, "time_shift")
    n, t_len = wave.shape
    if n == 0 or t_len == 0:
        return wave.clone()
    shift = torch.round(fraction.to(wave.device, torch.float64) * t_len).long()
    offset = (-shift) % t_len  # out[t] = doubled[offset + t]
    windows = torch.cat([wave, wave], dim=1).unfold(1, t_len, 1)  # (B, T + 1, T) view, no copy
    return windows[torch.arange(n, device=wave.device), offset]
