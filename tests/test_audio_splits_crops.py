"""Class splits (MetaAudio files, seeded splits), training crops, evaluation pieces, scans."""
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from aiaudio.data import (AudioDataset, AudioRecord, BadAudioError, Pieces, RandomCrops, collate_pieces,
                          load_class_split, random_class_split, scan, split_dataset, write_audio)

RATE = 1000  # a low rate keeps clips tiny


def make_dataset(tmp_path, lengths, bad=()):
    """One clip per length (seconds); clip k is a ramp k*10 + t so crops reveal their offset."""
    records = []
    for k, seconds in enumerate(lengths):
        path = tmp_path / f"clip{k}.wav"
        if k in bad:
            path.write_bytes(b"broken")
        else:
            n = int(round(seconds * RATE))
            write_audio(path, (k * 10 + np.arange(n)).astype(np.float32) / 1e4, RATE, subtype="FLOAT")
        records.append(AudioRecord(path, k % 2, (k % 2,)))
    return AudioDataset("toy", records, ["even", "odd"], RATE, root=tmp_path)


# ------------------------------------------------------------------------------------- splits

def save_metaaudio_split(path, train, val, test):
    parts = np.empty(3, dtype=object)
    parts[:] = [np.array(train), np.array(val), np.array(test)]
    np.save(path, parts, allow_pickle=True)


def test_load_metaaudio_npy_and_pickle(tmp_path):
    save_metaaudio_split(tmp_path / "split.npy", ["dog", "rain"], ["pig"], ["cat", "cow"])
    expected = {"train": ["dog", "rain"], "val": ["pig"], "test": ["cat", "cow"]}
    assert load_class_split(tmp_path / "split.npy") == expected
    with open(tmp_path / "split.pkl", "wb") as handle:
        pickle.dump([np.array(["dog", "rain"]), np.array(["pig"], dtype=object), ["cat", "cow"]], handle, protocol=2)
    assert load_class_split(tmp_path / "split.pkl") == expected


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_load_class_split_rejects_bad_files(tmp_path):
    with open(tmp_path / "evil.pkl", "wb") as handle:
        pickle.dump([Evil(), [], []], handle)
    with pytest.raises(ValueError, match=r"evil.pkl.*refusing to load builtins.print"):
        load_class_split(tmp_path / "evil.pkl")
    np.save(tmp_path / "two.npy", np.array([["a"], ["b"]]))
    with pytest.raises(ValueError, match=r"two.npy.*three class arrays"):
        load_class_split(tmp_path / "two.npy")
    save_metaaudio_split(tmp_path / "dup.npy", ["a"], ["a"], ["b"])
    with pytest.raises(ValueError, match=r"dup.npy.*'a' is in both"):
        load_class_split(tmp_path / "dup.npy")
    save_metaaudio_split(tmp_path / "ok.npy", ["a"], ["b"], ["zebra"])
    with pytest.raises(ValueError, match=r"ok.npy.*zebra"):
        load_class_split(tmp_path / "ok.npy", class_names=["a", "b"])
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        load_class_split(tmp_path / "missing.npy")


def test_random_class_split_sizes_and_determinism():
    names = [f"c{k}" for k in range(50)]
    split = random_class_split(names, seed=3)
    assert [len(split[s]) for s in ("train", "val", "test")] == [35, 5, 10]
    assert sorted(sum(split.values(), [])) == sorted(names)
    assert split == random_class_split(names, seed=3) and split != random_class_split(names, seed=4)
    sizes = {n: [len(v) for v in random_class_split([str(k) for k in range(n)], 0).values()] for n in (41, 1251, 3)}
    assert sizes == {41: [29, 4, 8], 1251: [876, 125, 250], 3: [2, 0, 1]}
    with pytest.raises(ValueError, match="fractions"):
        random_class_split(names, 0, fractions=(0.5, 0.1, 0.1))


def test_split_dataset_with_file_and_seed(tmp_path):
    records = [AudioRecord(None, k % 5, (k % 5,)) for k in range(10)]
    data = AudioDataset("toy", records, ["a", "b", "c", "d", "e"])
    save_metaaudio_split(tmp_path / "s.npy", ["e", "a"], ["c"], ["b", "d"])
    parts = split_dataset(data, tmp_path / "s.npy")
    assert parts["train"].class_names == ["e", "a"] and parts["train"].labels.tolist() == [1, 0, 1, 0]
    assert len(parts["val"]) == 2 and len(parts["test"]) == 4
    seeded = split_dataset(data, seed=1)
    assert sum(len(p) for p in seeded.values()) == 10
    assert [p.class_names for p in seeded.values()] == [p.class_names for p in split_dataset(data, seed=1).values()]


# -------------------------------------------------------------------------------------- crops

