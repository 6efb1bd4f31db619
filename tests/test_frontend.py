"""Log-mel front end and normalisation: shapes, librosa agreement, exact statistics, state."""
import json
import re

import librosa
import numpy as np
import pytest
import torch

from aiaudio.data.synthetic import SyntheticAudio, SyntheticConfig, synthesise_batch
from aiaudio.data import AudioDataset, AudioRecord, BadAudioError
from aiaudio.frontend import (MAX_ABS_SAMPLE, Frontend, FrontendConfig, LogMel, NonFiniteLogMelError, Normaliser,
                              compute_stats)
from core.config import ConfigError

SMALL = FrontendConfig(n_fft=256, hop_length=128, n_mels=32)


@pytest.fixture(scope="module")
def waves() -> torch.Tensor:
    cfg = SyntheticConfig(n_clips=6, seconds=0.5, seed=4)
    return torch.from_numpy(synthesise_batch(range(6), cfg))


@pytest.mark.parametrize("samples", [8000, 8001, 8191])
def test_shapes_and_frame_count(samples):
    lm = LogMel()
    x = torch.randn(3, samples, generator=torch.Generator().manual_seed(0)) * 0.1
    out = lm(x)
    assert out.shape == (3, 1, 128, 1 + samples // 512) and out.dtype == torch.float32
    assert lm.config.num_frames(samples) == out.shape[-1]
    assert torch.equal(lm(x.unsqueeze(1)), out)
    no_center = LogMel(FrontendConfig(center=False))(x)
    assert no_center.shape[-1] == 1 + (samples - 1024) // 512 == FrontendConfig(center=False).num_frames(samples)


def test_bad_input_shape():
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        LogMel(SMALL)(torch.zeros(2, 3, 1000))


@pytest.mark.parametrize("config", [
    FrontendConfig(),
    FrontendConfig(n_fft=512, hop_length=160, n_mels=40, f_min=50.0, f_max=7000.0, top_db=None),
    FrontendConfig(n_fft=400, hop_length=100, win_length=320, n_mels=64, mel_scale="htk",
                   mel_norm="none", pad_mode="reflect"),
])
def test_matches_librosa(waves, config):
    noise = torch.randn(waves.shape, generator=torch.Generator().manual_seed(3)) * 1e-3
    waves = waves + noise  # no exact silence: every bin is compared
    out = LogMel(config)(waves)
    for i in range(waves.shape[0]):
        power = librosa.feature.melspectrogram(
            y=waves[i].numpy(), sr=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
            win_length=config.win_length, n_mels=config.n_mels, fmin=config.f_min, fmax=config.f_max,
            htk=config.mel_scale == "htk", norm="slaney" if config.mel_norm == "slaney" else None,
            pad_mode=config.pad_mode, power=2.0)
        ref = librosa.power_to_db(power, ref=1.0, amin=config.eps, top_db=config.top_db)
        got = out[i, 0].numpy()
        loud = ref > ref.max() - 60.0  # float32 rounding dominates far below the peak
        assert loud.mean() > 0.9
        # Two float32 FFTs (torch/MKL vs numpy): a bin 60 dB below the peak carries rounding
        # of ~eps x peak, up to ~1e-3 dB; 1.4e-4 dB observed. 2e-2 dB leaves ~140x and still
        # catches a wrong filterbank, window or padding (>= 0.1 dB).
        np.testing.assert_allclose(got[loud], ref[loud], atol=2e-2, rtol=0)
        np.testing.assert_allclose(got, ref, atol=0.5, rtol=0)


def test_top_db_clips_each_example(waves):
    x = torch.cat([waves[:2], torch.zeros(1, waves.shape[1])])  # a silent clip too
    out = LogMel(FrontendConfig(top_db=40.0))(x)
    raw = LogMel(FrontendConfig(top_db=None))(x)
    for i in range(3):
        peak = raw[i].max()
        assert out[i].max() == peak
        assert torch.isclose(out[i].min(), torch.maximum(raw[i].min(), peak - 40.0))
    assert raw[:2].min() < raw[:2].amax() - 40  # clipping really happened
    assert torch.all(out[2] == -100.0)  # 10*log10(eps=1e-10)


def test_float32_under_autocast(waves):
    lm = LogMel(SMALL)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lm(waves.to(torch.bfloat16))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, lm(waves.to(torch.bfloat16).float()))


@pytest.mark.parametrize("kwargs, key", [
    ({"f_min": -1.0}, "f_min"), ({"f_min": 8000.0}, "f_min"), ({"f_max": 9000.0}, "f_max"),
    ({"f_min": 500.0, "f_max": 400.0}, "f_max"), ({"n_mels": 0}, "n_mels"), ({"hop_length": 0}, "hop_length"),
    ({"win_length": 2048}, "win_length"), ({"top_db": 0.0}, "top_db"),
])
def test_config_validation(kwargs, key):
    with pytest.raises(ConfigError, match=f"frontend.{key}"):
        FrontendConfig(**kwargs)


