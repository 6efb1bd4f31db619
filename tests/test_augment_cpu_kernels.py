"""The compiled CPU kernels (aiaudio.augment.cpu_kernels) against the tensor code they replace."""
import math

import pytest
import torch

from aiaudio.augment import cpu_kernels
from aiaudio.augment.phase_vocoder import (_ola_envelope, hann_window, istft, pitch_shift, stft, time_stretch,
                                           vocode, vocode_tensor)
from aiaudio.augment.resample import _oversampled, fft_size, resample

SR = 16000


@pytest.fixture
def tensor_code(monkeypatch):
    """Run the tensor code on the CPU (the compiled kernels switched off)."""
    monkeypatch.setenv(cpu_kernels.ENV_SWITCH, "0")


def both(fn):
    """``fn()`` with the compiled kernels, then with the tensor code."""
    compiled = fn()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(cpu_kernels.ENV_SWITCH, "0")
        return compiled, fn()


def test_enabled_only_for_float32_on_the_cpu_and_switchable(monkeypatch):
    assert cpu_kernels.enabled(torch.zeros(2, dtype=torch.float32))
    assert cpu_kernels.enabled(torch.zeros(2, dtype=torch.complex64))
    assert not cpu_kernels.enabled(torch.zeros(2, dtype=torch.float64))
    assert not cpu_kernels.enabled(torch.zeros(2, dtype=torch.complex128))
    monkeypatch.setenv(cpu_kernels.ENV_SWITCH, "0")
    assert not cpu_kernels.enabled(torch.zeros(2, dtype=torch.float32))


def _signals(rows: int = 6, length: int = 24000) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(length) / SR
    x = 0.3 * torch.sin(2 * math.pi * 440 * t) + 0.05 * torch.randn(rows, length, generator=g)
    x[1] = 0.0  # a silent row
    x[2, length // 2:] = 0.0  # a row that goes silent
    return x


@pytest.mark.parametrize("lock", [True, False])
def test_vocode_kernel_matches_tensor_code(lock):
    spec = stft(_signals(), 512, 256)
    rate = torch.tensor([0.5, 0.8, 1.0, 1.25, 1.5, 2.5], dtype=torch.float64)
    pos = torch.arange(120, dtype=torch.float64)[None] * rate[:, None]  # some read past the last frame
    got, want = vocode(spec, pos, lock), vocode_tensor(spec, pos, lock)
    assert got.shape == want.shape == (6, 120, 257) and got.dtype == torch.complex64
    # Two float32 implementations (the kernel contracts to FMAs) of phasors accumulated over
    # 120 frames: 1.6e-6 x max observed, up to 4.4e-6 over 180 other signals; a wrong kernel is off by ~max.
    assert (got - want).abs().max() <= 1e-3 * want.abs().max()
    assert got[1].abs().max() == 0 and got[5, 80:].abs().max() == 0  # silence, and past the end


def test_vocode_kernel_single_frame_and_fractional_positions():
    spec = stft(torch.randn(2, 100, generator=torch.Generator().manual_seed(0)), 512, 256)  # one frame
    pos = torch.tensor([[0.0, 0.25, 0.5, 1.0, 3.0]] * 2, dtype=torch.float64)
    got, want = vocode(spec, pos), vocode_tensor(spec, pos)
    assert (got - want).abs().max() <= 1e-3 * want.abs().max()  # ~3e-7 x max observed (float32)


def test_kernels_give_the_same_rows_whatever_the_batch_and_thread_count():
    x = _signals(rows=8)
    spec = stft(x, 512, 256)
    pos = torch.arange(90, dtype=torch.float64)[None] * torch.linspace(0.5, 1.5, 8, dtype=torch.float64)[:, None]
    # Exact equality holds by construction for the kernels (each row computed alone by the same
    # compiled code), not for torch's FFT inside istft (MKL may split a batch differently with
    # the thread count): the overlap-add kernel gets frames computed once.
    frames = torch.fft.irfft(spec, n=512, dim=2)
    window = hann_window(512, spec.device, torch.float32)
    envelope = _ola_envelope(512, 256, spec.shape[1], spec.device, torch.float32)

    def ola():
        return cpu_kernels.overlap_add(frames, window, envelope, 256, 256, 8000)

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = vocode(spec, pos), ola()
        torch.set_num_threads(3)  # three row blocks of 3, 3 and 2 rows
        three = vocode(spec, pos), ola()
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], three[0]) and torch.equal(one[1], three[1])
    assert torch.equal(vocode(spec[3:4], pos[3:4]), one[0][3:4])


@pytest.mark.parametrize("n_fft,hop", [(512, 256), (512, 128), (400, 160)])
@pytest.mark.parametrize("length_delta", [0, 700, -5000])
def test_overlap_add_kernel_matches_tensor_istft(n_fft, hop, length_delta):
    x = _signals(rows=3, length=8000)
    spec = stft(x, n_fft, hop)
    length = 8000 + length_delta
    got, want = both(lambda: istft(spec, n_fft, hop, length))
    assert got.shape == want.shape == (3, length)
    assert (got - want).abs().max() < 1e-5
    if length_delta == 0:
        assert (got - x).abs().max() < 1e-4  # and the round trip still holds


