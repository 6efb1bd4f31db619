"""Readers for any collection of audio files: ``files:`` (a folder tree, unlabelled) and
``manifest:`` (a list of paths, or a ``path,label`` CSV), through specs, the ``aiaudio
dataset`` command and a short pre-training run."""
import json

import numpy as np
import pytest
import soundfile as sf

from aiaudio import cli
from aiaudio.data import READERS, open_dataset
from aiaudio.data.files import read_files
from aiaudio.data.folder import read_folder
from aiaudio.data.manifest import read_manifest
from core.dataspec import DatasetError, DatasetNotFoundError

SR = 16000


def clip(path, samples=400, value=0.25):
    """A short mono clip at 16 kHz (format from the extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(samples, value, np.float32), SR)
    return path


@pytest.fixture
def tree(tmp_path):
    """A folder tree with audio at several depths, hidden entries and a non-audio file."""
    root = tmp_path / "tree"
    clip(root / "a.wav")
    clip(root / "sub" / "b.flac", 300)
    clip(root / "sub" / "deeper" / "C.WAV", 200)
    clip(root / ".hidden.wav")
    clip(root / ".cache" / "d.wav")
    clip(root / "sub" / ".git" / "e.wav")
    (root / "notes.txt").write_text("not audio")
    return root


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------- files

def test_files_reads_the_tree_recursively_unlabelled(tree):
    data = read_files(tree)
    assert data.name == "files" and data.class_names == [] and data.num_classes == 0
    assert [r.meta["relpath"] for r in data.records] == ["a.wav", "sub/b.flac", "sub/deeper/C.WAV"]
    assert data.labels.tolist() == [-1, -1, -1] and all(r.labels == () for r in data.records)
    assert data.load(1).shape == (300,)
    assert [r.meta["relpath"] for r in read_files(tree, extensions="flac").records] == ["sub/b.flac"]
    assert len(open_dataset(f"files:{tree}?extensions=wav,flac")) == 3
    assert {"files", "manifest", "folder"} <= set(READERS)


def test_files_errors_name_the_folder(tmp_path, tree):
    with pytest.raises(DatasetNotFoundError, match="files: folder .*nowhere not found"):
        open_dataset(f"files:{tmp_path / 'nowhere'}")
    write(tmp_path / "text" / "readme.txt", "x")
    clip(tmp_path / "text" / ".hidden.wav")
    with pytest.raises(DatasetNotFoundError, match=r"no audio files .* under .*text; skipped 1 file.*\.txt \(1\)"):
        read_files(tmp_path / "text")
    with pytest.raises(DatasetError, match="files needs a root folder"):
        open_dataset("files")
    with pytest.raises(DatasetError, match=r"files: extensions='\.txt' is not an audio format"):
        read_files(tree, extensions="txt")
    with pytest.raises(DatasetError, match="has no option 'label'"):
        open_dataset(f"files:{tree}?label=x")


def test_folder_reader_shares_the_search_and_skips_hidden_folders(tree):
    clip(tree / "sub" / ".git" / "e.wav")
    data = read_folder(tree)  # class folders: sub (hidden ones and loose files left out)
    assert data.class_names == ["sub"] and len(data) == 2


# ---------------------------------------------------------------------------------- manifest

def test_manifest_list_resolves_relative_paths_and_skips_comments(tree, tmp_path):
    listing = write(tmp_path / "lists" / "train.txt",
                    "# clips for pre-training\n\n../tree/a.wav\n   \n"
                    f"{tree / 'sub' / 'b.flac'}\n  # indented comment\n../tree/sub/deeper/C.WAV  \n")
    data = open_dataset(f"manifest:{listing}")
    assert data.name == "manifest" and data.class_names == [] and data.labels.tolist() == [-1, -1, -1]
    assert [r.path for r in data.records] == [listing.parent / "../tree/a.wav", tree / "sub" / "b.flac",
                                              listing.parent / "../tree/sub/deeper/C.WAV"]
    assert [r.meta["line"] for r in data.records] == [3, 5, 7]
    assert data.records[0].meta["path"] == "../tree/a.wav" and data.load(2).shape == (200,)
    header_only = write(tmp_path / "paths.csv", "path\ntree/a.wav\n")
    assert [r.meta["line"] for r in read_manifest(header_only).records] == [2]
    clip(tmp_path / '"quoted, odd.wav')  # a first line that is not a CSV row is a path
    odd = write(tmp_path / "odd.txt", '"quoted, odd.wav\n')
    assert read_manifest(odd).records[0].path == tmp_path / '"quoted, odd.wav'


def test_manifest_csv_is_labelled_with_sorted_classes_and_meta(tree, tmp_path):
    table = write(tmp_path / "task.csv", "# labelled\nlabel,path,fold\ndog,tree/a.wav,1\n"
                  'cat,"tree/sub/b.flac",2\ndog,tree/sub/deeper/C.WAV,x\n')
    data = open_dataset(f"manifest:{table}")
    assert data.class_names == ["cat", "dog"] and data.labels.tolist() == [1, 0, 1]
    assert data.records[1].labels == (0,)
    assert data.records[0].meta == {"path": "tree/a.wav", "line": 3, "fold": 1}
    assert data.records[2].meta["fold"] == "x"
    numeric = write(tmp_path / "numeric.csv", "file,target\ntree/a.wav,10\ntree/sub/b.flac,9\n")
    data = open_dataset(f"manifest:{numeric}?path_column=file&label_column=target")
    assert data.class_names == ["9", "10"] and data.labels.tolist() == [1, 0]


@pytest.mark.parametrize("text, error, message", [
    ("a.wav\n# gone\nmissing.wav\nalso_missing.wav\n", DatasetNotFoundError,
     r"list\.txt: line 3: missing\.wav not found .*2 of 3 listed file\(s\) missing"),
    ("a.wav,dog\n", DatasetNotFoundError, r"line 1: a\.wav,dog not found .*needs the header row path,label"),
    ("path,label\na.wav,dog\nnope.wav,cat\n", DatasetNotFoundError, r"line 3: nope\.wav not found"),
    ("# nothing\n\n", DatasetNotFoundError, r"list\.txt lists no files"),
    ("path,label\n", DatasetNotFoundError, r"list\.txt lists no files"),
    ("file,label\na.wav,dog\n", DatasetError, r"line 1: header \['file', 'label'\] lacks column\(s\) \['path'\]"),
    ("path,class\na.wav,dog\n", DatasetError, r"line 1: header .* lacks column\(s\) \['label'\]"),
    ("path,label\na.wav,dog,extra\n", DatasetError, r"line 2 has 3 field\(s\), the header .* has 2"),
    ("path,label\na.wav,\n", DatasetError, r"line 2 has an empty 'label'"),
    ("a.wav\nsub/../a.wav\n", DatasetError, r"line 2: sub/\.\./a\.wav is listed twice \(first on line 1\)"),
])
def test_manifest_errors_name_file_and_line(tmp_path, text, error, message):
    clip(tmp_path / "a.wav")
    (tmp_path / "sub").mkdir()
    listing = write(tmp_path / "list.txt", text)
    with pytest.raises(error, match=message):
        open_dataset(f"manifest:{listing}")


def test_manifest_file_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"manifest: file .*nowhere\.txt not found"):
        open_dataset(f"manifest:{tmp_path / 'nowhere.txt'}")
    with pytest.raises(DatasetNotFoundError, match="not found"):
        read_manifest(tmp_path)  # a folder is not a manifest
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DatasetError, match=r"binary\.txt is not a UTF-8 text file"):
        read_manifest(tmp_path / "binary.txt")
    with pytest.raises(DatasetError, match="manifest needs a file"):
        open_dataset("manifest")


# ------------------------------------------------------------------------ command and training

def test_dataset_command_on_files_and_manifest(tree, tmp_path, capsys):
    out = tmp_path / "files.json"
    assert cli.main(["dataset", f"files:{tree}", "--scan", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "files: 3 clips, 0 classes" in printed and "bad files: 0" in printed
    assert "unlabelled" in printed and "largest classes" not in printed
    report = json.loads(out.read_text())
    assert report["clips"] == 3 and report["classes"] == 0 and "split" not in report
    assert "clips_per_class" not in report
    table = write(tmp_path / "task.csv", "path,label\n" + "".join(
        f"{p},{p.split('/')[0]}\n" for p in ("x/1.wav", "x/2.wav", "y/3.wav", "z/4.wav")))
    for name in ("x/1.wav", "x/2.wav", "y/3.wav", "z/4.wav"):
        clip(tmp_path / name)
    assert cli.main(["dataset", f"manifest:{table}"]) == 0
    assert "manifest: 4 clips, 3 classes" in capsys.readouterr().out
    assert cli.main(["dataset", f"manifest:{tmp_path / 'none.txt'}"]) == 2
    assert "none.txt not found" in capsys.readouterr().err


@pytest.mark.usefixtures("one_thread")  # conftest: tiny tensors, busy machine
def test_pretraining_runs_on_a_folder_of_files(tmp_path):
    from aiaudio.modality import make_audio_modality
    from core.engine import pretrain
    from engine_helpers import tiny_config  # tests/ is on sys.path under pytest

    for k in range(8):
        clip(tmp_path / "audio" / f"part{k % 2}" / f"{k}.wav", 8000, 0.1 + 0.05 * k)
    config = tiny_config(tmp_path / "run", f"data.dataset=files:{tmp_path / 'audio'}", "train.steps=2",
                         "data.fit_clips=4")
    modality = make_audio_modality(config)
    pretrain(config, modality, progress=False)
    assert len(modality.dataset) == 8 and modality.dataset.name == "files"
    assert (tmp_path / "run" / "metrics.csv").is_file()
