"""AudioClips: pieces, owners, labels, regression targets, the LRU cache and front-end helpers."""
import warnings

import pytest
import torch

from aiaudio.clips import AudioClips, encoder_frontend, fit_frontend, frontend_from_extra
from aiaudio.data import open_dataset
from aiaudio.data.crops import Pieces
from aiaudio.data.synthetic import SyntheticConfig, write_esc50_layout
from aiaudio.frontend import Frontend, FrontendConfig

SR = 8000
SMALL = FrontendConfig(sample_rate=SR, n_fft=256, hop_length=128, n_mels=16)


@pytest.fixture(scope="module")
def esc_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("esc")
    write_esc50_layout(root, SyntheticConfig(n_clips=10, seconds=1.0, sample_rate=SR, label="family"))
    return root


@pytest.fixture(scope="module")
def frontend(esc_copy):
    data = open_dataset(f"esc50:{esc_copy}", sample_rate=SR)
    return fit_frontend(data, SMALL, seconds=0.4, max_clips=4)


def test_pieces_owner_labels_match_manual_pipeline(esc_copy, frontend):
    data = open_dataset(f"esc50:{esc_copy}", sample_rate=SR)
    clips = AudioClips(data, frontend, seconds=0.4, batch_size=3)
    assert len(clips) == 10 and clips.class_names == data.class_names
    assert clips.labels.dtype == torch.int64 and clips.labels.tolist() == data.labels.tolist()
    x, owner = clips.pieces([3, 0, 3])
    # 1 s at 0.4 s pieces -> 3 pieces per clip (last zero-padded)
    assert owner.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert x.shape == (9, 1, 16, SMALL.num_frames(int(0.4 * SR))) and x.dtype == torch.float32
    manual = frontend(Pieces(data, seconds=0.4).cut(torch.from_numpy(data.load(3))))
    torch.testing.assert_close(x[:3], manual)
    torch.testing.assert_close(x[6:], manual)
    last_piece_tail = Pieces(data, seconds=0.4).cut(torch.from_numpy(data.load(3)))[-1, -int(0.2 * SR):]
    assert torch.count_nonzero(last_piece_tail) == 0  # zero padding of the last piece
    sub = clips.subset([5, 2])
    assert sub.labels.tolist() == [data.labels[5], data.labels[2]]
    torch.testing.assert_close(sub.pieces([1])[0], clips.pieces([2])[0])
    with pytest.raises(IndexError, match="out of range"):
        clips.pieces([10])


def test_lru_cache_is_bounded_and_evicts_least_recent(esc_copy, frontend):
    data = open_dataset(f"esc50:{esc_copy}", sample_rate=SR)
    probe = AudioClips(data, frontend, seconds=0.4)
    one_clip_mb = probe.pieces([0])[0].numel() * 4 / 2**20
    clips = AudioClips(data, frontend, seconds=0.4, cache_mb=2.5 * one_clip_mb)
    first, _ = clips.pieces([0, 1])
    assert clips.cached == [0, 1] and (clips.hits, clips.misses) == (0, 2)
    again, _ = clips.pieces([0])  # 0 becomes most recent
    assert torch.equal(again, first[:3]) and clips.hits == 1
    clips.pieces([2])  # evicts 1, the least recently used
    assert clips.cached == [0, 2] and clips.cached_mb <= 2.5 * one_clip_mb
    clips.pieces([1])
    assert clips.misses == 4 and clips.cached == [2, 1]
    off = AudioClips(data, frontend, seconds=0.4, cache_mb=0)
    off.warm()
    assert off.cached == [] and off.misses == 10


def test_regression_targets_from_meta_and_tensor(frontend):
    data = open_dataset("synthetic?n_clips=6&seconds=0.5&label=pitch", sample_rate=SR)
    clips = AudioClips.regression(data, frontend, ["pitch_value", "onset_value"], seconds=0.5)
    assert clips.class_names is None and clips.labels.shape == (6, 2) and clips.labels.dtype == torch.float32
    assert clips.labels[:, 0].tolist() == [r.meta["pitch_value"] for r in data.records]
    assert clips.pieces([0])[0].shape[0] == 1
    given = AudioClips.regression(data, frontend, torch.arange(6.0))
    assert given.labels.shape == (6, 1)
    with pytest.raises(KeyError, match="'nope' missing in clip 0"):
        AudioClips.regression(data, frontend, "nope")
    with pytest.raises(ValueError, match="not a number"):
        AudioClips.regression(data, frontend, "family")
    with pytest.raises(ValueError, match=r"\(N,\) or \(N, T\)"):
        AudioClips.regression(data, frontend, torch.zeros(5))


def test_frontend_helpers_and_errors(esc_copy, frontend):
    data = open_dataset(f"esc50:{esc_copy}", sample_rate=SR)
    stored = encoder_frontend({"frontend": frontend.to_dict()}, "enc.pt", data)
    torch.testing.assert_close(stored.normaliser.mean, frontend.normaliser.mean)
    assert frontend_from_extra({}, "enc.pt") is None
    with pytest.warns(UserWarning, match="enc.pt stores no front end"):
        fitted = encoder_frontend({}, "enc.pt", data, seconds=0.4, max_clips=4)
    assert fitted.fitted and fitted.config.sample_rate == SR
    with pytest.raises(ValueError, match="enc.pt: extra\\['frontend'\\] is not a valid"):
        frontend_from_extra({"frontend": {"config": {"n_mel": 3}}}, "enc.pt")
    wrong_rate = Frontend(FrontendConfig(sample_rate=16000)).to_dict()
    with pytest.raises(ValueError, match="enc.pt: the encoder's front end expects 16000 Hz"):
        encoder_frontend({"frontend": wrong_rate}, "enc.pt", data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="no normalisation statistics"):
            AudioClips(data, Frontend(SMALL), seconds=0.4)
