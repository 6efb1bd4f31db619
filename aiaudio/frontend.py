"""Log-mel front end on the device, with normalisation statistics fitted on training data.

``LogMel`` turns waveforms ``(B, T)`` or ``(B, 1, T)`` into ``(B, 1, n_mels, frames)`` dB
log-mel spectrograms (``frames = 1 + T // hop_length`` with ``center``), matching
``librosa.feature.melspectrogram`` + ``librosa.power_to_db(ref=1.0, amin=eps, top_db)``
with the same settings. ``Normaliser`` holds a mean and std (one global pair, MetaAudio
style, or one per mel bin) computed exactly in float64 over training log-mels.
``Frontend`` combines both; ``to_dict``/``from_dict`` give a JSON-friendly record of its
config and statistics so a run can store and restore them. Defaults are MetaAudio's:
n_fft 1024, hop 512, 128 mels, dB.

Input contract: waveforms are finite with ``|x| <= MAX_ABS_SAMPLE`` (1e6). Audio is nominally
within [-1, 1]; the bound still admits loud float files and float files holding int16-scaled
samples (up to 32768), and keeps the float32 log-mel finite with ample headroom (see
``MAX_ABS_SAMPLE``). ``aiaudio.data.decode_audio`` rejects files beyond it; ``LogMel`` raises
``NonFiniteLogMelError`` naming the batch items whose log-mel is not finite, and
``compute_stats`` names the clip (the file, when it knows it) whose samples break the contract,
so the normalisation statistics are never fitted on NaN/inf.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from core.config import ConfigError, from_dict
from core.errors import RunError

MAX_ABS_SAMPLE = 1e6
"""Largest sample magnitude the front end accepts (120 dB above full scale).

