"""Reference backend: the seven augmentations applied clip by clip with audiomentations.

``AudiomentationsAugmenter`` has the same interface as the batched backend
(``aiaudio.augment.batched.BatchedAugmenter``) and consumes the same parameters
(:func:`aiaudio.augment.sampling.sample_params`), so the same generator seed gives the same
augmentation parameters on both. It is slow (per clip, CPU, numpy) and exists to check the
batched backend against a well-known library.

Implementation notes (audiomentations 0.43.1):

* Each transform is built with ``min == max ==`` the sampled value and ``p=1.0``; its
  ``parameters`` are then set directly and frozen, so the library never touches Python's
  global ``random`` module and the mask position can be placed exactly.
* ``PitchShift`` and ``TimeStretch`` use ``method="signalsmith_stretch"`` (the library's
  default: fast, high quality); ``TimeStretch`` keeps the clip length (crop or zero-pad).
* ``AddColorNoise`` draws its noise from numpy's *global* RNG. Before each call the global
  state is saved, seeded from a per-clip seed drawn from the call's generator, and restored
  afterwards, so results are reproducible and no state leaks (not thread-safe: do not run
  two reference augmenters in threads of one process at once).
* The library has no fade; :func:`fade_gains` implements it (shapes in :func:`fade_curve`).
* ``TimeMask`` zeroes ``int(fraction * T)`` samples from ``int(start * T)``. With
  ``time_mask.fill == "noise"`` the segment is instead filled with white Gaussian noise whose
  standard deviation is ``MASK_NOISE_LEVEL`` (shared with the batched ops) times the clip's
  RMS just before masking (numpy, seeded per clip).
* ``Shift`` rolls by ``round(fraction * T)`` samples (positive = content later), no fade.
"""
from __future__ import annotations

import numpy as np
import torch
from audiomentations import AddColorNoise, PitchShift, Shift, TimeMask, TimeStretch
from audiomentations.core.utils import calculate_desired_noise_rms, calculate_rms

from aiaudio.augment.config import AugmentConfig
from aiaudio.augment.ops import MASK_NOISE_LEVEL
from aiaudio.augment.ops import fade_curve as batched_fade_curve
from aiaudio.augment.sampling import Params, sample_params
from aiaudio.space import AUDIO_AUGMENTATIONS

# audiomentations' own limits on the transform arguments.
_SEMITONE_LIMIT = 24.0
_RATE_LIMITS = (0.1, 10.0)


def fade_curve(x: np.ndarray, shape: str) -> np.ndarray:
    """Fade-in gain at positions ``x`` in ``[0, 1]`` (float64 numpy, any shape).

    The shapes are defined once, in :func:`aiaudio.augment.ops.fade_curve`, so the two
    backends cannot drift apart.
    """
    return batched_fade_curve(torch.from_numpy(np.asarray(x, dtype=np.float64)), shape).numpy()


def fade_gains(num_samples: int, fraction: float, shape: str, kind: str) -> np.ndarray:
    """Per-sample gain of a fade over ``L = round(fraction * num_samples)`` samples.

    Fade-in: sample ``i < L`` gets ``fade_curve(i / L)`` (so sample 0 is silent) and the rest
    gain 1. Fade-out is the mirror image: sample ``T - 1 - i`` gets ``fade_curve(i / L)``.
    ``L = 0`` leaves the clip unchanged.

    Args:
        num_samples: clip length ``T``.
        fraction: fade length as a fraction of the clip, in ``[0, 1]``.
        shape: one of ``aiaudio.augment.config.FADE_SHAPES``.
        kind: ``"in"`` or ``"out"``.

    Returns:
        float32 array of shape ``(T,)``.
    """
    if kind not in ("in", "out"):
        raise ValueError(f"fade kind must be 'in' or 'out', got {kind!r}")
    length = min(int(round(fraction * num_samples)), num_samples)
    gains = np.ones(num_samples, dtype=np.float64)
    if length > 0:
        ramp = fade_curve(np.arange(length) / length, shape)
        if kind == "in":
            gains[:length] = ramp
        else:
            gains[num_samples - length:] = ramp[::-1]
    return gains.astype(np.float32)


def _frozen(transform, **parameters):
    """Fix a transform's parameters so calling it applies exactly these values."""
    transform.parameters = {"should_apply": True, **parameters}
    transform.freeze_parameters()
    return transform


def _add_color_noise(clip: np.ndarray, snr_db: float, f_decay: float, sr: int, seed: int) -> np.ndarray:
    noise = AddColorNoise(min_snr_db=snr_db, max_snr_db=snr_db, min_f_decay=f_decay,
                          max_f_decay=f_decay, p=1.0)
    rms = calculate_desired_noise_rms(calculate_rms(clip), snr_db)
    _frozen(noise, desired_noise_rms=float(rms), f_decay=f_decay, apply_a_weighting=False)
    saved = np.random.get_state()
    try:
        np.random.seed(seed)
        return noise(clip, sr)
    finally:
        np.random.set_state(saved)


