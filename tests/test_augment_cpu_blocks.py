"""Row blocks in parallel threads on the CPU (aiaudio.augment.cpu_blocks via BatchedAugmenter)."""
import pytest
import torch

from aiaudio.augment.batched import BatchedAugmenter
from aiaudio.augment.config import AugmentConfig
from aiaudio.augment.cpu_blocks import run_in_row_blocks
from aiaudio.augment.sampling import sample_params
from aiaudio.space import AUDIO_AUGMENTATIONS
from core.config import ConfigError


def _config(block_rows: int, **p) -> AugmentConfig:
    probabilities = {name: {"p": p.get(name, 1.0)} for name in AUDIO_AUGMENTATIONS}
    return AugmentConfig.from_dict({"cpu_block_rows": block_rows, **probabilities})


def _batch(rows: int = 40, length: int = 8000) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    t = torch.arange(length) / 16000
    tone = 0.3 * torch.sin(2 * torch.pi * 330 * t) * torch.rand(rows, 1, generator=g)
    return tone + 0.01 * torch.randn(rows, length, generator=g)


def _views(cfg: AugmentConfig, wave: torch.Tensor, threads: int, seed: int = 0) -> torch.Tensor:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return BatchedAugmenter(cfg)(wave, torch.ones(7, dtype=torch.bool), torch.Generator().manual_seed(seed))
    finally:
        torch.set_num_threads(before)


def test_blocks_give_the_same_views_whatever_the_thread_count():
    wave = _batch()
    cfg = _config(16)  # blocks of 16, 16 and 8 rows
    one, two = _views(cfg, wave, 1), _views(cfg, wave, 2)
    assert one.shape == wave.shape and torch.equal(one, two)
    assert not torch.equal(one, _views(cfg, wave, 2, seed=1))


def test_blocks_match_the_whole_batch_where_no_noise_is_drawn():
    """Without noise the blocks compute what the whole batch does. (The pitch shift is left
    out: its last frames depend on the lengths of its row group, so a row's tail changes with
    its batch mates, blocked or not; test_augment_batched bounds that separately.)"""
    wave = _batch()
    blocked = _views(_config(16, noise=0.0, pitch_shift=0.0), wave, 2)
    whole = _views(_config(0, noise=0.0, pitch_shift=0.0), wave, 2)
    # Here rows match bit for bit except the last frames of 3 time-stretched rows (other group
    # lengths): max 4.6e-4 (1.2e-3 x scale), mean 1.5e-8. Where a CPU's FFT rounds differently
    # by batch size, the vocoder's magnitude comparisons can flip and move one frame of a row by
    # up to ~1e-2 x scale. A block given the wrong rows or parameters is off by ~scale, so the
    # mean bound catches it 1000x over; the max bound only stops gross errors.
    scale = float(whole.abs().max())
    assert (blocked - whole).abs().max() < 0.25 * scale
    assert (blocked - whole).abs().mean() < 1e-4 * scale


def test_each_block_draws_its_own_noise():
    wave = torch.zeros(32, 4000)
    wave[:, ::50] = 1.0  # identical clips
    cfg = _config(8)
    params = sample_params(cfg, torch.ones(32, 7, dtype=torch.bool), torch.Generator().manual_seed(0))
    for name in AUDIO_AUGMENTATIONS:  # only noise, same SNR and colour on every row
        params[name]["applied"][:] = name == "noise"
    params["noise"]["snr_db"][:] = 10.0
    params["noise"]["f_decay"][:] = -3.0
    out = BatchedAugmenter(cfg).apply(wave, params, torch.Generator().manual_seed(3))
    noise = out - wave
    assert not torch.equal(noise[0], noise[8]) and not torch.equal(noise[0], noise[1])
    power = noise.square().mean(dim=1)
    assert torch.allclose(power, power[0].expand(32), rtol=1e-3)  # exact SNR in every block


def test_thread_setting_is_restored_even_when_a_block_fails():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    wave = torch.zeros(10, 100)
    params = {"x": {"v": torch.zeros(10)}}

    def failing(rows, p, g):
        raise RuntimeError("block failed")

    try:
        with pytest.raises(RuntimeError, match="block failed"):
            run_in_row_blocks(failing, wave, params, torch.Generator().manual_seed(0), 4)
        assert torch.get_num_threads() == 2
        got = run_in_row_blocks(lambda rows, p, g: rows + p["x"]["v"][:, None], wave, params,
                                torch.Generator().manual_seed(0), 4)
        assert torch.equal(got, wave) and torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="block_rows"):
            run_in_row_blocks(failing, wave, params, torch.Generator(), 0)
    finally:
        torch.set_num_threads(before)


def test_cpu_block_rows_is_validated():
    assert AugmentConfig().cpu_block_rows == 32
    with pytest.raises(ConfigError, match="cpu_block_rows"):
        AugmentConfig.from_dict({"cpu_block_rows": -1})
    with pytest.raises(KeyError):
        AugmentConfig().of("cpu_block_rows")
