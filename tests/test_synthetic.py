"""The built-in synthetic set: determinism, balance, physical factors, ESC-50 layout."""
import csv
import itertools
import time

import numpy as np
import pytest
import soundfile as sf

from aiaudio.data.synthetic import (FACTOR_CLASSES, FACTORS, TASKS, SyntheticAudio, SyntheticConfig,
                                    factor_design, read_synthetic, synthesise, synthesise_batch,
                                    write_esc50_layout)
from aiaudio.space import AUDIO_AUGMENTATIONS
from core.config import ConfigError

SR = 16000
ESC50_HEADER = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]


@pytest.fixture(scope="module")
def small():
    cfg = SyntheticConfig(n_clips=120, seconds=1.0, seed=3)
    return SyntheticAudio(cfg), synthesise_batch(range(cfg.n_clips), cfg)


def _frame_rms(x: np.ndarray, hop: int = 80) -> np.ndarray:
    n = len(x) // hop
    return np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1))


def test_determinism_and_purity():
    cfg = SyntheticConfig(n_clips=12, seconds=0.5, seed=7)
    a = synthesise_batch(range(12), cfg)
    b = np.stack([SyntheticAudio(cfg).load(i) for i in range(12)])
    np.testing.assert_array_equal(a, b)
    # Clip i does not depend on how many clips the set has.
    np.testing.assert_array_equal(synthesise(9, SyntheticConfig(n_clips=500, seconds=0.5, seed=7)), a[9])
    other = synthesise_batch(range(12), SyntheticConfig(n_clips=12, seconds=0.5, seed=8))
    assert not np.array_equal(a, other)
    assert a.shape == (12, 8000) and a.dtype == np.float32


def test_values_finite_and_in_range(small):
    _, x = small
    assert np.isfinite(x).all()
    assert np.abs(x).max() <= 1.0
    assert np.abs(x).max() > 0.05  # not silent


@pytest.mark.parametrize("n", [120, 103])
def test_factors_balanced(n):
    design = factor_design(np.arange(n), seed=0)
    for name in list(FACTORS) + ["fold"]:
        size = len(FACTOR_CLASSES[name]) if name != "fold" else 5
        counts = np.bincount(design[name], minlength=size)
        assert len(counts) == size and counts.max() - counts.min() <= 1, (name, counts)


def test_factors_independent():
    design = factor_design(np.arange(720), seed=1)
    for f, g in itertools.combinations(FACTORS, 2):
        pairs = set(zip(design[f].tolist(), design[g].tolist()))
        assert len(pairs) == len(FACTOR_CLASSES[f]) * len(FACTOR_CLASSES[g]), (f, g)


def test_pitch_is_the_spectral_peak(small):
    ds, x = small
    spectrum = np.abs(np.fft.rfft(x, n=4 * x.shape[1], axis=1))
    freqs = np.fft.rfftfreq(4 * x.shape[1], 1.0 / SR)
    band = (freqs > 60) & (freqs < 2000)
    peak = freqs[band][np.argmax(spectrum[:, band], axis=1)]
    f0 = 440.0 * 2.0 ** ((ds.factor_values("pitch") - 69) / 12)
    np.testing.assert_allclose(peak, f0, rtol=0.03)
    # Notes are 4 semitones apart, so a +-15 semitone shift moves a note across 3+ classes.
    assert np.all(np.diff(np.sort(np.unique(ds.factor_values("pitch")))) == 4)


def test_onset_duration_loudness_from_envelope(small):
    ds, x = small
    clean = np.flatnonzero(ds.factor_labels("noise") == 0)
    assert len(clean) >= 30
    onsets, durations = ds.factor_values("onset"), ds.factor_values("duration")
    for i in clean:
        env = _frame_rms(x[i])
        active = np.flatnonzero(env > 0.1 * env.max())
        start, stop = active[0] * 80 / SR, (active[-1] + 1) * 80 / SR
        assert abs(start - onsets[i]) < 0.02, (i, start, onsets[i])
        assert abs((stop - start) - durations[i]) < 0.03, (i, stop - start, durations[i])
        a, b = int(round(onsets[i] * SR)), int(round((onsets[i] + durations[i]) * SR))
        level_db = 20 * np.log10(np.sqrt(np.mean(x[i, a:b].astype(np.float64) ** 2)))
        assert abs(level_db - ds.factor_values("loudness")[i]) < 0.1
    # Louder class -> larger clip RMS on average.
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=1))
    means = [rms[ds.factor_values("loudness") == v].mean() for v in (-40.0, -30.0, -20.0)]
    assert means[0] < means[1] < means[2]


def test_background_noise_level(small):
    ds, x = small
    onsets = ds.factor_values("onset")
    loud, ratio = ds.factor_values("loudness"), ds.factor_values("noise")
    for i in range(len(ds)):
        silence = x[i, : int(round(onsets[i] * SR))]  # before the note: background only
        measured = np.sqrt(np.mean(silence.astype(np.float64) ** 2))
        expected = 10 ** (loud[i] / 20) * ratio[i]
        if ratio[i] == 0:
            assert measured == 0.0
        else:
            assert abs(measured / expected - 1) < 0.15, (i, measured, expected)