Audio is nominally in [-1, 1]; float files may legitimately be louder (a few units after
gain, or int16-scaled values up to 32768 written as floats). The STFT power of a frame grows
as ``(peak * n_fft)**2``: the float32 log-mel overflows (``inf``, then NaN after ``top_db``
and normalisation) for peaks above about 1e16 with the default n_fft 1024 and above about
1e15 with n_fft 4096 (measured). At 1e6 the power stays more than 1e20 times below float32's
maximum, which covers any FFT size in use and the augmentations' squared-signal sums (signal
power for the SNR of noise injection, RMS gains); ``tests/test_frontend.py`` checks both at
the bound. Larger magnitudes come from corrupt or wrongly scaled files.
"""


class NonFiniteLogMelError(RunError, ValueError):
    """The log-mel of some batch items is not finite (the message names the items and why)."""


def sample_problem(nonfinite: int, peak: float) -> str | None:
    """Why a waveform breaks the front end's input contract, or None when it does not.

    Args:
        nonfinite: number of NaN/inf samples.
        peak: largest finite sample magnitude.
    """
    if nonfinite:
        return f"contains {nonfinite} non-finite (NaN/inf) samples"
    if peak > MAX_ABS_SAMPLE:
        return (f"peak sample magnitude {peak:.3g} exceeds the bound {MAX_ABS_SAMPLE:g} (audio is nominally "
                f"within [-1, 1]; larger values are corrupt or wrongly scaled and can overflow the float32 log-mel)")
    return None


def batch_problems(wave: torch.Tensor) -> dict[int, str]:
    """``{item: reason}`` for the items of ``wave`` ``(B, T)`` that break the input contract."""
    wave = wave.detach()
    finite = torch.isfinite(wave)
    nonfinite = (~finite).sum(dim=-1).tolist()
    peak = torch.where(finite, wave.abs(), torch.zeros((), dtype=wave.dtype, device=wave.device))
    peaks = peak.amax(dim=-1).tolist() if wave.shape[-1] else [0.0] * wave.shape[0]
    found = {i: sample_problem(int(n), float(p)) for i, (n, p) in enumerate(zip(nonfinite, peaks))}
    return {i: reason for i, reason in found.items() if reason is not None}


@dataclass
class FrontendConfig:
    """Log-mel settings.

    Attributes:
        sample_rate: Hz of the input waveforms.
        n_fft, hop_length, win_length: STFT sizes (``win_length`` None = ``n_fft``; Hann window).
        n_mels, f_min, f_max: mel filterbank (``f_max`` None = ``sample_rate / 2``).
        mel_scale, mel_norm: librosa's mel formula (``slaney``/``htk``) and filter norm.
        top_db: clip each example at its maximum minus ``top_db`` dB (None = no clipping).
        eps: power floor before the log (librosa's ``amin``).
        center, pad_mode: STFT centring and its padding (``constant`` = zeros, as librosa).
        normalise: ``global`` (one mean/std), ``per_bin`` (per mel bin) or ``none``.
    """
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    win_length: int | None = None
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float | None = None
    mel_scale: Literal["slaney", "htk"] = "slaney"
    mel_norm: Literal["slaney", "none"] = "slaney"
    top_db: float | None = 80.0
    eps: float = 1e-10
    center: bool = True
    pad_mode: Literal["constant", "reflect"] = "constant"
    normalise: Literal["global", "per_bin", "none"] = "global"

    def __post_init__(self) -> None:
        nyquist = self.sample_rate / 2
        checks = [
            (self.sample_rate > 0, f"frontend.sample_rate must be > 0, got {self.sample_rate}"),
            (self.n_fft > 0, f"frontend.n_fft must be > 0, got {self.n_fft}"),
            (self.hop_length > 0, f"frontend.hop_length must be > 0, got {self.hop_length}"),
            (self.win_length is None or 0 < self.win_length <= self.n_fft,
             f"frontend.win_length must be in [1, n_fft={self.n_fft}], got {self.win_length}"),
            (self.n_mels > 0, f"frontend.n_mels must be > 0, got {self.n_mels}"),
            (0.0 <= self.f_min < nyquist, f"frontend.f_min must be in [0, {nyquist}), got {self.f_min}"),
            (self.f_max is None or self.f_min < self.f_max <= nyquist,
             f"frontend.f_max must be in (f_min={self.f_min}, sample_rate/2={nyquist}], got {self.f_max}"),
            (self.top_db is None or self.top_db > 0, f"frontend.top_db must be > 0 or null, got {self.top_db}"),
            (self.eps > 0, f"frontend.eps must be > 0, got {self.eps}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def num_frames(self, num_samples: int) -> int:
        """Frames for a waveform of ``num_samples`` samples."""
        if self.center:
            return 1 + num_samples // self.hop_length
        return 1 + (num_samples - self.n_fft) // self.hop_length


def mel_filterbank(config: FrontendConfig) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` float32 mel filters (librosa's formula)."""
    import librosa

    return librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
                               fmin=config.f_min, fmax=config.f_max, htk=config.mel_scale == "htk",
                               norm="slaney" if config.mel_norm == "slaney" else None).astype(np.float32)


class LogMel(nn.Module):
    """Waveforms ``(B, T)`` or ``(B, 1, T)`` -> float32 ``(B, 1, n_mels, frames)`` in dB.

    Always computed in float32, also inside an autocast region; the window and filterbank are
    non-persistent buffers (rebuilt from the config, so they follow ``.to(device)`` but do not
    bloat checkpoints). The output is finite for finite inputs with ``|x| <= MAX_ABS_SAMPLE``;
    a non-finite output raises ``NonFiniteLogMelError`` naming the items and their inputs.
    """

    def __init__(self, config: FrontendConfig | None = None) -> None:
        super().__init__()
        self.config = config or FrontendConfig()
        win = self.config.win_length or self.config.n_fft
        self.register_buffer("window", torch.hann_window(win, periodic=True), persistent=False)
        self.register_buffer("mel_fb", torch.from_numpy(mel_filterbank(self.config)), persistent=False)

    def power_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """Mel power spectrogram ``(B, n_mels, frames)`` float32 of ``(B, T)`` waveforms."""
        cfg = self.config
        spec = torch.stft(wave, cfg.n_fft, hop_length=cfg.hop_length, win_length=self.window.shape[0],
                          window=self.window, center=cfg.center, pad_mode=cfg.pad_mode,
                          return_complex=True)
        power = spec.real.square() + spec.imag.square()
        return torch.matmul(self.mel_fb, power)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 3 and wave.shape[1] == 1:
            wave = wave[:, 0]
        if wave.dim() != 2:
            raise ValueError(f"LogMel expects waveforms (B, T) or (B, 1, T), got shape {tuple(wave.shape)}")
        cfg = self.config
        if cfg.center and cfg.pad_mode == "reflect" and wave.shape[-1] <= cfg.n_fft // 2:
            raise ValueError(f"LogMel: clips of {wave.shape[-1]} samples are too short for reflect padding "
                             f"(need > n_fft/2 = {cfg.n_fft // 2})")
        if not cfg.center and wave.shape[-1] < cfg.n_fft:
            raise ValueError(f"LogMel: clips of {wave.shape[-1]} samples are shorter than n_fft={cfg.n_fft}")
        with torch.autocast(device_type=wave.device.type, enabled=False):
            mel = self.power_mel(wave.float())
            db = 10.0 * torch.log10(mel.clamp_min(cfg.eps))
            if cfg.top_db is not None:
                peak = db.amax(dim=(-2, -1), keepdim=True)
                db = torch.maximum(db, peak - cfg.top_db)
        if not bool(torch.isfinite(db).all()):
            raise NonFiniteLogMelError(_nonfinite_message(wave, db))
        return db.unsqueeze(1)


