"""Physical and contract checks of the batched audio augmentations (ops, phase vocoder, augmenter)."""
import math

import pytest
import torch

from aiaudio.augment.batched import BatchedAugmenter, params_seed
from aiaudio.augment.config import AugmentConfig
from aiaudio.augment.ops import MASK_NOISE_LEVEL, add_coloured_noise, fade, same_device, time_mask, time_shift
from aiaudio.augment.resample import lowpass, resample
from aiaudio.augment.phase_vocoder import istft, pitch_shift, stft, time_stretch
from aiaudio.augment.sampling import sample_params
from aiaudio.space import AUDIO_AUGMENTATIONS

SR = 16000
SHAPES = ["linear", "logarithmic", "exponential"]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def tone(freq: float, seconds: float = 1.0, amp: float = 0.5, rows: int = 1, device: str = "cpu") -> torch.Tensor:
    t = torch.arange(int(SR * seconds), device=device) / SR
    return (amp * torch.sin(2 * math.pi * freq * t)).repeat(rows, 1)


def peak_hz(row: torch.Tensor) -> float:
    spec = torch.fft.rfft(row.double().cpu()).abs()
    return float(spec.argmax()) * SR / row.shape[-1]


def rms(x: torch.Tensor) -> torch.Tensor:
    return x.double().pow(2).mean(dim=-1).sqrt()


def config_p1(**overrides) -> AugmentConfig:
    cfg = AugmentConfig()
    for name in AUDIO_AUGMENTATIONS:
        cfg.of(name).p = 1.0
    for name, p in overrides.items():
        cfg.of(name).p = p
    return cfg


def only(k: int, rows: int) -> torch.Tensor:
    active = torch.zeros(rows, len(AUDIO_AUGMENTATIONS), dtype=torch.bool)
    active[:, k] = True
    return active


# ---------------------------------------------------------------- phase vocoder


@pytest.mark.parametrize("device", DEVICES)
def test_pitch_shift_moves_tone_peak_per_row(device):
    x = tone(440.0, rows=5, device=device)
    semis = torch.tensor([12.0, 0.0, -12.0, 7.0, -15.0])
    y = pitch_shift(x, semis)  # default STFT: n_fft 512, hop 256 (50% overlap)
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert torch.isfinite(y).all()
    for row, s in zip(y, semis.tolist()):
        assert abs(peak_hz(row) - 440.0 * 2 ** (s / 12)) <= 2.0, s
    loud = rms(y[:, 2000:-2000]) / rms(x[:, 2000:-2000])
    assert ((loud > 0.8) & (loud < 1.25)).all(), loud


def test_pitch_shift_high_tones_alias_free_and_loud():
    x = tone(6000.0, rows=3)
    y = pitch_shift(x, torch.tensor([12.0, -12.0, 1.0]))  # 12 kHz would alias: removed instead
    assert rms(y)[0] < 0.02 * rms(x)[0]
    for row, target in zip(y[1:], [3000.0, 6000.0 * 2 ** (1 / 12)]):
        assert abs(peak_hz(row) - target) <= 2.0
        assert 0.9 < float(rms(row[1000:-1000]) / rms(x[0])) < 1.1


