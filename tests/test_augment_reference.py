"""The audiomentations reference backend: physical sanity of each augmentation on short clips."""
import numpy as np
import pytest
import torch

from aiaudio.augment.config import FADE_SHAPES, AugmentConfig
from aiaudio.augment.ops import MASK_NOISE_LEVEL
from aiaudio.augment.reference import AudiomentationsAugmenter, fade_curve, fade_gains
from aiaudio.augment.sampling import sample_params
from aiaudio.space import AUDIO_AUGMENTATIONS

SR = 16000
T = 8000  # 0.5 s clips keep pitch shift and stretch cheap


def tone(freq: float = 440.0, n: int = T, amp: float = 0.5) -> torch.Tensor:
    return amp * torch.sin(2 * torch.pi * freq * torch.arange(n, dtype=torch.float64) / SR).float()


def peak_hz(x: torch.Tensor) -> float:
    spec = np.abs(np.fft.rfft(x.numpy() * np.hanning(x.shape[-1])))
    return float(np.argmax(spec)) * SR / x.shape[-1]


def only(name: str, batch: int = 1, config: AugmentConfig | None = None, **values: float):
    """Parameters where only ``name`` is applied, with the given values for every clip."""
    config = config or AugmentConfig()
    params = sample_params(config, torch.zeros(batch, 7, dtype=torch.bool), torch.Generator().manual_seed(0))
    for key, v in values.items():
        dtype = torch.long if key == "shape" else torch.float32
        params[name][key] = torch.full((batch,), v, dtype=dtype)
    params[name]["applied"] = torch.ones(batch, dtype=torch.bool)
    return params


@pytest.fixture(scope="module")
def aug() -> AudiomentationsAugmenter:
    return AudiomentationsAugmenter(AugmentConfig(), sample_rate=SR)


@pytest.mark.parametrize("semitones, ratio", [(12.0, 2.0), (-12.0, 0.5), (7.0, 2 ** (7 / 12))])
def test_pitch_shift_moves_spectral_peak(aug, semitones, ratio):
    out = aug.apply(tone()[None], only("pitch_shift", semitones=semitones))
    assert out.shape == (1, T)
    assert peak_hz(out[0]) == pytest.approx(440.0 * ratio, rel=0.03)


def test_fade_curve_shapes():
    x = np.linspace(0, 1, 101)
    for shape in FADE_SHAPES:
        y = fade_curve(x, shape)
        assert y[0] == pytest.approx(0.0, abs=1e-12) and y[-1] == pytest.approx(1.0)
        assert np.all(np.diff(y) > 0)
    mid = {s: float(fade_curve(np.array(0.5), s)) for s in FADE_SHAPES}
    assert mid["exponential"] < mid["linear"] == 0.5 < mid["logarithmic"]
    # logarithmic and exponential are inverse functions of one another
    assert np.allclose(fade_curve(fade_curve(x, "logarithmic"), "exponential"), x)
    with pytest.raises(ValueError, match="unknown shape 'cosine'"):
        fade_curve(x, "cosine")