class AudiomentationsAugmenter:
    """Per-clip CPU augmentation with audiomentations (the reference backend).

    Args:
        config: ranges, probabilities and fade shapes of the seven augmentations.
        sample_rate: sample rate of the waveforms in Hz.

    Raises:
        ValueError: a configured range lies outside what audiomentations accepts.
    """

    def __init__(self, config: AugmentConfig, sample_rate: int = 16000) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        ps, ts = config.pitch_shift, config.time_stretch
        if max(abs(ps.min_semitones), abs(ps.max_semitones)) > _SEMITONE_LIMIT:
            raise ValueError(f"pitch_shift: semitones [{ps.min_semitones}, {ps.max_semitones}] exceed "
                             f"the audiomentations limit of +-{_SEMITONE_LIMIT}")
        if ts.min_rate < _RATE_LIMITS[0] or ts.max_rate > _RATE_LIMITS[1]:
            raise ValueError(f"time_stretch: rates [{ts.min_rate}, {ts.max_rate}] lie outside the "
                             f"audiomentations limits {list(_RATE_LIMITS)}")
        self.config = config
        self.sample_rate = int(sample_rate)

    def __call__(self, wave: torch.Tensor, active: torch.Tensor, generator: torch.Generator,
                 return_params: bool = False) -> torch.Tensor | tuple[torch.Tensor, Params]:
        """Sample parameters and augment a batch.

        Args:
            wave: ``(B, T)`` float waveforms.
            active: ``(B, 7)`` bool, which augmentations each clip may use
                (``AUDIO_AUGMENTATIONS`` order), or ``(7,)`` shared by the batch.
            generator: CPU generator; parameters come from :func:`sample_params`, then one
                more draw seeds the noise.
            return_params: also return the parameters.

        Returns:
            ``(B, T)`` augmented waveforms (same device and dtype as ``wave``), and the
            parameters if ``return_params``.
        """
        active = torch.as_tensor(active)
        if active.dim() == 1:
            active = active.expand(wave.shape[0], -1)
        params = sample_params(self.config, active.bool(), generator)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        noise_gen = torch.Generator().manual_seed(seed)
        out = self.apply(wave, params, noise_gen)
        return (out, params) if return_params else out

    def apply(self, wave: torch.Tensor, params: Params, generator: torch.Generator | None = None) -> torch.Tensor:
        """Apply given parameters, clip by clip, in ``AUDIO_AUGMENTATIONS`` order.

        Args:
            wave: ``(B, T)`` float waveforms.
            params: output of :func:`sample_params` for this batch; only entries whose
                ``applied`` flag is True act.
            generator: seeds the noise (one seed per clip is drawn from it); ``None`` seeds
                it from the parameter values (``batched.params_seed``), as the batched
                backend does, so the output is a deterministic function of ``wave`` and
                ``params``.

        Returns:
            ``(B, T)`` tensor on ``wave``'s device with ``wave``'s dtype.
        """
        if wave.dim() != 2 or not wave.is_floating_point():
            raise ValueError(f"wave must be a (B, T) float tensor, got shape {tuple(wave.shape)} "
                             f"and dtype {wave.dtype}")
        batch = wave.shape[0]
        for name in AUDIO_AUGMENTATIONS:
            if name not in params or params[name]["applied"].shape != (batch,):
                raise ValueError(f"params must hold {name!r} with (B,) = ({batch},) entries")
        if generator is None:
            from aiaudio.augment.batched import params_seed  # same rule as the batched backend
            generator = torch.Generator().manual_seed(params_seed(params))
        seeds = torch.randint(0, 2**32, (batch,), generator=generator, device=generator.device).tolist()
        host = {n: {k: v.detach().cpu().tolist() for k, v in p.items()} for n, p in params.items()}
        clips = wave.detach().to("cpu", torch.float32).numpy()
        out = np.stack([self._clip(clips[b].copy(), host, b, seeds[b]) for b in range(batch)])
        return torch.from_numpy(out).to(device=wave.device, dtype=wave.dtype)

    def _clip(self, x: np.ndarray, params: dict, b: int, seed: int) -> np.ndarray:
        """Augment one ``(T,)`` float32 clip with row ``b`` of the parameters."""
        sr, cfg, n = self.sample_rate, self.config, x.shape[-1]

        def on(name: str) -> bool:
            return bool(params[name]["applied"][b])

        def val(name: str, key: str) -> float:
            return float(params[name][key][b])

        if on("pitch_shift"):
            s = val("pitch_shift", "semitones")
            x = _frozen(PitchShift(s, s, p=1.0), num_semitones=s)(x, sr)
        for name, kind in (("fade_in", "in"), ("fade_out", "out")):
            if on(name):
                shape = cfg.of(name).shapes[int(params[name]["shape"][b])]
                x = x * fade_gains(n, val(name, "fraction"), shape, kind)
        if on("noise"):
            x = _add_color_noise(x, val("noise", "snr_db"), val("noise", "f_decay"), sr, seed)
        if on("time_mask"):
            frac, t0 = val("time_mask", "fraction"), int(val("time_mask", "start") * n)
            t = min(int(frac * n), n - t0)
            if cfg.time_mask.fill == "zero":
                x = _frozen(TimeMask(frac, frac, fade_duration=0.0, p=1.0), t=t, t0=t0)(x, sr)
            else:
                level = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
                x = x.copy()
                x[t0:t0 + t] = np.random.default_rng(seed).normal(0.0, MASK_NOISE_LEVEL * level, t)
        if on("time_shift"):
            f = val("time_shift", "fraction")
            x = _frozen(Shift(f, f, rollover=True, fade_duration=0.0, p=1.0), shift_amount=f)(x, sr)
        if on("time_stretch"):
            r = val("time_stretch", "rate")
            x = _frozen(TimeStretch(r, r, leave_length_unchanged=True, p=1.0), rate=r)(x, sr)
        return np.asarray(x, dtype=np.float32)