def test_resample_reads_at_ratio():
    x = tone(6000.0, rows=2)
    y = resample(x, torch.tensor([0.7, 1.0]), 12000)
    assert abs(peak_hz(y[0]) - 6000.0 * 0.7) <= 2.0  # read 0.7 times as fast: 4.2 kHz
    assert 0.93 < float(rms(y[0, 500:-500]) / rms(x[0])) < 1.05
    assert torch.allclose(y[1], x[1, :12000], atol=1e-3)  # ratio 1 reads the row itself
    assert rms(resample(x, torch.tensor([2.0, 2.0]), SR)[:, SR // 2 + 10:]).max() == 0  # past the end: zeros


@pytest.mark.parametrize("hop", [128, 256])
@pytest.mark.parametrize("device", DEVICES)
def test_time_stretch_scales_burst_length_and_keeps_clip_length(device, hop):
    x = torch.zeros(3, SR, device=device)
    start, length = 2000, 8000
    x[:, start:start + length] = tone(440.0, length / SR, amp=1.0, device=device)
    rates = torch.tensor([0.8, 1.25, 1.0])
    y = time_stretch(x, rates, n_fft=512, hop=hop)
    assert y.shape == x.shape and torch.isfinite(y).all()
    for row, r in zip(y, rates.tolist()):
        env = row.abs().cpu().unfold(0, 64, 64).amax(dim=1)
        on = (env > 0.5).nonzero().squeeze(1)
        measured = (int(on.max()) + 1 - int(on.min())) * 64
        assert abs(measured - length / r) <= 0.03 * length / r + 256, (r, measured)
        assert abs(int(on.min()) * 64 - start / r) <= 256, (r, int(on.min()) * 64)
    loud = rms(y[:, 4000:9000]) / rms(x[:, 4000:9000])
    assert ((loud > 0.85) & (loud < 1.15)).all(), loud
    # Rate 1 is the identity up to float32 phasors accumulated over ~125 frames (|x| <= 1):
    # 1.8e-5 observed; 3e-3 leaves ~170x for other FFT kernels, far below a real misalignment (~1).
    assert torch.allclose(y[2], x[2], atol=3e-3)


def test_time_stretch_faster_is_followed_by_silence_and_slower_is_cropped():
    x = tone(300.0, rows=2)
    y = time_stretch(x, torch.tensor([2.0, 0.5]))
    assert rms(y[0, SR // 2 + 600:]) < 1e-3  # content lasts T / 2
    assert rms(y[1, -2000:]) > 0.3  # slowed tone fills the whole clip
    with pytest.raises(ValueError, match="positive"):
        time_stretch(x, torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="n_fft"):
        time_stretch(x, torch.ones(2), n_fft=100, hop=64)


def test_stft_istft_round_trip_and_lowpass():
    x = torch.randn(2, 3001, generator=torch.Generator().manual_seed(0))
    # float32 FFT round trip of |x| <= 4.1: 2.1e-6 observed; 2e-4 (~400 eps x 4.1) leaves ~100x
    # for other FFT kernels and is far below a wrong window/envelope (errors ~ |x|).
    assert torch.allclose(istft(stft(x, 512, 128), 512, 128, 3001), x, atol=2e-4)
    assert torch.allclose(istft(stft(x, 400, 160), 400, 160, 3001), x, atol=2e-4)  # n_fft % hop != 0
    y = lowpass(tone(1000.0, rows=2) + tone(6000.0, rows=2), torch.tensor([0.5, 1.0]))
    assert abs(float(rms(y[0])) - 0.5 / math.sqrt(2)) < 0.01  # 6 kHz gone, 1 kHz kept
    assert abs(float(rms(y[1])) - 0.5) < 0.01


# ---------------------------------------------------------------- waveform ops


@pytest.mark.parametrize("direction", ["in", "out"])
def test_fades_ramp_monotonically_and_are_one_elsewhere(direction):
    t_len = 1000
    x = torch.ones(3, t_len)
    fraction = torch.tensor([0.5, 0.25, 0.1])
    y = fade(x, fraction, torch.tensor([0, 1, 2]), SHAPES, direction)
    for row, f in zip(y, fraction.tolist()):
        n = round(f * t_len)
        gain = row if direction == "in" else row.flip(0)
        ramp = gain[:n]
        assert ramp[0] == 0.0 and (ramp.diff() > 0).all() and (ramp < 1).all()
        assert (gain[n:] == 1.0).all()
    # Shapes: at half the ramp linear is 0.5, logarithmic rises fast, exponential slowly.
    half = fade(torch.ones(3, 100), torch.full((3,), 1.0), torch.tensor([0, 1, 2]), SHAPES, "in")[:, 50]
    assert abs(float(half[0]) - 0.5) < 1e-6 and half[1] > 0.8 and half[2] < 0.15
    with pytest.raises(ValueError, match="direction"):
        fade(x, fraction, torch.zeros(3, dtype=torch.long), SHAPES, "sideways")


@pytest.mark.parametrize("f_decay", [0.0, -3.01, -6.02])
def test_noise_snr_matches_sampled_value(f_decay):
    g = torch.Generator().manual_seed(1)
    x = tone(440.0, rows=3) + 0.1 * torch.randn(3, SR, generator=g)
    snr = torch.tensor([3.0, 12.5, 30.0])
    y = add_coloured_noise(x, snr, torch.full((3,), f_decay), g)
    measured = 10 * torch.log10(x.double().pow(2).mean(1) / (y - x).double().pow(2).mean(1))
    assert (measured - snr.double()).abs().max() < 1.0


def test_noise_colour_follows_slope_and_silent_rows_stay_silent():
    g = torch.Generator().manual_seed(2)
    x = torch.zeros(2, 1 << 15)
    x[0] = torch.randn(1 << 15, generator=g)
    noise = add_coloured_noise(x[:1].expand(2, -1).contiguous(), torch.zeros(2), torch.tensor([0.0, -6.02]), g) - x[0]
    power = torch.fft.rfft(noise.double()).abs().pow(2)
    low = power[:, 256:512].mean(1)  # one octave, four octaves below the next band
    high = power[:, 4096:8192].mean(1)
    slope = 10 * torch.log10(high / low) / 4  # dB per octave
    assert abs(float(slope[0])) < 1.0 and abs(float(slope[1]) + 6.02) < 1.0
    silent = add_coloured_noise(torch.zeros(1, 100), torch.tensor([10.0]), torch.tensor([-3.0]), g)
    assert torch.equal(silent, torch.zeros(1, 100))


def test_time_mask_zeroes_one_short_span():
    x = torch.randn(3, 800, generator=torch.Generator().manual_seed(3)) + 5.0  # no zeros inside
    start = torch.tensor([0.0, 0.5, 0.875])
    fraction = torch.tensor([0.125, 0.05, 0.125])
    y = time_mask(x, start, fraction)
    for row, src, s, f in zip(y, x, start.tolist(), fraction.tolist()):
        zero = (row == 0).nonzero().squeeze(1)
        assert len(zero) == math.floor(f * 800) <= 800 // 8
        assert int(zero[0]) == math.floor(s * 800) and (zero.diff() == 1).all()
        keep = row != 0
        assert torch.equal(row[keep], src[keep])
    noisy = time_mask(x, start, fraction, fill="noise", generator=torch.Generator().manual_seed(0))
    span = noisy[1, 400:440]
    assert (span != x[1, 400:440]).all() and (span != 0).all()
    assert float(rms(span)) < 3 * MASK_NOISE_LEVEL * float(rms(x[1]))
    with pytest.raises(ValueError, match="generator"):
        time_mask(x, start, fraction, fill="noise")


def test_time_shift_rolls_each_row():
    x = torch.randn(4, 100, generator=torch.Generator().manual_seed(4))
    fraction = torch.tensor([0.25, -0.5, 0.0, 0.123])
    y = time_shift(x, fraction)
    for row, src, f in zip(y, x, fraction.tolist()):
        assert torch.equal(row, torch.roll(src, round(f * 100)))


# ---------------------------------------------------------------- augmenter


@pytest.mark.parametrize("k", range(len(AUDIO_AUGMENTATIONS)))
def test_an_inactive_augmentation_never_fires(k):
    aug = BatchedAugmenter(config_p1())
    x = tone(330.0, 0.25, rows=6)
    active = torch.ones(6, 7, dtype=torch.bool)
    active[:, k] = False
    _, params = aug(x, active, torch.Generator().manual_seed(k), return_params=True)
    assert not params[AUDIO_AUGMENTATIONS[k]]["applied"].any()
    others = [n for j, n in enumerate(AUDIO_AUGMENTATIONS) if j != k]
    assert all(params[n]["applied"].all() for n in others)
    # The augmentation on its own changes every row; with its bit off nothing changes.
    assert (aug(x, only(k, 6), torch.Generator().manual_seed(k)) != x).any(dim=1).all()
    assert torch.equal(aug(x, torch.zeros(6, 7, dtype=torch.bool), torch.Generator().manual_seed(k)), x)


def test_same_seed_same_views_and_different_seed_different():
    aug = BatchedAugmenter(AugmentConfig())
    x = torch.randn(4, 4000, generator=torch.Generator().manual_seed(5))
    active = torch.ones(4, 7, dtype=torch.bool)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    a1, a2 = aug(x, active, g1), aug(x, active, g1)  # two views from one generator
    b1, b2 = aug(x, active, g2), aug(x, active, g2)
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, a2)
    assert not torch.equal(a1, aug(x, active, torch.Generator().manual_seed(8)))


def test_return_params_and_apply_reproduce_the_call():
    aug = BatchedAugmenter(AugmentConfig())
    x = torch.randn(8, 4000, generator=torch.Generator().manual_seed(6))
    active = torch.rand(8, 7, generator=torch.Generator().manual_seed(0)) > 0.3
    out, params = aug(x, active, torch.Generator().manual_seed(9), return_params=True)
    expected = sample_params(aug.config, active, torch.Generator().manual_seed(9))
    assert set(params) == set(AUDIO_AUGMENTATIONS)
    for name in AUDIO_AUGMENTATIONS:
        assert set(params[name]) == set(expected[name])
        for key in params[name]:
            assert torch.equal(params[name][key], expected[name][key])
        assert not (params[name]["applied"] & ~active[:, AUDIO_AUGMENTATIONS.index(name)]).any()
    # Without a generator, apply derives the noise seed from the parameters: deterministic.
    again = aug.apply(x, params)
    assert torch.equal(again, aug.apply(x, params)) and torch.isfinite(again).all()
    assert params_seed(params) == params_seed({n: dict(p) for n, p in params.items()})


def test_apply_runs_augmentations_in_order_on_applied_rows_only():
    aug = BatchedAugmenter(AugmentConfig())
    x = torch.randn(3, 2000, generator=torch.Generator().manual_seed(10))
    params = sample_params(config_p1(), torch.zeros(3, 7, dtype=torch.bool), torch.Generator().manual_seed(1))
    params["fade_in"]["applied"] = torch.tensor([True, True, False])
    params["time_shift"]["applied"] = torch.tensor([True, False, False])
    before = x.clone()
    y = aug.apply(x, params)
    assert torch.equal(x, before)  # input untouched
    faded = fade(x[:2], params["fade_in"]["fraction"][:2], params["fade_in"]["shape"][:2], SHAPES, "in")
    assert torch.equal(y[0], time_shift(faded[:1], params["time_shift"]["fraction"][:1])[0])
    assert torch.equal(y[1], faded[1])
    assert torch.equal(y[2], x[2])  # nothing applied: bit-identical


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_all_seven_keep_dtype_device_length_and_loudness(device, dtype):
    aug = BatchedAugmenter(config_p1(time_mask=1.0))
    x = (tone(220.0, 0.5, rows=4) + tone(1500.0, 0.5, amp=0.2, rows=4)).to(device, dtype)
    active = torch.ones(4, 7, dtype=torch.bool)
    active[3] = False
    before = x.clone()
    y = aug(x, active, torch.Generator().manual_seed(11))
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
    assert torch.isfinite(y).all() and torch.equal(x, before)
    assert torch.equal(y[3], x[3])
    assert ((rms(y[:3]) > 0.05) & (rms(y[:3]) < 2.0)).all()


def test_bad_inputs_raise_clear_errors():
    aug = BatchedAugmenter(AugmentConfig())
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        aug(torch.zeros(10), torch.ones(1, 7, dtype=torch.bool), g)
    with pytest.raises(ValueError, match="active"):
        aug(torch.zeros(2, 10), torch.ones(3, 7, dtype=torch.bool), g)
    params = sample_params(aug.config, torch.ones(2, 7, dtype=torch.bool), g)
    with pytest.raises(ValueError, match="expected \\(3,\\)"):
        aug.apply(torch.zeros(3, 10), params)
    del params["noise"]
    with pytest.raises(ValueError, match="noise"):
        aug.apply(torch.zeros(2, 10), params)
    with pytest.raises(ValueError, match="sample_rate"):
        BatchedAugmenter(AugmentConfig(), sample_rate=0)
    with pytest.raises(ValueError, match="unknown shape"):
        fade(torch.ones(1, 10), torch.ones(1), torch.zeros(1, dtype=torch.long), ["cubic"], "in")
    assert same_device(torch.device("cuda"), torch.device("cuda:0"))
    assert not same_device(torch.device("cpu"), torch.device("cuda:0"))


def test_pitch_shift_of_a_row_does_not_depend_on_its_batch_mates():
    """Near-silent STFT bins carry rounding-noise phases; accumulating them made a row's
    output depend on last-bit differences between batched and single-row FFTs (whole rows
    differed by the signal's own size). Up to the last frames (group lengths differ), a row
    now comes out the same alone or in a batch. The two down-shifted rows here are each alone
    in their resampling group: a down-shifted row that shares a group with larger ratios is
    resampled with the group's FFT length and differs by up to ~1e-3 x scale (a known limit)."""
    from aiaudio.data.synthetic import SyntheticConfig, synthesise_batch

    x = torch.from_numpy(synthesise_batch(range(8), SyntheticConfig(n_clips=8, seconds=0.5, seed=0))).double()
    semitones = torch.tensor([3.0, -7.0, 11.0, 0.5, 14.0, -14.0, 1.0, 6.0], dtype=torch.float64)
    batch = pitch_shift(x, semitones, 128, 64)
    for i in range(8):
        alone = pitch_shift(x[i:i + 1], semitones[i:i + 1], 128, 64)[0]
        scale = float(batch[i].abs().max())
        # float64, but the vocoder amplifies last-bit FFT differences (other group lengths,
        # CPU-dependent FFT kernels) in quiet bins: 1.5e-9 x scale here (row 7), and up to
        # 1.4e-6 x scale over 3200 random up-shifted rows. 1e-4 x scale keeps ~70x over that
        # tail and is still 1e4 below the bug (rows differing by ~scale).
        assert float((batch[i, :-512] - alone[:-512]).abs().max()) < 1e-4 * scale, i
