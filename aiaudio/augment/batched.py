"""The batched tensor backend: all seven augmentations on a ``(B, T)`` batch, CPU or GPU.

Parameters come from :func:`aiaudio.augment.sampling.sample_params` (one value per clip);
each augmentation runs, in ``AUDIO_AUGMENTATIONS`` order, only on the rows where it is
applied: those rows are selected, transformed together and written back, so rows where
nothing is applied come back bit-identical and no Python loop runs over clips.
"""
from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from aiaudio.augment.config import AugmentConfig
from aiaudio.augment.cpu_blocks import run_in_row_blocks
from aiaudio.augment.ops import add_coloured_noise, fade, same_device, time_mask, time_shift
from aiaudio.augment.phase_vocoder import pitch_shift, time_stretch
from aiaudio.augment.sampling import Params, sample_params
from aiaudio.space import AUDIO_AUGMENTATIONS


def params_seed(params: Params) -> int:
    """A deterministic seed in ``[0, 2**63)`` derived from the values of ``params``.

    Used by :meth:`BatchedAugmenter.apply` when no noise generator is given, so the same
    parameters always give the same noise on every machine.
    """
    digest = hashlib.sha256()
    for name in sorted(params):
        for key in sorted(params[name]):
            value = params[name][key].detach().to("cpu").contiguous()
            digest.update(f"{name}.{key}:{value.dtype}:".encode())
            digest.update(value.numpy().tobytes())
    return int.from_bytes(digest.digest()[:8], "little") & (2**63 - 1)


