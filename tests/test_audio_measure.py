"""Fixed-strength transforms for invariance measurement."""
import math

import pytest
import torch

from aiaudio.augment.batched import BatchedAugmenter
from aiaudio.augment.config import AugmentConfig
from aiaudio.frontend import Frontend, FrontendConfig
from aiaudio.measure import (DEFAULT_STRENGTHS, IDENTITY, STRENGTH_PARAM, frontend_prepare, invariance_transforms,
                             parse_strengths, strength_params)
from aiaudio.space import AUDIO_AUGMENTATIONS

SR = 16000


def tone(freq: float, n: int = 2, seconds: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return (0.5 * torch.sin(2 * math.pi * freq * t)).repeat(n, 1)


def test_identity_strength_returns_input_for_every_augmentation():
    wave = torch.randn(3, 4000, generator=torch.Generator().manual_seed(0))
    for name, transform in invariance_transforms().items():
        out = transform(wave, IDENTITY[name], torch.Generator().manual_seed(1))
        assert torch.equal(out, wave) and out is not wave, name


def test_pitch_shift_octave_moves_spectral_peak():
    out = invariance_transforms(["pitch_shift"])["pitch_shift"](tone(440.0), 12.0, torch.Generator().manual_seed(0))
    freqs = torch.fft.rfftfreq(out.shape[1], 1 / SR)
    peak = freqs[torch.fft.rfft(out[0]).abs().argmax()]
    assert abs(float(peak) - 880.0) <= 4.0


def test_time_shift_rolls_by_fraction_and_fades_mask_act_as_documented():
    wave = torch.randn(2, 1000, generator=torch.Generator().manual_seed(0))
    transforms = invariance_transforms()
    g = torch.Generator().manual_seed(0)
    assert torch.equal(transforms["time_shift"](wave, 0.25, g), torch.roll(wave, 250, dims=1))
    assert torch.equal(transforms["time_shift"](wave, -0.1, g), torch.roll(wave, -100, dims=1))
    faded = transforms["fade_in"](wave, 0.5, g)
    assert torch.all(faded[:, 0] == 0) and torch.equal(faded[:, 500:], wave[:, 500:])
    masked = transforms["time_mask"](wave, 0.1, g)
    assert ((masked == 0) & (wave != 0)).sum(1).tolist() == [100, 100]
    noisy = transforms["noise"](wave, 10.0, g)
    snr = 10 * torch.log10(wave.square().mean(1) / (noisy - wave).square().mean(1))
    torch.testing.assert_close(snr, torch.full((2,), 10.0), atol=1e-3, rtol=0)
    stretched = transforms["time_stretch"](tone(440.0, 1), 2.0, g)
    assert stretched[0, 5000:].abs().max() < 1e-3 < stretched[0, :3000].abs().max()  # content lasts T / rate


def test_transforms_deterministic_given_generator_and_match_batched_apply():
    wave = torch.randn(2, 4000, generator=torch.Generator().manual_seed(3))
    config = AugmentConfig()
    for name, transform in invariance_transforms(config=config).items():
        strength = DEFAULT_STRENGTHS[name][-1]
        a = transform(wave, strength, torch.Generator().manual_seed(7))
        b = transform(wave, strength, torch.Generator().manual_seed(7))
        assert torch.equal(a, b) and a.shape == wave.shape and not torch.equal(a, wave), name
        g = torch.Generator().manual_seed(7)
        params = strength_params(name, strength, 2, config, g)
        assert params[name]["applied"].all() and params[name][STRENGTH_PARAM[name]].tolist() == [strength] * 2
        assert all(not params[o]["applied"].any() for o in AUDIO_AUGMENTATIONS if o != name)
        noise_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))
        assert torch.equal(a, BatchedAugmenter(config).apply(wave, params, noise_gen)), name
    noise = invariance_transforms(["noise"])["noise"]
    assert not torch.equal(noise(wave, 10.0, torch.Generator().manual_seed(1)),
                           noise(wave, 10.0, torch.Generator().manual_seed(2)))


def test_grids_cover_reference_ranges_and_parse_errors():
    assert min(DEFAULT_STRENGTHS["pitch_shift"]) == -15 and max(DEFAULT_STRENGTHS["pitch_shift"]) == 15
    assert (min(DEFAULT_STRENGTHS["noise"]), max(DEFAULT_STRENGTHS["noise"])) == (3, 30)
    assert (min(DEFAULT_STRENGTHS["time_stretch"]), max(DEFAULT_STRENGTHS["time_stretch"])) == (0.5, 1.5)
    assert max(DEFAULT_STRENGTHS["fade_in"]) == 0.5 and max(DEFAULT_STRENGTHS["time_mask"]) == 0.125
    grids = parse_strengths(["noise=20,5"], DEFAULT_STRENGTHS)
    assert grids["noise"] == [20.0, 5.0] and grids["fade_in"] == list(DEFAULT_STRENGTHS["fade_in"])
    with pytest.raises(KeyError, match="unknown augmentation 'reverb'"):
        parse_strengths(["reverb=1"], DEFAULT_STRENGTHS)
    with pytest.raises(ValueError, match="out of range"):
        parse_strengths(["time_stretch=0"], DEFAULT_STRENGTHS)
    with pytest.raises(ValueError, match="name=v1,v2"):
        parse_strengths(["noise"], DEFAULT_STRENGTHS)


def test_prepare_is_the_frontend():
    frontend = Frontend(FrontendConfig(n_fft=256, hop_length=128, n_mels=16)).fit([tone(300.0)])
    prepare = frontend_prepare(frontend, batch_size=1)
    wave = tone(500.0, 3)
    torch.testing.assert_close(prepare(wave), frontend(wave))