@pytest.mark.parametrize("per_bin", [False, True])
def test_normaliser_exact_statistics(per_bin):
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(b, 1, 8, 5, generator=g) * 7 - 40 for b in (3, 1, 4)]
    norm = Normaliser(8, per_bin=per_bin).fit(batches)
    data = torch.cat(batches).double().numpy()[:, 0]  # (N, 8, 5)
    axis = (0, 2) if per_bin else None
    np.testing.assert_allclose(norm.mean.numpy(), np.atleast_1d(data.mean(axis=axis)), rtol=1e-6)
    np.testing.assert_allclose(norm.std.numpy(), np.atleast_1d(data.std(axis=axis)), rtol=1e-6)
    assert norm.count.item() == data.size / (8 if per_bin else 1)
    out = norm(torch.cat(batches)).double().numpy()[:, 0]
    np.testing.assert_allclose(out.mean(axis=axis), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=axis), 1.0, atol=1e-5)
    refit = Normaliser(8, per_bin=per_bin).fit([torch.cat(batches)])  # batching does not matter
    torch.testing.assert_close(refit.mean, norm.mean)
    torch.testing.assert_close(refit.std, norm.std)


def test_normaliser_errors_and_state_round_trip():
    norm = Normaliser(4)
    with pytest.raises(RuntimeError, match="no statistics"):
        norm(torch.zeros(1, 1, 4, 3))
    with pytest.raises(ValueError, match=r"\(B, 1, 4, F\)"):
        norm.fit([torch.zeros(2, 1, 5, 3)])
    norm.fit([torch.arange(24.0).view(2, 1, 4, 3)])
    copy = Normaliser(4)
    copy.load_state_dict(norm.state_dict())
    assert copy.fitted
    x = torch.randn(2, 1, 4, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(copy(x), norm(x))
    # Updating after a load continues from the loaded statistics.
    more = torch.full((1, 1, 4, 3), 50.0)
    norm.update(more)
    copy.update(more)
    torch.testing.assert_close(copy.mean, norm.mean)
    torch.testing.assert_close(copy.std, norm.std)


def test_compute_stats_from_dataset_and_loader():
    ds = SyntheticAudio(SyntheticConfig(n_clips=10, seconds=0.5, seed=2))
    lm = LogMel(SMALL)
    from_dataset = compute_stats(ds, lm, batch_size=4)
    everything = lm(torch.stack([ds[i][0] for i in range(10)])).double()
    assert from_dataset.mean.item() == pytest.approx(everything.mean().item(), rel=1e-5)
    assert from_dataset.std.item() == pytest.approx(everything.std(unbiased=False).item(), rel=1e-5)
    loader = torch.utils.data.DataLoader(ds, batch_size=3)
    first_two = compute_stats(loader, lm, max_batches=2)
    assert first_two.count.item() == 6 * 32 * SMALL.num_frames(8000)
    assert first_two.mean.item() == pytest.approx(everything[:6].mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="no batches"):
        compute_stats([], lm)


def test_frontend_fit_and_dict_round_trip(waves):
    fe = Frontend(FrontendConfig(n_fft=256, hop_length=128, n_mels=16, normalise="per_bin"))
    assert not fe.fitted
    with pytest.raises(RuntimeError, match="no statistics"):
        fe(waves)
    fe.fit([waves[:3], waves[3:]])
    out = fe(waves)
    assert out.shape == (6, 1, 16, 1 + 8000 // 128)
    np.testing.assert_allclose(out.double().mean(dim=(0, 1, 3)).numpy(), 0.0, atol=1e-4)
    restored = Frontend.from_dict(json.loads(json.dumps(fe.to_dict())))
    assert restored.config == fe.config and restored.fitted
    assert torch.equal(restored(waves), out)
    state = Frontend(fe.config)
    state.load_state_dict(fe.state_dict())
    assert torch.equal(state(waves), out)
    assert set(fe.state_dict()) == {"normaliser.mean", "normaliser.std", "normaliser.count"}
    bare = Frontend(FrontendConfig(n_fft=256, hop_length=128, n_mels=16, normalise="none"))
    assert bare.fitted and torch.equal(bare(waves), bare.logmel(waves))
    bad = fe.to_dict()
    bad["stats"]["mean"] = [0.0]
    with pytest.raises(ConfigError, match="stats.mean"):
        Frontend.from_dict(bad)
    with pytest.raises(ConfigError, match="n_mel"):
        Frontend.from_dict({"config": {"n_mel": 3}})


def bound_waves(samples: int = 8000) -> torch.Tensor:
    """``(3, samples)`` clips peaking exactly at ``MAX_ABS_SAMPLE``: DC, Nyquist square, noise."""
    noise = torch.randn(samples, generator=torch.Generator().manual_seed(0))
    alternating = torch.ones(samples)
    alternating[1::2] = -1.0
    return torch.stack([torch.ones(samples), alternating, noise / noise.abs().max()]) * MAX_ABS_SAMPLE


@pytest.mark.parametrize("config", [FrontendConfig(), FrontendConfig(n_fft=4096, hop_length=1024, n_mels=64,
                                                                    mel_scale="htk", mel_norm="none")])
def test_log_mel_and_augmentations_stay_finite_at_the_sample_bound(config):
    from aiaudio.augment import AudioPolicy, AugmentConfig
    from aiaudio.space import AUDIO_AUGMENTATIONS
    from core.invariance import InvarianceSpace

    waves = bound_waves()
    out = LogMel(config)(waves)
    assert bool(torch.isfinite(out).all())
    # the loudest clip's dB stays far below the float32 range (log10 of 3.4e38 is 385 dB)
    assert float(out.max()) < 250.0
    augment = AugmentConfig()
    for name in AUDIO_AUGMENTATIONS:
        augment.of(name).p = 1.0
    space = InvarianceSpace(AUDIO_AUGMENTATIONS)
    policy = AudioPolicy(space, augment, sample_rate=config.sample_rate)
    v1, v2 = policy.views(waves, space.ones(), torch.Generator().manual_seed(1))
    assert bool(torch.isfinite(v1).all()) and bool(torch.isfinite(v2).all())
    assert bool(torch.isfinite(LogMel(config)(torch.cat([v1, v2]))).all())


def test_log_mel_names_the_items_whose_output_is_not_finite(waves):
    batch = waves[:3].clone()
    batch[1, 100] = 1e30  # finite input whose STFT power overflows float32
    batch[2, 7] = float("inf")
    with pytest.raises(NonFiniteLogMelError) as info:
        LogMel(SMALL)(batch)
    message = str(info.value)
    assert "2 of 3 batch item(s)" in message
    assert "item 1: input peak sample magnitude 1e+30 exceeds the bound 1e+06" in message
    assert "item 2: input contains 1 non-finite (NaN/inf) samples" in message
    assert "item 0" not in message


def test_normaliser_refuses_non_finite_values_and_keeps_its_statistics():
    norm = Normaliser(4)
    norm.fit([torch.arange(24.0).view(2, 1, 4, 3)])
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    poisoned = torch.zeros(3, 1, 4, 3)
    poisoned[2, 0, 1, 1] = float("nan")
    with pytest.raises(NonFiniteLogMelError, match=r"batch item\(s\) \[2\] of 3"):
        norm.update(poisoned)
    assert all(torch.equal(before[k], v) for k, v in norm.state_dict().items())
    norm.update(torch.full((1, 1, 4, 3), 5.0))  # still usable afterwards, from the old statistics
    assert norm.count.item() == 24 + 12


class MemoryClips(AudioDataset):
    """In-memory clips (no files) served by ``load``."""

    def __init__(self, waves: torch.Tensor) -> None:
        super().__init__("memory", [AudioRecord(None, 0, (0,)) for _ in waves], ["a"], 16000)
        self.waves = waves

    def load(self, index: int) -> np.ndarray:
        return self.waves[index].numpy()


def test_fit_names_the_clip_that_would_poison_the_statistics(waves, tmp_path):
    poisoned = waves.clone()
    poisoned[4, 10] = 1e30
    frontend = Frontend(SMALL)
    with pytest.raises(BadAudioError, match=r"^memory clip 4: peak sample magnitude 1e\+30 exceeds the bound .*"
                                            r"normalisation statistics were not fitted"):
        frontend.fit(MemoryClips(poisoned), batch_size=2)
    assert not frontend.fitted
    with pytest.raises(BadAudioError, match=r"^normalisation batch 1 item 1: contains 1 non-finite"):
        frontend.fit([waves[:3], torch.stack([waves[3], waves[4].index_fill(0, torch.tensor([5]), float("nan"))])])
    # a file-backed clip beyond the bound is named by its file (decode_audio refuses it)
    from aiaudio.data import write_audio

    files = [write_audio(tmp_path / f"{i}.wav", w.numpy(), 16000) for i, w in enumerate(poisoned[:5])]
    data = AudioDataset("files", [AudioRecord(p, 0, (0,)) for p in files], ["a"], 16000)
    with pytest.raises(BadAudioError, match=rf"^{re.escape(str(files[4]))}: peak sample magnitude 1e\+30"):
        frontend.fit(data, batch_size=2)
