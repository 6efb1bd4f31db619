"""Decoding (mono mix, resampling, bad files), writing and the on-disk decode cache."""
import os

import numpy as np
import pytest
import soundfile as sf

from aiaudio.data import AudioCache, AudioDataset, AudioRecord, BadAudioError, decode_audio, write_audio
from aiaudio.data.audio_io import MAX_ABS_SAMPLE, TruncatedAudioWarning, truncated_wav


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


@pytest.mark.parametrize("peak", [1e30, 3e7])
def test_huge_finite_samples_are_rejected_with_peak_and_bound(tmp_path, peak):
    wave = tone(0.1, 16000)
    wave[11] = peak  # finite in float32, so the NaN/inf check alone lets it through
    path = write_audio(tmp_path / "huge.wav", wave, 16000)
    assert sf.info(str(path)).subtype == "FLOAT"
    with pytest.raises(BadAudioError) as info:
        decode_audio(path, 16000)
    message = str(info.value)
    assert str(path) in message and f"{peak:.3g}" in message and f"{MAX_ABS_SAMPLE:g}" in message


def test_loud_and_int16_scaled_float_files_stay_readable(tmp_path):
    loud = write_audio(tmp_path / "loud.wav", 4.0 * tone(0.1, 16000), 16000)       # peak 2
    scaled = write_audio(tmp_path / "scaled.wav", 65534.0 * tone(0.1, 16000), 16000)  # peak 32767
    assert float(np.abs(decode_audio(loud, 16000)).max()) == pytest.approx(2.0, rel=1e-6)
    assert float(np.abs(decode_audio(scaled, 16000)).max()) == pytest.approx(32767.0, rel=1e-6)


def test_stereo_peak_is_checked_per_channel(tmp_path):
    stereo = np.stack([np.full(1600, 2e6, np.float32), np.full(1600, -2e6, np.float32)], axis=1)
    path = write_audio(tmp_path / "cancel.wav", stereo, 16000)  # the mono mean would be 0
    with pytest.raises(BadAudioError, match="peak sample magnitude 2e\\+06"):
        decode_audio(path, 16000)


def cut_wav(source, target, drop_bytes: int) -> None:
    """Copy a WAV without its last ``drop_bytes`` bytes (its header still declares every frame)."""
    data = source.read_bytes()
    target.write_bytes(data[:len(data) - drop_bytes])


@pytest.mark.parametrize("subtype, fmt", [("PCM_16", "WAV"), ("FLOAT", "WAV"), ("PCM_24", "WAVEX"), ("PCM_16", "RF64")])
def test_truncated_wav_is_detected_and_warned_about(tmp_path, subtype, fmt):
    full = tmp_path / "full.wav"
    sf.write(str(full), np.stack([tone(0.5, 8000)] * 2, axis=1), 8000, subtype=subtype, format=fmt)
    assert truncated_wav(full) is None
    frame = 2 * {"PCM_16": 2, "PCM_24": 3, "FLOAT": 4}[subtype]
    cut = tmp_path / "cut.wav"
    cut_wav(full, cut, 1000 * frame + 1)  # 1000 frames and a partial one missing
    assert sf.info(str(cut)).frames == 4000 - 1001  # libsndfile silently reports the frames present
    assert truncated_wav(cut) == (4000, 2999, 8000)
    with pytest.warns(TruncatedAudioWarning, match=r"cut\.wav: truncated WAV: the header declares 4000 frames "
                      r"\(0\.500 s\) but the file holds 2999 \(0\.375 s\)"):
        assert decode_audio(cut, 8000).shape == (2999,)


def test_complete_non_wav_and_streaming_wavs_are_not_truncated(tmp_path):
    flac = write_audio(tmp_path / "a.flac", tone(0.1, 16000), 16000)
    assert truncated_wav(flac) is None and truncated_wav(tmp_path / "missing.wav") is None
    streamed = tmp_path / "streamed.wav"  # a pipe writer cannot seek back: data size left at 0xFFFFFFFF
    data = bytearray(write_audio(tmp_path / "s.wav", tone(0.1, 16000), 16000).read_bytes())
    at = data.index(b"data") + 4
    data[at:at + 4] = b"\xff\xff\xff\xff"
    streamed.write_bytes(bytes(data))
    assert truncated_wav(streamed) is None


def test_header_only_wav_names_the_declared_length(tmp_path):
    full = write_audio(tmp_path / "full.wav", tone(0.25, 16000), 16000)
    empty = tmp_path / "header_only.wav"
    cut_wav(full, empty, 4000 * 2)
    with pytest.raises(BadAudioError, match=r"header_only\.wav: contains no samples \(truncated WAV: the header "
                       r"declares 4000 frames"):
        decode_audio(empty, 16000)


def test_bad_audio_error_survives_pickling_and_dataloader_workers(tmp_path):
    import pickle

    import torch

    error = BadAudioError(tmp_path / "x.wav", "unreadable (reason: detail)")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.path, copy.reason) == (str(error), error.path, error.reason)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"junk" * 10)
    data = AudioDataset("t", [AudioRecord(bad, 0, (0,))], ["a"], 16000)
    loader = torch.utils.data.DataLoader(data, batch_size=1, num_workers=1)
    with pytest.raises(BadAudioError) as info:
        next(iter(loader))
    assert info.value.path == str(bad) and str(info.value).startswith(f"{bad}: unreadable")
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)


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