def test_random_crops_deterministic_per_seed_epoch_index(tmp_path):
    data = make_dataset(tmp_path, [1.0, 0.3, 2.0])
    crops = RandomCrops(data, seconds=0.5)
    item = crops[0]
    assert item["wave"].shape == (500,) and item["wave"].dtype == torch.float32
    assert (item["label"], item["index"], item["skipped"]) == (0, 0, 0)
    start = int(round(float(item["wave"][0]) * 1e4))
    np.testing.assert_allclose(item["wave"].numpy(), (start + np.arange(500)) / 1e4, atol=1e-6)
    # the same item whatever the access order (worker independence) and in a new object
    _ = crops[2]
    assert torch.equal(RandomCrops(data, 0.5)[0]["wave"], item["wave"])
    # other epochs and seeds give other crops (over several draws)
    firsts = set()
    for epoch in range(6):
        crops.set_epoch(epoch)
        firsts.add(float(crops[2]["wave"][0]))
    assert len(firsts) > 3
    crops.set_epoch(0)
    assert torch.equal(crops[0]["wave"], item["wave"])
    assert not all(torch.equal(RandomCrops(data, 0.5, seed=s)[2]["wave"], crops[2]["wave"]) for s in (1, 2, 3))


def test_random_crops_pad_short_clips_and_batch(tmp_path):
    data = make_dataset(tmp_path, [0.3, 0.3])
    wave = RandomCrops(data, seconds=0.5)[1]["wave"]
    nonzero = torch.nonzero(wave).flatten()
    assert wave.shape == (500,) and len(nonzero) == 300
    assert int(nonzero[-1] - nonzero[0]) == 299  # the clip is kept whole and contiguous
    batch = next(iter(DataLoader(RandomCrops(data, 0.5), batch_size=2)))
    assert batch["wave"].shape == (2, 500) and batch["label"].tolist() == [0, 1]


def test_random_crops_bad_files_raise_or_are_skipped(tmp_path):
    data = make_dataset(tmp_path, [1.0, 1.0, 1.0, 1.0], bad=(1, 2))
    with pytest.raises(BadAudioError, match="clip1.wav"):
        RandomCrops(data, 0.5)[1]
    crops = RandomCrops(data, 0.5, skip_bad=True)
    with pytest.warns(RuntimeWarning) as caught:
        item = crops[1]
    assert [("clip1.wav" in str(w.message), "clip2.wav" in str(w.message)) for w in caught] == [
        (True, False), (False, True)]
    assert (item["index"], item["skipped"]) == (3, 1)
    assert crops.bad_files == {str(tmp_path / "clip1.wav"), str(tmp_path / "clip2.wav")}
    assert torch.equal(item["wave"], crops[3]["wave"])  # the substitute is deterministic
    batch = next(iter(DataLoader(crops, batch_size=4)))
    assert int(batch["skipped"].sum()) == 2 and batch["index"].tolist() == [0, 3, 3, 3]


def test_pieces_count_padding_and_collate(tmp_path):
    data = make_dataset(tmp_path, [0.3, 1.0, 1.2, 2.0])
    pieces = Pieces(data, seconds=0.5)
    shapes = [tuple(pieces[k]["pieces"].shape) for k in range(4)]
    assert shapes == [(1, 500), (2, 500), (3, 500), (4, 500)]
    short = pieces[0]["pieces"][0]
    assert torch.count_nonzero(short[300:]) == 0 and float(short[299]) == pytest.approx(0.0299, abs=1e-6)
    third = pieces[2]["pieces"]
    assert float(third[2, 0]) == pytest.approx((20 + 1000) / 1e4, abs=1e-6)
    assert torch.count_nonzero(third[2, 200:]) == 0
    assert Pieces(data, 0.5, min_seconds=0.25)[2]["pieces"].shape == (2, 500)
    assert Pieces(data, 0.5, hop=0.25)[1]["pieces"].shape == (3, 500)
    batch = collate_pieces([pieces[k] for k in range(4)])
    assert batch["pieces"].shape == (10, 500)
    assert batch["owner"].tolist() == [0, 1, 1, 2, 2, 2, 3, 3, 3, 3]
    assert batch["label"].tolist() == [0, 1, 0, 1] and batch["index"].tolist() == [0, 1, 2, 3]


def test_scan_lists_bad_files(tmp_path):
    data = make_dataset(tmp_path, [0.1, 0.1, 0.1], bad=(2,))
    nan = np.zeros(50, np.float32)
    nan[0] = np.nan
    write_audio(tmp_path / "clip0.wav", nan, RATE)
    found = scan(data)
    assert [(i, p.endswith(f"clip{i}.wav")) for i, p, _ in found] == [(0, True), (2, True)]
    assert "non-finite" in found[0][2] and "unreadable" in found[1][2]


def test_record_without_file_needs_a_load_override():
    data = AudioDataset("mem", [AudioRecord(None, 0, (0,))], ["a"])
    with pytest.raises(TypeError, match="record 0 has no file"):
        data.load(0)


def test_scan_reports_lengths_of_readable_clips(tmp_path):
    data = make_dataset(tmp_path, [0.1, 0.2, 0.1], bad=(2,))
    lengths: dict[int, int] = {}
    assert [i for i, _, _ in scan(data, lengths=lengths)] == [2]
    assert lengths == {0: len(data.load(0)), 1: len(data.load(1))} and lengths[1] > lengths[0]