@pytest.mark.parametrize("length", [24000, 24001])
def test_resample_kernels_match_tensor_code(length):
    x = _signals(length=length)
    ratio = torch.tensor([0.6, 0.9, 1.0, 1.2, 1.8, 2.4], dtype=torch.float64)
    # float32 kernels (FMA-contracted cubic, float32 cos in the low-pass) vs tensor code on
    # |x| <= 0.5: 1.2e-7 observed; 1e-4 leaves ~800x and is far below a wrong read (~1e-2).
    got, want = both(lambda: resample(x, ratio, 20000, keep_fraction=(1.0 / ratio).clamp(max=1.0)))
    assert (got - want).abs().max() < 1e-4
    got, want = both(lambda: resample(x, ratio, length))
    assert (got - want).abs().max() < 1e-4
    assert got[5, math.ceil(length / 2.4):].abs().max() == 0  # past the end of the row: zeros


@pytest.mark.parametrize("fft_len", [3000, 3125])
def test_oversampling_by_delayed_phases_equals_one_long_transform(fft_len):
    x = torch.randn(3, fft_len, dtype=torch.float64)
    spec = torch.fft.rfft(x, dim=1)
    if fft_len % 2 == 0:
        spec[:, -1] = 0.0
    for os_ in (2, 3):
        long = torch.fft.irfft(spec, n=fft_len * os_, dim=1)[:, :fft_len * os_] * os_
        assert torch.allclose(_oversampled(spec, fft_len, fft_len, os_), long, atol=1e-12)
    assert fft_size(64001) == 64800


def test_pitch_shift_and_stretch_agree_between_kernels_and_tensor_code():
    x = _signals()
    semis = torch.tensor([-15.0, -4.0, 0.0, 3.0, 9.0, 15.0])
    rates = torch.tensor([0.5, 0.75, 1.0, 1.1, 1.3, 1.5])
    for fn, values in ((pitch_shift, semis), (time_stretch, rates)):
        got, want = both(lambda: fn(x, values))
        # Typically ~1e-6 x scale apart (float32, two implementations). But the vocoder's
        # magnitude comparisons (phase locking, silent floor) can flip on last-bit input
        # differences: in ~3% of random signals one frame of one pitch-shifted row then differs
        # by up to 1.2e-2 x scale (<= 0.3% of the samples). So: 99% of samples within
        # 1e-4 x scale and none beyond 0.25 x scale; a wrong kernel or wiring is off by ~scale
        # nearly everywhere.
        diff, scale = (got - want).abs().flatten(), float(want.abs().max())
        assert float(torch.quantile(diff, 0.99)) < 1e-4 * scale and float(diff.max()) < 0.25 * scale


def test_physical_checks_hold_on_the_tensor_code_too(tensor_code):
    assert not cpu_kernels.enabled(torch.zeros(1))
    t = torch.arange(SR) / SR
    shifted = pitch_shift(0.5 * torch.sin(2 * math.pi * 440 * t)[None], torch.tensor([12.0]))
    spectrum = torch.fft.rfft(shifted[0].double()).abs()
    assert abs(float(spectrum.argmax()) - 880.0) <= 2.0
    burst = torch.zeros(1, SR)
    burst[0, 2000:6000] = torch.sin(2 * math.pi * 440 * torch.arange(4000) / SR)
    stretched = time_stretch(burst, torch.tensor([0.5]))
    loud = (stretched[0].abs() > 0.5).nonzero()
    assert stretched.shape == (1, SR)
    assert abs(int(loud[-1] - loud[0]) - 8000) < 0.03 * 8000 + 256


def _checksum(spec: torch.Tensor) -> float:
    return float(abs(torch.view_as_real(spec).numpy().astype("float64")).sum())  # numpy: no torch threads


def _vocode_in_child(queue, spec, pos) -> None:
    queue.put(_checksum(vocode(spec, pos)))


def test_a_forked_child_runs_the_kernels_after_the_parent_did():
    """The parent's kernel thread pool exists before the fork; the child must not wait on
    its (absent) threads. (Only the kernel runs in the child: torch's own threaded ops are not
    fork-safe, which is why DataLoader workers run with one thread.)"""
    import multiprocessing

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        spec = stft(_signals(rows=4, length=8000), 512, 256)
        pos = torch.arange(40, dtype=torch.float64)[None].repeat(4, 1) * 0.8
        want = _checksum(vocode(spec, pos))
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_vocode_in_child, args=(queue, spec, pos))
        child.start()
        try:
            got = queue.get(timeout=60)
        except Exception:  # queue.Empty after the timeout
            got = None
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
        assert got is not None, "the forked child hung on the parent's kernel thread pool"
        assert child.exitcode == 0 and got == want
    finally:
        torch.set_num_threads(threads)