class BatchedAugmenter:
    """Apply the seven audio augmentations to a batch with per-clip random parameters.

    Args:
        config: ranges, probabilities and STFT settings (``config.backend`` is not read).
        sample_rate: of the clips. The batched operations are defined by ratios and clip
            fractions and do not depend on it; it is kept for the interface shared with the
            per-clip reference backend and checked to be positive.

    Example:
        >>> aug = BatchedAugmenter(AugmentConfig())
        >>> view, params = aug(wave, active, torch.Generator().manual_seed(0), return_params=True)
    """

    def __init__(self, config: AugmentConfig, sample_rate: int = 16000) -> None:
        if not isinstance(config, AugmentConfig):
            raise TypeError(f"BatchedAugmenter: config must be an AugmentConfig, got {type(config).__name__}")
        if sample_rate <= 0:
            raise ValueError(f"BatchedAugmenter: sample_rate must be positive, got {sample_rate}")
        self.config = config
        self.sample_rate = int(sample_rate)

    def __call__(self, wave: Tensor, active: Tensor, generator: torch.Generator,
                 return_params: bool = False) -> Tensor | tuple[Tensor, Params]:
        """Sample parameters from ``generator`` and apply them.

        Draw order: ``sample_params(config, active, generator)`` first, then one integer
        that seeds a fresh generator on ``wave.device`` for the noise samples. The whole
        call is therefore reproducible from the state of ``generator`` alone.

        Args:
            wave: ``(B, T)`` float on any device; never modified.
            active: ``(B, 7)`` bool (descriptor bits per clip, ``AUDIO_AUGMENTATIONS``
                order) or ``(7,)`` for one descriptor shared by the batch.
            generator: source of all randomness (normally on the CPU).
            return_params: also return the sampled parameters.

        Returns:
            ``(B, T)`` augmented copy, or ``(copy, params)`` with ``params`` as documented in
            :mod:`aiaudio.augment.sampling` (including ``applied`` per augmentation).
        """
        _check_wave(wave)
        active = torch.as_tensor(active)
        if active.dim() == 1:
            active = active.expand(wave.shape[0], -1)
        if active.dim() != 2 or active.shape[0] != wave.shape[0]:
            raise ValueError(f"BatchedAugmenter: active must be (B, {len(AUDIO_AUGMENTATIONS)}) with "
                             f"B = {wave.shape[0]}, got {tuple(active.shape)}")
        params = sample_params(self.config, active.bool(), generator)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        noise_gen = torch.Generator(device=wave.device)
        noise_gen.manual_seed(seed)
        out = self.apply(wave, params, noise_gen)
        return (out, params) if return_params else out

    def apply(self, wave: Tensor, params: Params, generator: torch.Generator | None = None) -> Tensor:
        """Apply given parameters.

        Args:
            wave: ``(B, T)`` float on any device; never modified.
            params: ``{name: {param: (B,) tensor}}`` as made by ``sample_params``, any device.
            generator: on ``wave.device``, draws the noise of ``noise`` and of a noise-filled
                ``time_mask``. If None, a generator seeded with :func:`params_seed` is used,
                so the output is a deterministic function of ``wave`` and ``params``. On the
                CPU, batches larger than ``config.cpu_block_rows`` run as row blocks in
                parallel threads, each drawing its noise from a generator seeded from this
                one (:mod:`aiaudio.augment.cpu_blocks`).

        Returns:
            ``(B, T)`` augmented copy, same dtype and device as ``wave``.
        """
        _check_wave(wave)
        self._check_params(params, wave.shape[0])
        if generator is None:
            generator = torch.Generator(device=wave.device)
            generator.manual_seed(params_seed(params))
        elif not same_device(generator.device, wave.device):
            raise ValueError(f"BatchedAugmenter.apply: generator is on {generator.device}, wave on {wave.device}")
        rows = self.config.cpu_block_rows
        if wave.device.type == "cpu" and 0 < rows < wave.shape[0]:
            return run_in_row_blocks(self._apply_rows, wave, params, generator, rows)
        return self._apply_rows(wave, params, generator)

    def _apply_rows(self, wave: Tensor, params: Params, generator: torch.Generator) -> Tensor:
        """:meth:`apply` on one block of rows (all of them off the CPU): ``(b, T)`` -> ``(b, T)``."""
        out = wave.clone()
        n = wave.shape[0]
        if out.numel() == 0:
            return out
        for name in AUDIO_AUGMENTATIONS:
            p = params[name]
            idx = p["applied"].bool().nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            values = {k: v[idx].to(wave.device) for k, v in p.items() if k != "applied"}
            if idx.numel() == n:
                out = self._run(name, out, values, generator)
            else:
                idx = idx.to(wave.device)
                out.index_copy_(0, idx, self._run(name, out.index_select(0, idx), values, generator))
        return out

    def _run(self, name: str, x: Tensor, v: dict[str, Tensor], g: torch.Generator) -> Tensor:
        """One augmentation on the selected rows ``x`` ``(b, T)`` with their values ``(b,)``."""
        cfg = self.config.of(name)
        if name == "pitch_shift":
            return pitch_shift(x, v["semitones"], cfg.n_fft, cfg.hop_length)
        if name in ("fade_in", "fade_out"):
            return fade(x, v["fraction"], v["shape"], cfg.shapes, "in" if name == "fade_in" else "out")
        if name == "noise":
            return add_coloured_noise(x, v["snr_db"], v["f_decay"], g)
        if name == "time_mask":
            return time_mask(x, v["start"], v["fraction"], cfg.fill, g)
        if name == "time_shift":
            return time_shift(x, v["fraction"])
        if name == "time_stretch":
            return time_stretch(x, v["rate"], cfg.n_fft, cfg.hop_length)
        raise KeyError(f"BatchedAugmenter: no implementation for augmentation {name!r}")  # pragma: no cover

    @staticmethod
    def _check_params(params: Params, n: int) -> None:
        for name in AUDIO_AUGMENTATIONS:
            if name not in params or "applied" not in params[name]:
                raise ValueError(f"BatchedAugmenter.apply: params lacks {name!r} or its 'applied' mask")
            for key, value in params[name].items():
                if value.shape != (n,):
                    raise ValueError(f"BatchedAugmenter.apply: params[{name!r}][{key!r}] has shape "
                                     f"{tuple(value.shape)}, expected ({n},)")


def _check_wave(wave: Tensor) -> None:
    if not isinstance(wave, Tensor) or wave.dim() != 2 or not wave.is_floating_point():
        shape = tuple(wave.shape) if isinstance(wave, Tensor) else type(wave).__name__
        raise ValueError(f"BatchedAugmenter: wave must be a float (B, T) tensor, got {shape}")
