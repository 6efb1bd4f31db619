"""Each reader on a tiny copy of its dataset's published layout, plus dataset spec strings."""
import json

import numpy as np
import pytest

from aiaudio.data import READERS, AudioCache, BadAudioError, open_dataset, parse_spec, write_audio
from aiaudio.data.esc50 import read_esc50
from aiaudio.data.folder import read_folder
from aiaudio.data.fsd50k import read_fsd50k
from aiaudio.data.fsdkaggle import read_fsdkaggle
from aiaudio.data.nsynth import read_nsynth
from aiaudio.data.voxceleb import read_voxceleb


def clip(path, seconds=0.1, rate=16000, channels=1, value=0.25):
    wave = np.full(int(round(seconds * rate)), value, np.float32)
    write_audio(path, wave if channels == 1 else np.stack([wave] * channels, 1), rate)


def write_text(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ----------------------------------------------------------------------------------- ESC-50

ESC50_CSV = """filename,fold,target,category,esc10,src_file,take
1-100032-A-0.wav,1,0,dog,True,100032,A
1-110389-A-0.wav,1,0,dog,True,110389,A
2-100648-A-10.wav,2,10,rain,True,100648,A
3-102908-A-2.wav,3,2,pig,False,102908,A
3-104632-A-10.wav,3,10,rain,True,104632,A
"""


@pytest.fixture
def esc50_root(tmp_path):
    root = tmp_path / "ESC-50-master"
    write_text(root / "meta" / "esc50.csv", ESC50_CSV)
    for k, line in enumerate(ESC50_CSV.splitlines()[1:]):
        clip(root / "audio" / line.split(",")[0], 0.5, 44100, channels=2 if k == 0 else 1)
    return root


def test_esc50_labels_meta_and_resampling(esc50_root):
    data = read_esc50(esc50_root)
    assert data.name == "esc50" and len(data) == 5
    assert data.class_names == ["dog", "pig", "rain"]
    assert data.labels.tolist() == [0, 0, 2, 1, 2]
    assert data.records[2].meta == {"filename": "2-100648-A-10.wav", "fold": 2, "target": 10, "category": "rain",
                                    "esc10": "True", "src_file": 100648, "take": "A"}
    wave, label = data[0]  # stereo 44.1 kHz -> mono 16 kHz
    assert tuple(wave.shape) == (8000,) and label == 0
    assert float(wave[4000]) == pytest.approx(0.25, abs=1e-3)


def test_esc50_numeric_label_column_sorts_numerically_and_folds_filter(esc50_root):
    data = read_esc50(esc50_root, label_column="target", folds=[1, 3])
    assert data.class_names == ["0", "2", "10"] and len(data) == 4
    assert data.labels.tolist() == [0, 0, 1, 2]
    assert len(read_esc50(esc50_root, folds=2)) == 1
    with pytest.raises(ValueError, match="fold"):
        read_esc50(esc50_root, folds=[7])
    with pytest.raises(ValueError, match=r"esc50.csv.*nope"):
        read_esc50(esc50_root, label_column="nope")


def test_esc50_missing_metadata_names_the_path(tmp_path):
    (tmp_path / "audio").mkdir()
    with pytest.raises(FileNotFoundError) as info:
        read_esc50(tmp_path)
    assert str(tmp_path / "meta" / "esc50.csv") in str(info.value) and "expected layout" in str(info.value)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_esc50(tmp_path / "nowhere")


# ----------------------------------------------------------------------------------- FSD50K

VOCABULARY = """0,Bark,/m/05tny_
1,Dog,/m/0bt9lr
2,Rain,/m/06mb1
"""
DEV_CSV = """fname,labels,mids,split
64760,"Bark,Dog","/m/05tny_,/m/0bt9lr",train
16399,Rain,/m/06mb1,train
7520,"Dog,Bark","/m/0bt9lr,/m/05tny_",val
"""
EVAL_CSV = """fname,labels,mids
37199,Rain,/m/06mb1
175151,"Dog,Rain","/m/0bt9lr,/m/06mb1"
"""


@pytest.fixture
def fsd50k_root(tmp_path):
    root = tmp_path / "FSD50K"
    truth = root / "FSD50K.ground_truth"
    write_text(truth / "vocabulary.csv", VOCABULARY)
    write_text(truth / "dev.csv", DEV_CSV)
    write_text(truth / "eval.csv", EVAL_CSV)
    for name in ("64760", "16399", "7520"):
        clip(root / "FSD50K.dev_audio" / f"{name}.wav", 0.3, 44100)
    for name in ("37199", "175151"):
        clip(root / "FSD50K.eval_audio" / f"{name}.wav", 0.2, 44100)
    return root


def test_fsd50k_splits_and_multilabel_meta(fsd50k_root):
    dev = read_fsd50k(fsd50k_root)
    assert dev.class_names == ["Bark", "Dog", "Rain"] and len(dev) == 3
    first = dev.records[0]
    assert first.label == 0 and first.labels == (0, 1)
    assert first.meta == {"fname": 64760, "labels": ["Bark", "Dog"], "mids": ["/m/05tny_", "/m/0bt9lr"], "split": "train"}
    assert first.path == fsd50k_root / "FSD50K.dev_audio" / "64760.wav"
    assert dev.records[2].label == 1 and dev.records[2].labels == (1, 0)
    assert [len(read_fsd50k(fsd50k_root, split=s)) for s in ("train", "val", "eval", "all")] == [2, 1, 2, 5]
    evaluation = read_fsd50k(fsd50k_root, split="eval")
    assert [r.meta["split"] for r in evaluation.records] == ["eval", "eval"]
    assert evaluation.records[1].labels == (1, 2)
    assert evaluation.load(0).shape == (3200,)
    with pytest.raises(ValueError, match="split"):
        read_fsd50k(fsd50k_root, split="test")


def test_fsd50k_unknown_label_names_csv_line(fsd50k_root):
    write_text(fsd50k_root / "FSD50K.ground_truth" / "eval.csv", EVAL_CSV + "99,Meow,/m/x\n")
    with pytest.raises(ValueError, match=r"eval.csv: line 4 .*Meow"):
        read_fsd50k(fsd50k_root, split="eval")


def test_fsd50k_missing_vocabulary_names_the_path(fsd50k_root):
    (fsd50k_root / "FSD50K.ground_truth" / "vocabulary.csv").unlink()
    with pytest.raises(FileNotFoundError, match="vocabulary.csv"):
        read_fsd50k(fsd50k_root)


# ----------------------------------------------------------------------------------- NSynth

def nsynth_entry(note, instrument, family, pitch):
    return {"note": 1, "sample_rate": 16000, "pitch": pitch, "velocity": 75, "instrument": 3,
            "instrument_str": instrument, "instrument_family": 0, "instrument_family_str": family,
            "instrument_source": 0, "instrument_source_str": "acoustic", "note_str": note,
            "qualities": [0, 1, 0, 0, 0, 0, 0, 0, 0, 0], "qualities_str": ["bright"]}


@pytest.fixture
def nsynth_root(tmp_path):
    root = tmp_path / "nsynth"
    splits = {"train": [("bass_synthetic_033-022-050", "bass_synthetic_033", "bass", 22),
                        ("bass_synthetic_033-100-100", "bass_synthetic_033", "bass", 100),
                        ("keyboard_acoustic_004-060-075", "keyboard_acoustic_004", "keyboard", 60)],
              "test": [("guitar_acoustic_010-022-127", "guitar_acoustic_010", "guitar", 22)]}
    for split, notes in splits.items():
        folder = root / f"nsynth-{split}"
        examples = {note: nsynth_entry(note, inst, fam, pitch) for note, inst, fam, pitch in notes}
        write_text(folder / "examples.json", json.dumps(examples))
        for note, *_ in notes:
            clip(folder / "audio" / f"{note}.wav", 0.1, 16000)
    return root


def test_nsynth_default_field_and_all_splits(nsynth_root):
    data = read_nsynth(nsynth_root)
    assert data.class_names == ["bass_synthetic_033", "guitar_acoustic_010", "keyboard_acoustic_004"]
    assert data.labels.tolist() == [0, 0, 2, 1]
    meta = data.records[3].meta
    assert meta["split"] == "test" and meta["pitch"] == 22 and meta["instrument_family_str"] == "guitar"
    assert data.load(0).shape == (1600,)


def test_nsynth_split_folder_root_and_other_fields(nsynth_root):
    train = read_nsynth(nsynth_root / "nsynth-train", field="instrument_family_str")
    assert len(train) == 3 and train.class_names == ["bass", "keyboard"]
    pitch = read_nsynth(nsynth_root, split="train", field="pitch")
    assert pitch.class_names == ["22", "60", "100"] and pitch.labels.tolist() == [0, 2, 1]
    assert read_nsynth(nsynth_root, field="qualities_str").class_names == ["bright"]
    with pytest.raises(ValueError, match=r"no field 'colour'.*instrument_str"):
        read_nsynth(nsynth_root, field="colour")
    with pytest.raises(FileNotFoundError, match=r"nsynth-valid.examples.json"):
        read_nsynth(nsynth_root, split="valid")


# --------------------------------------------------------------------------------- VoxCeleb1

@pytest.fixture
def voxceleb_root(tmp_path):
    root = tmp_path / "vox1"
    for speaker, video, utt in [("id10001", "1zcIwhmdeo4", "00001"), ("id10001", "1zcIwhmdeo4", "00002"),
                                ("id10001", "7gWzIy6yIIk", "00001"), ("id10002", "0_laIeN-Q44", "00001")]:
        clip(root / "wav" / speaker / video / f"{utt}.wav", 0.1, 16000)
    return root


def test_voxceleb_speakers_from_either_root(voxceleb_root):
    for root in (voxceleb_root, voxceleb_root / "wav"):
        data = read_voxceleb(root)
        assert data.class_names == ["id10001", "id10002"] and data.labels.tolist() == [0, 0, 0, 1]
        assert data.records[2].meta == {"speaker": "id10001", "video": "7gWzIy6yIIk", "utterance": "00001"}
    with pytest.raises(FileNotFoundError, match="id"):
        read_voxceleb(voxceleb_root / "wav" / "id10001" / "1zcIwhmdeo4")


# ----------------------------------------------------------------------------- FSDKaggle2018

TRAIN_CSV = """fname,label,manually_verified,freesound_id,license
00044347.wav,Hi-hat,0,28739,Attribution
001ca53d.wav,Saxophone,1,358827,Attribution
"""
TEST_CSV = """fname,label,usage,freesound_id,license
00326aa9.wav,Oboe,Private,355125,Attribution
0038a046.wav,Hi-hat,Public,90621,Creative Commons 0
"""


def test_fsdkaggle_merges_train_and_test(tmp_path):
    root = tmp_path / "FSDKaggle2018"
    write_text(root / "FSDKaggle2018.meta" / "train_post_competition.csv", TRAIN_CSV)
    write_text(root / "FSDKaggle2018.meta" / "test_post_competition_scoring_clips.csv", TEST_CSV)
    for folder, csv_text in (("FSDKaggle2018.audio_train", TRAIN_CSV), ("FSDKaggle2018.audio_test", TEST_CSV)):
        for line in csv_text.splitlines()[1:]:
            clip(root / folder / line.split(",")[0], 0.1, 44100)
    data = read_fsdkaggle(root)
    assert data.class_names == ["Hi-hat", "Oboe", "Saxophone"] and data.labels.tolist() == [0, 2, 1, 0]
    assert data.records[0].meta["fname"] == "00044347.wav" and data.records[0].meta["manually_verified"] == 0
    assert data.records[2].meta["usage"] == "Private" and data.records[2].meta["split"] == "test"
    assert data.records[3].path == root / "FSDKaggle2018.audio_test" / "0038a046.wav"
    assert data.load(3).shape == (1600,)
    assert len(read_fsdkaggle(root, part="test")) == 2
    (root / "FSDKaggle2018.meta" / "test_post_competition_scoring_clips.csv").unlink()
    with pytest.raises(FileNotFoundError, match="test_post_competition_scoring_clips.csv"):
        read_fsdkaggle(root)


# ------------------------------------------------------------------------------------ folder

def test_folder_reader_recursive_and_extensions(tmp_path):
    clip(tmp_path / "cats" / "a.wav")
    clip(tmp_path / "cats" / "more" / "b.flac")
    clip(tmp_path / "dogs" / "c.ogg", 0.2)
    (tmp_path / "dogs" / "notes.txt").write_text("not audio")
    (tmp_path / "empty").mkdir()
    data = read_folder(tmp_path)
    assert data.class_names == ["cats", "dogs"] and data.labels.tolist() == [0, 0, 1]
    assert [r.meta["relpath"] for r in data.records] == ["cats/a.wav", "cats/more/b.flac", "dogs/c.ogg"]
    assert data.load(2).shape == (3200,)
    assert len(read_folder(tmp_path, extensions="wav")) == 1
    with pytest.raises(FileNotFoundError, match="no audio files"):
        read_folder(tmp_path / "empty")


# -------------------------------------------------------------------------- specs & bad files

def test_parse_spec():
    assert parse_spec("esc50:/data/ESC-50") == ("esc50", "/data/ESC-50", {})
    assert parse_spec("folder:C:\\audio\\x:y") == ("folder", "C:\\audio\\x:y", {})
    assert parse_spec("esc50:/d?folds=1,2&label_column=target&x=0.5&y=true&z=none") == (
        "esc50", "/d", {"folds": [1, 2], "label_column": "target", "x": 0.5, "y": True, "z": None})
    assert parse_spec("synthetic") == ("synthetic", None, {})
    with pytest.raises(ValueError, match=r"unknown dataset 'audioset'.*esc50.*voxceleb"):
        parse_spec("audioset:/x")
    with pytest.raises(ValueError, match="key=value"):
        parse_spec("esc50:/x?folds")
    assert set(READERS) == {"fsd50k", "esc50", "nsynth", "voxceleb", "fsdkaggle", "folder", "files", "manifest",
                            "synthetic"}


def test_open_dataset_with_options_and_cache_dir(esc50_root, tmp_path):
    data = open_dataset(f"esc50:{esc50_root}?folds=3&label_column=target", sample_rate=8000,
                        cache=tmp_path / "cache")
    assert len(data) == 2 and data.class_names == ["2", "10"] and data.sample_rate == 8000
    assert isinstance(data.cache, AudioCache) and data.load(0).shape == (4000,)
    with pytest.raises(ValueError, match=r"no option 'fold'.*folds"):
        open_dataset(f"esc50:{esc50_root}?fold=3")
    with pytest.raises(ValueError, match="needs a root"):
        open_dataset("esc50")


def test_bad_files_in_a_reader_raise_naming_them(esc50_root):
    audio = esc50_root / "audio"
    (audio / "1-110389-A-0.wav").write_bytes(b"")
    nan = np.full(100, 0.1, np.float32)
    nan[3] = np.nan
    write_audio(audio / "3-102908-A-2.wav", nan, 44100)
    data = read_esc50(esc50_root)
    for index, name in ((1, "1-110389-A-0.wav"), (3, "3-102908-A-2.wav")):
        with pytest.raises(BadAudioError, match=name):
            data.load(index)
