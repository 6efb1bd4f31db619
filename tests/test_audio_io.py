"""Decoding (mono mix, resampling, bad files), writing and the on-disk decode cache."""
import os

import numpy as np
import pytest
import soundfile as sf

from aiaudio.data import AudioCache, AudioDataset, AudioRecord, BadAudioError, decode_audio, write_audio


def tone(seconds: float, rate: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    wave = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return wave if channels == 1 else np.stack([wave * (c + 1) / channels for c in range(channels)], axis=1)


def test_decode_resamples_44k_to_16k(tmp_path):
    path = write_audio(tmp_path / "a.wav", tone(0.5, 44100), 44100)
    wave = decode_audio(path, 16000)
    assert wave.dtype == np.float32 and wave.shape == (8000,)
    # a 440 Hz tone stays a 440 Hz tone: its spectrum peaks at bin 440 / (16000 / 8000) = 220
    assert int(np.argmax(np.abs(np.fft.rfft(wave)))) == 220
    assert 0.45 < float(np.abs(wave[1000:7000]).max()) < 0.55


def test_decode_mixes_stereo_to_mono_by_mean(tmp_path):
    stereo = tone(0.25, 16000, channels=2)  # right channel is twice the left
    path = write_audio(tmp_path / "s.wav", stereo, 16000, subtype="FLOAT")
    wave = decode_audio(path, 16000)
    assert wave.shape == (4000,)
    np.testing.assert_allclose(wave, stereo.mean(axis=1), atol=1e-6)


def test_decode_same_rate_keeps_samples_and_reads_pcm_and_flac(tmp_path):
    wave = tone(0.1, 16000)
    pcm = decode_audio(write_audio(tmp_path / "p.wav", wave, 16000), 16000)
    flac = decode_audio(write_audio(tmp_path / "p.flac", wave, 16000), 16000)
    assert sf.info(str(tmp_path / "p.wav")).subtype == "PCM_16"
    np.testing.assert_allclose(pcm, wave, atol=1 / 2**14)
    np.testing.assert_allclose(flac, wave, atol=1 / 2**14)


def test_write_audio_uses_float_for_out_of_range_or_nan(tmp_path):
    write_audio(tmp_path / "loud.wav", np.full(10, 2.0, np.float32), 16000)
    assert sf.info(str(tmp_path / "loud.wav")).subtype == "FLOAT"
    assert decode_audio(tmp_path / "loud.wav", 16000).max() == pytest.approx(2.0)


@pytest.mark.parametrize("kind, reason", [
    ("garbage", "unreadable"), ("zero_bytes", "unreadable"), ("no_samples", "no samples"),
    ("nan", "non-finite"), ("inf", "non-finite"), ("missing", "does not exist"),
])
def test_bad_files_raise_naming_the_file(tmp_path, kind, reason):
    path = tmp_path / f"bad_{kind}.wav"
    if kind == "garbage":
        path.write_bytes(b"this is not a wav file" * 20)
    elif kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "no_samples":
        write_audio(path, np.zeros(0, np.float32), 16000)
    elif kind in ("nan", "inf"):
        wave = tone(0.1, 44100)
        wave[7] = np.nan if kind == "nan" else np.inf
        write_audio(path, wave, 44100)
    with pytest.raises(BadAudioError) as info:
        decode_audio(path, 16000)
    assert str(path) in str(info.value) and info.value.path == str(path)
    assert reason in info.value.reason


class CountingDecode:
    def __init__(self):
        self.calls = 0

    def __call__(self, path, rate):
        self.calls += 1
        return decode_audio(path, rate)


def test_cache_second_call_does_not_decode(tmp_path):
    path = write_audio(tmp_path / "a.wav", tone(0.3, 44100), 44100)
    cache, decode = AudioCache(tmp_path / "cache"), CountingDecode()
    first = cache.get_or_decode(path, 16000, decode)
    second = cache.get_or_decode(path, 16000, decode)
    assert decode.calls == 1 and (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(first, second)
    assert second.dtype == np.float32 and second.shape == (4800,)
    # a fresh cache object on the same folder (e.g. a new epoch's worker) also hits
    assert np.array_equal(AudioCache(tmp_path / "cache").get_or_decode(path, 16000, decode), first)
    assert decode.calls == 1
    # another sample rate is another entry
    assert cache.get_or_decode(path, 8000, decode).shape == (2400,) and decode.calls == 2
    assert not list((tmp_path / "cache").rglob(".tmp-*"))


def test_cache_redecodes_corrupt_entries_and_changed_files(tmp_path):
    path = write_audio(tmp_path / "a.wav", tone(0.2, 16000), 16000)
    cache, decode = AudioCache(tmp_path / "cache"), CountingDecode()
    cache.get_or_decode(path, 16000, decode)
    entry = cache.entry_path(path, 16000)
    entry.write_bytes(b"\x93NUMPY truncated")
    wave = cache.get_or_decode(path, 16000, decode)
    assert decode.calls == 2 and wave.shape == (3200,)
    assert np.array_equal(np.load(entry), wave)  # rewritten correctly
    # replacing the source file changes size/mtime, so the old entry is not served
    write_audio(path, tone(0.1, 16000), 16000)
    os.utime(path, ns=(1, 1))
    assert cache.get_or_decode(path, 16000, decode).shape == (1600,) and decode.calls == 3


def test_cache_does_not_store_failures(tmp_path):
    path = tmp_path / "bad.wav"
    path.write_bytes(b"junk" * 10)
    cache = AudioCache(tmp_path / "cache")
    for _ in range(2):
        with pytest.raises(BadAudioError, match="bad.wav"):
            cache.get_or_decode(path, 16000, decode_audio)
    assert not list((tmp_path / "cache").rglob("*.npy"))
    with pytest.raises(BadAudioError, match="does not exist"):
        cache.get_or_decode(tmp_path / "gone.wav", 16000, decode_audio)


def test_dataset_load_goes_through_cache(tmp_path):
    path = write_audio(tmp_path / "a.wav", tone(0.25, 22050, channels=2), 22050)
    cache = AudioCache(tmp_path / "cache")
    data = AudioDataset("t", [AudioRecord(path, 0, (0,))], ["x"], 16000, cache)
    wave, label = data[0]
    data.load(0)
    assert tuple(wave.shape) == (4000,) and label == 0
    assert (cache.hits, cache.misses) == (1, 1)