@pytest.mark.parametrize("name", ["fade_in", "fade_out"])
@pytest.mark.parametrize("shape_index", [0, 1, 2])
def test_fade_envelope_on_constant_clip(aug, name, shape_index):
    length = int(round(0.25 * T))
    out = aug.apply(torch.ones(1, T), only(name, fraction=0.25, shape=shape_index))[0]
    ramp = out[:length] if name == "fade_in" else out[T - length:].flip(0)
    rest = out[length:] if name == "fade_in" else out[:T - length]
    assert ramp[0] == 0.0 and torch.all(ramp.diff() > 0) and float(ramp[-1]) > 0.99
    assert torch.equal(rest, torch.ones_like(rest))
    shape = AugmentConfig().of(name).shapes[shape_index]
    expected = fade_curve(np.array(0.5), shape)
    assert float(ramp[length // 2]) == pytest.approx(float(expected), abs=1e-4)


def test_fade_gains_zero_length_and_bad_kind():
    assert np.array_equal(fade_gains(100, 0.0, "linear", "in"), np.ones(100, np.float32))
    with pytest.raises(ValueError, match="'sideways'"):
        fade_gains(100, 0.1, "linear", "sideways")


@pytest.mark.parametrize("f_decay", [0.0, -3.01, -6.02])
@pytest.mark.parametrize("snr_db", [3.0, 20.0])
def test_noise_reaches_sampled_snr(aug, f_decay, snr_db):
    x = tone()[None]
    out = aug.apply(x, only("noise", snr_db=snr_db, f_decay=f_decay), torch.Generator().manual_seed(1))
    noise = (out - x)[0].double()
    measured = 20 * torch.log10(x[0].double().pow(2).mean().sqrt() / noise.pow(2).mean().sqrt())
    assert float(measured) == pytest.approx(snr_db, abs=1.0)


def test_noise_reproducible_and_leaves_numpy_state_alone(aug):
    x, params = tone()[None].repeat(2, 1), only("noise", batch=2, snr_db=10.0, f_decay=-3.0)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = aug.apply(x, params, torch.Generator().manual_seed(5))
    assert np.array_equal(np.random.get_state()[1], before)
    b = aug.apply(x, params, torch.Generator().manual_seed(5))
    c = aug.apply(x, params, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # each clip gets its own noise


def test_time_mask_zeroes_the_sampled_segment(aug):
    out = aug.apply(torch.ones(1, T), only("time_mask", start=0.3, fraction=0.1))[0]
    t0, t = int(0.3 * T), int(0.1 * T)
    expected = torch.ones(T)
    expected[t0:t0 + t] = 0.0
    assert torch.equal(out, expected)


def test_time_mask_noise_fill():
    cfg = AugmentConfig.from_dict({"time_mask": {"fill": "noise"}})
    ref = AudiomentationsAugmenter(cfg, sample_rate=SR)
    x = tone()[None]
    out = ref.apply(x, only("time_mask", config=cfg, start=0.5, fraction=0.125), torch.Generator().manual_seed(0))[0]
    t0, t = int(0.5 * T), int(0.125 * T)
    segment = out[t0:t0 + t]
    assert torch.equal(out[:t0], x[0, :t0]) and torch.equal(out[t0 + t:], x[0, t0 + t:])
    assert float(segment.std()) == pytest.approx(MASK_NOISE_LEVEL * float(x.pow(2).mean().sqrt()), rel=0.15)
    assert abs(float(torch.corrcoef(torch.stack([segment, x[0, t0:t0 + t]]))[0, 1])) < 0.2


@pytest.mark.parametrize("fraction", [0.25, -0.25])
def test_time_shift_rolls_content_later_for_positive(aug, fraction):
    x = torch.zeros(1, T)
    x[0, 100] = 1.0
    out = aug.apply(x, only("time_shift", fraction=fraction))[0]
    assert int(out.argmax()) == (100 + round(fraction * T)) % T
    assert float(out.sum()) == 1.0


@pytest.mark.parametrize("rate", [2.0, 0.5])
def test_time_stretch_moves_events_and_keeps_pitch_and_length(aug, rate):
    burst = torch.zeros(1, T)
    burst[0, 2000:2400] = tone(n=400)
    out = aug.apply(burst, only("time_stretch", rate=rate))[0]
    assert out.shape == (T,)
    energy = out.double().pow(2)
    centre = float((energy * torch.arange(T)).sum() / energy.sum())
    assert centre == pytest.approx(2200 / rate, rel=0.1)
    steady = aug.apply(tone()[None], only("time_stretch", rate=rate))[0]
    assert peak_hz(steady[: int(T / rate) if rate > 1 else T]) == pytest.approx(440.0, rel=0.03)
    if rate > 1:  # content runs out: zero-padded back to the clip length
        assert torch.all(steady[int(T / rate) + 200:] == 0)


def test_nothing_applied_returns_input_with_dtype_and_device(aug):
    x = torch.randn(3, T, dtype=torch.float64) * 0.1
    params = sample_params(AugmentConfig(), torch.zeros(3, 7, dtype=torch.bool), torch.Generator().manual_seed(0))
    out = aug.apply(x, params)
    assert out.dtype == torch.float64 and out.device == x.device
    assert torch.allclose(out, x, atol=1e-7)  # only the float32 round trip


def test_call_uses_shared_sampler_and_is_reproducible(aug):
    x = tone()[None].repeat(2, 1)
    active = torch.ones(2, 7, dtype=torch.bool)
    out, params = aug(x, active, torch.Generator().manual_seed(3), return_params=True)
    expected = sample_params(aug.config, active, torch.Generator().manual_seed(3))
    for name in AUDIO_AUGMENTATIONS:
        for key, value in expected[name].items():
            assert torch.equal(params[name][key], value), (name, key)
    again = aug(x, active, torch.Generator().manual_seed(3))
    assert torch.equal(out, again)
    assert out.shape == x.shape and not torch.equal(out, x)


def test_default_noise_generator_is_deterministic_and_shared_active_row(aug):
    x, params = tone()[None], only("noise", snr_db=10.0, f_decay=0.0)
    assert torch.equal(aug.apply(x, params), aug.apply(x, params))
    shared = aug(x.repeat(2, 1), torch.ones(7, dtype=torch.bool), torch.Generator().manual_seed(2))
    rows = aug(x.repeat(2, 1), torch.ones(2, 7, dtype=torch.bool), torch.Generator().manual_seed(2))
    assert torch.equal(shared, rows)


def test_errors_name_the_problem(aug):
    with pytest.raises(ValueError, match=r"\(B, T\).*\(8000,\)"):
        aug.apply(torch.zeros(T), only("noise"))
    with pytest.raises(ValueError, match="pitch_shift"):
        AudiomentationsAugmenter(AugmentConfig.from_dict({"pitch_shift": {"min_semitones": -30.0}}))
    with pytest.raises(ValueError, match="time_stretch"):
        AudiomentationsAugmenter(AugmentConfig.from_dict({"time_stretch": {"max_rate": 20.0}}))


@pytest.mark.parametrize("name", ["fade_in", "fade_out"])
def test_fade_envelopes_of_both_backends_agree(aug, name):
    batched = pytest.importorskip("aiaudio.augment.batched")
    other = batched.BatchedAugmenter(AugmentConfig(), sample_rate=SR)
    for shape in range(len(FADE_SHAPES)):
        params = only(name, batch=2, fraction=0.3, shape=shape)
        params[name]["fraction"] = torch.tensor([0.3, 0.5])
        ones = torch.ones(2, T)
        ref = aug.apply(ones, params)
        got = other.apply(ones, params, generator=torch.Generator().manual_seed(0))
        # Same curves, same ramp length (round(fraction * T)), same sample positions (i / L).
        assert torch.allclose(got.float(), ref, atol=1e-5), (name, FADE_SHAPES[shape])