def _nonfinite_message(wave: torch.Tensor, db: torch.Tensor) -> str:
    """What went wrong for the items of ``db`` ``(B, n_mels, F)`` that are not finite, given
    their waveforms ``wave`` ``(B, T)``."""
    bad = (~torch.isfinite(db)).flatten(1).any(dim=1).nonzero().flatten().tolist()
    problems = batch_problems(wave)
    parts = [f"item {i}: input {problems.get(i, 'finite and within the bound')}" for i in bad[:5]]
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    return (f"LogMel: the log-mel of {len(bad)} of {wave.shape[0]} batch item(s) is not finite "
            f"({'; '.join(parts)}{more}); waveforms must be finite with |x| <= {MAX_ABS_SAMPLE:g}")


class Normaliser(nn.Module):
    """``(x - mean) / std`` with statistics fitted on training log-mels.

    Args:
        n_mels: mel bins (sets the buffer shape when ``per_bin``).
        per_bin: one mean/std per mel bin instead of one global pair.

    Buffers ``mean``, ``std`` (shape ``(1,)`` or ``(n_mels,)``, float32) and ``count`` (values
    seen; 0 = not fitted) are in the state dict. ``std`` is the population std (ddof 0).
    """

    def __init__(self, n_mels: int, per_bin: bool = False) -> None:
        super().__init__()
        self.n_mels, self.per_bin = int(n_mels), bool(per_bin)
        size = self.n_mels if per_bin else 1
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("std", torch.ones(size))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self._acc: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def fitted(self) -> bool:
        return bool(self.count.item() > 0)

    def _flat(self, x: torch.Tensor) -> np.ndarray:
        """``(B, 1, n_mels, F)`` or ``(B, n_mels, F)`` -> float64 ``(groups, values)``."""
        if x.dim() == 4:
            x = x[:, 0]
        if x.dim() != 3 or x.shape[1] != self.n_mels:
            raise ValueError(f"Normaliser expects (B, 1, {self.n_mels}, F) or (B, {self.n_mels}, F), "
                             f"got shape {tuple(x.shape)}")
        a = x.detach().to("cpu", torch.float64).numpy()
        return a.transpose(1, 0, 2).reshape(self.n_mels, -1) if self.per_bin else a.reshape(1, -1)

    def reset(self) -> None:
        """Forget statistics (``count`` = 0) before a new ``update`` sequence."""
        self._acc = None
        self.count.zero_()

    def update(self, batch: torch.Tensor) -> None:
        """Merge one batch of log-mels into the statistics (Chan et al.'s exact pairwise merge).

        Raises:
            NonFiniteLogMelError: the batch holds NaN/inf values (names the items); the
                statistics are left unchanged.
        """
        a = self._flat(batch)
        if not np.isfinite(a).all():
            values = batch.detach().reshape(batch.shape[0], -1)
            bad = (~torch.isfinite(values)).any(dim=1).nonzero().flatten().tolist()
            raise NonFiniteLogMelError(f"Normaliser: batch item(s) {bad[:10]}{' ...' if len(bad) > 10 else ''} "
                                       f"of {batch.shape[0]} hold non-finite log-mel values; the statistics "
                                       "were not updated")
        n_b = a.shape[1]
        if n_b == 0:
            return
        mean_b = a.mean(axis=1)
        m2_b = np.square(a - mean_b[:, None]).sum(axis=1)
        if self._acc is None:  # start from the buffers (zero, or loaded statistics)
            n = np.full(1, self.count.item())
            mean = self.mean.double().numpy().copy()
            m2 = np.square(self.std.double().numpy()) * n if n[0] > 0 else np.zeros_like(mean_b)
        else:
            n, mean, m2 = self._acc
        total = n + n_b
        delta = mean_b - mean
        mean = mean + delta * (n_b / total)
        m2 = m2 + m2_b + np.square(delta) * (n * n_b / total)
        self._acc = (total, mean, m2)
        self.mean.copy_(torch.from_numpy(mean).float())
        self.std.copy_(torch.from_numpy(np.sqrt(m2 / total)).float().clamp_min(1e-8))
        self.count.fill_(float(total[0]))

    def fit(self, batches: Iterable[torch.Tensor]) -> "Normaliser":
        """Statistics over all ``batches`` (log-mels, any batch sizes), replacing old ones."""
        self.reset()
        for batch in batches:
            self.update(batch)
        if not self.fitted:
            raise ValueError("Normaliser.fit: the batches held no values")
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``(B, 1, n_mels, F)`` log-mels."""
        if not self.fitted:
            raise RuntimeError("Normaliser has no statistics: call fit()/aiaudio.frontend.compute_stats() on "
                               "training data, or load them (load_state_dict / Frontend.from_dict)")
        shape = (-1, 1) if self.per_bin else (1,)
        return (x - self.mean.view(shape)) / self.std.view(shape)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._acc = None
        super()._load_from_state_dict(*args, **kwargs)



class Frontend(nn.Module):
    """``LogMel`` followed by ``Normaliser`` (skipped when ``config.normalise == "none"``).

    ``forward``: waveforms ``(B, T)`` / ``(B, 1, T)`` -> ``(B, 1, n_mels, frames)``.
    """

    def __init__(self, config: FrontendConfig | None = None) -> None:
        super().__init__()
        self.config = config or FrontendConfig()
        self.logmel = LogMel(self.config)
        self.normaliser = Normaliser(self.config.n_mels, per_bin=self.config.normalise == "per_bin")

    @property
    def fitted(self) -> bool:
        """True when normalisation statistics are present (or not needed)."""
        return self.config.normalise == "none" or self.normaliser.fitted

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = self.logmel(wave)
        return x if self.config.normalise == "none" else self.normaliser(x)

    def fit(self, source: Any, max_batches: int | None = None, progress: bool = False,
            batch_size: int = 32) -> "Frontend":
        """Fit the normaliser on ``source`` (see ``compute_stats``); returns self."""
        stats = compute_stats(source, self.logmel, max_batches, progress, self.normaliser.per_bin, batch_size)
        self.normaliser.load_state_dict(stats.state_dict())
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly ``{"config": {...}, "stats": {"mean": [...], "std": [...], "count": n}}``."""
        n = self.normaliser
        return {"config": dataclasses.asdict(self.config),
                "stats": {"mean": n.mean.tolist(), "std": n.std.tolist(), "count": float(n.count.item())}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Frontend":
        """Rebuild from ``to_dict`` output (config validated; stats shapes checked).

        Raises:
            ConfigError: unknown config key, bad value, or stats of the wrong length.
        """
        if not isinstance(data, dict) or "config" not in data:
            raise ConfigError(f"frontend: expected a mapping with 'config' (and 'stats'), got {data!r:.200}")
        unknown = sorted(set(data) - {"config", "stats"})
        if unknown:
            raise ConfigError(f"frontend: unknown key {unknown[0]!r} (allowed: config, stats)")
        out = cls(from_dict(FrontendConfig, data["config"], "frontend.config"))
        stats = data.get("stats")
        if stats:
            size = out.normaliser.mean.numel()
            for key in ("mean", "std"):
                values = stats.get(key)
                if not isinstance(values, (list, tuple)) or len(values) != size:
                    raise ConfigError(f"frontend.stats.{key}: expected a list of {size} numbers, got {values!r:.200}")
            out.normaliser.mean.copy_(torch.tensor(stats["mean"], dtype=torch.float32))
            out.normaliser.std.copy_(torch.tensor(stats["std"], dtype=torch.float32))
            out.normaliser.count.fill_(float(stats.get("count", 1.0)))
        return out


def _batches(source: Any, batch_size: int) -> Iterable[tuple[int | None, torch.Tensor]]:
    """``(first item index or None, waveform batch)`` from a DataLoader/iterable of batches or a
    map-style dataset.

    A dataset's items (``wave`` or ``(wave, label)``) are grouped into batches of up to
    ``batch_size`` consecutive clips of equal length; the index is that of the batch's first
    item in the dataset (None for an iterable of batches).
    """
    if isinstance(source, Dataset) and hasattr(source, "__len__"):
        group: list[torch.Tensor] = []
        first = 0
        for i in range(len(source)):
            item = source[i]
            wave = torch.as_tensor(item[0] if isinstance(item, (tuple, list)) else item)
            if group and (wave.shape != group[0].shape or len(group) == batch_size):
                yield first, torch.stack(group)
                group, first = [], i
            group.append(wave)
        if group:
            yield first, torch.stack(group)
        return
    for batch in source:
        yield None, torch.as_tensor(batch[0] if isinstance(batch, (tuple, list)) else batch)


def item_name(source: Any, index: int) -> str:
    """The file of item ``index`` of a map-style ``source`` (an ``AudioDataset`` or a wrapper
    with ``.dataset``), else ``"<name> clip <index>"``."""
    for data in (source, getattr(source, "dataset", None)):
        records = getattr(data, "records", None)
        if records is not None and 0 <= index < len(records) and getattr(records[index], "path", None) is not None:
            return str(records[index].path)
    inner = getattr(source, "dataset", None)
    name = getattr(source, "name", None) or getattr(inner, "name", None) or type(source).__name__
    return f"{name} clip {index}"


def compute_stats(source: Any, frontend: LogMel | Frontend, max_batches: int | None = None,
                  progress: bool = False, per_bin: bool = False, batch_size: int = 32) -> Normaliser:
    """Normalisation statistics of ``frontend``'s log-mels over ``source``.

    Args:
        source: a DataLoader / iterable of waveform batches ``(B, T)`` (or ``(waves, labels)``
            pairs), or a map-style dataset whose items are ``wave`` or ``(wave, label)``.
        frontend: the ``LogMel`` (or the ``LogMel`` inside a ``Frontend``); batches are moved
            to its device.
        max_batches: stop after this many batches (None = all).
        progress: show a tqdm bar.
        per_bin: one mean/std per mel bin.

    Returns:
        A fitted ``Normaliser`` on the CPU.

    Raises:
        BadAudioError: a clip breaks the input contract (NaN/inf samples, or a peak above
            ``MAX_ABS_SAMPLE``); names its file for a dataset source, else the batch and item.
    """
    from aiaudio.data.base import BadAudioError

    logmel = frontend.logmel if isinstance(frontend, Frontend) else frontend
    device = logmel.mel_fb.device
    norm = Normaliser(logmel.config.n_mels, per_bin=per_bin)
    batches = _batches(source, batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="normalisation stats", total=max_batches)
    with torch.no_grad():
        for step, (first, wave) in enumerate(batches):
            if max_batches is not None and step >= max_batches:
                break
            problems = batch_problems(wave.reshape(wave.shape[0], -1)) if wave.dim() >= 2 else {}
            if problems:
                item, reason = next(iter(problems.items()))
                where = (item_name(source, first + item) if first is not None
                         else f"normalisation batch {step} item {item}")
                raise BadAudioError(where, f"{reason}; the front end's normalisation statistics were not fitted")
            norm.update(logmel(wave.to(device)))
    if not norm.fitted:
        raise ValueError("compute_stats: the source yielded no batches")
    return norm