def test_dataset_records_and_relabel(small):
    ds, x = small
    assert ds.class_names == FACTOR_CLASSES["family"] and ds.num_classes == 5
    np.testing.assert_array_equal(ds.labels, ds.factor_labels("family"))
    rec = ds.records[4]
    assert rec.path is None and set(FACTORS) <= set(rec.meta) and 1 <= rec.meta["fold"] <= 5
    by_pitch = ds.with_label("pitch")
    assert by_pitch.class_names == FACTOR_CLASSES["pitch"] and by_pitch.config.label == "pitch"
    np.testing.assert_array_equal(by_pitch.labels, ds.factor_labels("pitch"))
    sub = by_pitch.subset([7, 2])  # subsets keep serving the right clips
    np.testing.assert_array_equal(sub.load(0), x[7])
    wave, label = sub[1]
    np.testing.assert_array_equal(wave.numpy(), x[2])
    assert label == ds.factor_labels("pitch")[2]
    with pytest.raises(KeyError, match="timbre"):
        ds.factor_labels("timbre")


def test_keep_in_memory_reuses_arrays():
    ds = SyntheticAudio(SyntheticConfig(n_clips=3, seconds=0.5), keep_in_memory=True)
    assert ds.load(1) is ds.load(1)


def test_read_synthetic_options(tmp_path):
    ds = read_synthetic(None, sample_rate=8000, n_clips=10, seconds=0.5, seed=2, label="onset")
    assert len(ds) == 10 and ds.sample_rate == 8000 and ds.load(0).shape == (4000,)
    assert ds.class_names == FACTOR_CLASSES["onset"]
    with pytest.raises(ConfigError, match="n_clip"):
        read_synthetic(n_clip=10)
    with pytest.raises(ConfigError, match="label"):
        read_synthetic(label="colour")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "esc50.csv").write_text("filename\n")
    with pytest.raises(ValueError, match="esc50:"):
        read_synthetic(tmp_path)


def test_tasks_describe_opposite_invariances():
    assert set(TASKS) == set(FACTORS)
    for task in TASKS.values():
        assert set(task.invariant_to) <= set(AUDIO_AUGMENTATIONS)
        assert set(task.sensitive_to) <= set(AUDIO_AUGMENTATIONS)
        assert not set(task.invariant_to) & set(task.sensitive_to)
    assert "pitch_shift" in TASKS["family"].invariant_to and "pitch_shift" in TASKS["pitch"].sensitive_to
    assert "time_shift" in TASKS["onset"].sensitive_to and "time_shift" in TASKS["pitch"].invariant_to


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    cfg = SyntheticConfig(n_clips=20, seconds=0.5, seed=5, label="pitch")
    return cfg, write_esc50_layout(tmp_path_factory.mktemp("syn"), cfg)


def test_esc50_layout_on_disk(written):
    cfg, root = written
    with open(root / "meta" / "esc50.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ESC50_HEADER + list(FACTORS)
    ds = SyntheticAudio(cfg)
    assert len(rows) == 21 and sorted(int(r[1]) for r in rows[1:]) == sorted([1, 2, 3, 4, 5] * 4)
    for row, rec, i in zip(rows[1:], ds.records, range(len(ds))):
        filename, fold, target, category, esc10, src_file, take = row[:7]
        assert filename == f"{fold}-{src_file}-{take}-{target}.wav"
        assert int(target) == rec.label and category == FACTOR_CLASSES["pitch"][rec.label]
        assert esc10 == "False" and int(src_file) == i and int(fold) == rec.meta["fold"]
        assert row[7:] == [rec.meta[f] for f in FACTORS]
        wave, rate = sf.read(root / "audio" / filename, dtype="float32")
        assert rate == SR
        np.testing.assert_array_equal(wave, ds.load(i))
    with pytest.raises(FileExistsError, match="esc50.csv"):
        write_esc50_layout(root, cfg)


def test_esc50_reader_round_trip(written):
    esc50 = pytest.importorskip("aiaudio.data.esc50")
    cfg, root = written
    ds = SyntheticAudio(cfg)
    for factor in ("pitch", "onset", "loudness", "noise"):
        disk = esc50.read_esc50(root, sample_rate=SR, label_column=factor)
        assert disk.class_names == [c for c in FACTOR_CLASSES[factor] if c in set(disk.class_names)]
        names = [disk.class_names[r.label] for r in disk.records]
        by_index = {int(r.meta["src_file"]): n for r, n in zip(disk.records, names)}
        assert by_index == {r.meta["index"]: r.meta[factor] for r in ds.records}
    first = disk.records[0]
    np.testing.assert_array_equal(disk.load(0), ds.load(int(first.meta["src_file"])))


def test_generation_is_fast():
    cfg = SyntheticConfig(n_clips=200, seconds=2.0)
    start = time.perf_counter()
    x = synthesise_batch(range(200), cfg)
    assert x.shape == (200, 32000)
    assert time.perf_counter() - start < 5.0  # about 0.2 s on one core
