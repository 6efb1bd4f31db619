"""A corpus of bad input data run through the real command lines: audio files (empty, garbage,
cut short, NaN, inf, huge samples, no samples), image files (corrupt, zero bytes, truncated),
dataset layouts (missing folder, unknown spec, no classes, unsupported extensions) and
outputs that already exist. Every case checks the exit status, that the error is one line
naming the file, key or value without a traceback, and that files written before survive.
"""
import csv
import hashlib
import io
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from aiaudio.cli import main as aiaudio_main
from aiaudio.data import write_audio
from aiaudio.frontend import Frontend, FrontendConfig
from aiaudio.space import audio_space
from aivision.cli import main as aivision_main
from aivision.space import individual_space
from core import build_encoder
from core.encoders.serialise import save_encoder

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 8000
SECONDS = 0.25
# pre-training settings small enough for a step in well under a second
PRETRAIN = ["--no-progress", "train.batch_size=6", "train.log_every=1", "train.checkpoint_every=1",
            "encoder.kwargs={width: 4}", "method.proj_hidden=16", "method.proj_out=8", f"data.seconds={SECONDS}",
            f"data.sample_rate={SR}", f"data.frontend={{sample_rate: {SR}, n_fft: 128, hop_length: 64, n_mels: 16}}",
            "data.augment={pitch_shift: {n_fft: 128, hop_length: 64}, time_stretch: {n_fft: 128, hop_length: 64}}"]


# ----------------------------------------------------------------------------- helpers

def tone(index: int, samples: int = int(SR * SECONDS)) -> np.ndarray:
    """A quiet ``(samples,)`` float32 tone whose pitch depends on ``index``."""
    t = np.arange(samples) / SR
    return (0.3 * np.sin(2 * np.pi * (200 + 50 * index) * t)).astype(np.float32)


def write_folder(root: Path, classes: int = 3, per_class: int = 2) -> Path:
    """``root/<class>/<i>.wav``: a valid folder-per-class dataset of 16-bit WAVs."""
    for c in range(classes):
        for i in range(per_class):
            write_audio(root / f"class{c}" / f"{i}.wav", tone(c * per_class + i), SR)
    return root


def write_bad_audio(path: Path, kind: str) -> Path:
    """Write one bad audio file of ``kind`` at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "no_samples":
        write_audio(path, np.zeros(0, np.float32), SR)
    elif kind == "truncated":
        full = io.BytesIO()
        sf.write(full, tone(0), SR, format="WAV", subtype="PCM_16")
        path.write_bytes(full.getvalue()[:-2 * 1000])  # 1000 of the 2000 frames cut off
    else:
        wave = tone(0)
        wave[100] = {"nan": np.nan, "inf": np.inf, "huge": 1e30}[kind]
        write_audio(path, wave, SR)  # 32-bit float WAV: the value survives
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def error_line(err: str) -> str:
    """The single ``error:`` line of ``err`` (asserting there is exactly one and no traceback)."""
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def fails(main, argv, capsys, *named: str, status: int = 2) -> str:
    """Run ``main(argv)``; assert the exit status and one error line naming every ``named`` text."""
    rc = main(argv)
    err = capsys.readouterr().err
    line = error_line(err)
    assert rc == status, (rc, err)
    assert "internal error" not in line, line
    for text in named:
        assert text in line, (text, line)
    return line


@pytest.fixture(scope="module")
def audio_encoder(tmp_path_factory) -> Path:
    """A tiny audio encoder with a stored 8 kHz front end."""
    root = tmp_path_factory.mktemp("audio_encoder")
    frontend = Frontend(FrontendConfig(sample_rate=SR, n_fft=128, hop_length=64, n_mels=16))
    frontend.fit([torch.from_numpy(np.stack([tone(i) for i in range(4)]))])
    torch.manual_seed(0)
    encoder = build_encoder("hyper_resnet18", audio_space(), in_chans=1, width=4)
    return save_encoder(encoder, root / "encoder.pt", extra={"frontend": frontend.to_dict()})


@pytest.fixture(scope="module")
def vision_encoder(tmp_path_factory) -> Path:
    """A tiny image encoder for 32 px inputs."""
    root = tmp_path_factory.mktemp("vision_encoder")
    torch.manual_seed(0)
    encoder = build_encoder("hyper_resnet18", individual_space(), in_chans=3, width=4)
    extra = {"modality": "vision", "image_size": 32, "normalize": True, "mean": [0.5] * 3, "std": [0.25] * 3}
    return save_encoder(encoder, root / "encoder.pt", extra=extra)


def write_images(root: Path, classes: int = 3, per_class: int = 2) -> Path:
    """``root/<class>/<i>.png``: a valid folder-per-class image set of 16 px PNGs."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / f"class{c}" / f"{i}.png")
    return root


# ------------------------------------------------------------------ audio files: dataset --scan

@pytest.mark.parametrize("kind, reason", [
    ("empty", "unreadable"), ("garbage", "unreadable"), ("no_samples", "contains no samples"),
    ("nan", "1 non-finite (NaN/inf) samples"), ("inf", "1 non-finite (NaN/inf) samples"),
    ("huge", "peak sample magnitude 1e+30 exceeds the bound 1e+06"),
])
def test_scan_names_each_bad_audio_file(tmp_path, capsys, kind, reason):
    root = write_folder(tmp_path / "data")
    bad = write_bad_audio(root / "class1" / f"bad_{kind}.wav", kind)
    assert aiaudio_main(["dataset", f"folder:{root}", "--scan", "--json", str(tmp_path / "r.json")]) == 0
    captured = capsys.readouterr()
    assert "bad files: 1" in captured.out and f"{bad}: " in captured.out and reason in captured.out
    assert "Traceback" not in captured.err


def test_scan_reports_a_truncated_wav_with_both_lengths(tmp_path, capsys):
    root = write_folder(tmp_path / "data")
    cut = write_bad_audio(root / "class0" / "cut.wav", "truncated")
    assert aiaudio_main(["dataset", f"folder:{root}", "--scan"]) == 0
    out = capsys.readouterr().out
    assert "bad files: 0" in out and "files with warnings: 1" in out
    assert (f"{cut}: truncated WAV: the header declares 2000 frames (0.250 s) but the file holds 1000 (0.125 s)"
            in out)


# ------------------------------------------------------------- audio files: downstream commands

@pytest.mark.parametrize("command, kind, reason", [
    ("fewshot", "huge", "peak sample magnitude 1e+30"),
    ("probe", "huge", "peak sample magnitude 1e+30"),
    ("fewshot", "nan", "non-finite"),
    ("probe", "no_samples", "contains no samples"),
])
def test_downstream_commands_stop_at_a_bad_clip_naming_it(tmp_path, capsys, audio_encoder, command, kind, reason):
    root = write_folder(tmp_path / "data")
    bad = write_bad_audio(root / "class2" / f"bad_{kind}.wav", kind)
    options = (["--ways", "2", "--queries", "1", "--episodes", "2", "--split", "all"] if command == "fewshot"
               else ["--epochs", "1", "--lrs", "0.01", "--weight-decays", "0"])
    report = tmp_path / "report.json"
    fails(aiaudio_main, [command, "--encoder", str(audio_encoder), "--dataset", f"folder:{root}", "--seconds",
                         str(SECONDS), "--no-progress", "--json", str(report), *options], capsys, str(bad), reason)
    assert not report.exists()  # no accuracy computed from NaN features


# --------------------------------------------------------------------- audio files: pretrain

def test_pretrain_names_a_huge_file_that_would_poison_the_normaliser(tmp_path, capsys):
    root = write_folder(tmp_path / "data")
    huge = write_bad_audio(root / "class0" / "0.wav", "huge")  # the first clip of the fit
    fails(aiaudio_main, ["pretrain", *PRETRAIN, f"run_dir={tmp_path / 'run'}", f"data.dataset=folder:{root}",
                         "train.steps=1", "train.num_workers=0"], capsys,
          str(huge), "peak sample magnitude 1e+30", "data.skip_bad=true")
    assert not list((tmp_path / "run").rglob("*.pt"))


def test_pretrain_bad_file_in_a_worker_is_named_and_skip_bad_skips_it(tmp_path, capsys):
    root = write_folder(tmp_path / "data")
    bad = write_bad_audio(root / "class2" / "1.wav", "garbage")  # the last clip: not among the fitted ones
    run = tmp_path / "run"
    common = ["pretrain", *PRETRAIN, f"run_dir={run}", f"data.dataset=folder:{root}", "data.fit_clips=4"]
    # in the main process (num_workers=0) so that the warning is seen here
    with pytest.warns(RuntimeWarning, match=f"skipping bad audio file {bad}"):
        assert aiaudio_main([*common, "train.steps=1", "data.skip_bad=true", "train.num_workers=0"]) == 0
    assert "skipped 1 bad file(s)" in capsys.readouterr().err  # the one batch holds every clip once
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["skipped_files"] for row in rows] == ["1"]
    checkpoints = {p: digest(p) for p in run.rglob("*.pt")}
    assert checkpoints
    # the same run resumed without skip_bad meets the file in a DataLoader worker (every batch holds it)
    with pytest.warns(UserWarning, match="differs"):
        fails(aiaudio_main, [*common, "train.steps=2", "train.num_workers=1", "--resume"], capsys,
              str(bad), "unreadable", "set data.skip_bad=true to skip bad files")
    assert multiprocessing.active_children() == []  # the worker is shut down, so the command can exit
    assert {p: digest(p) for p in checkpoints} == checkpoints  # what was written survives


def test_library_pretrain_shuts_its_workers_down_when_a_step_fails(tmp_path):
    """Called as a library (or with --debug) the error keeps the failed loop's frames alive in
    its traceback; the loop itself must still shut the DataLoader workers down, or the
    interpreter's exit would wait for them forever."""
    from aiaudio.data.base import BadAudioError
    from aiaudio.modality import make_audio_modality
    from core.engine import load_config, pretrain

    root = write_folder(tmp_path / "data")
    write_bad_audio(root / "class2" / "1.wav", "garbage")
    config = load_config(None, [*PRETRAIN[1:], f"run_dir={tmp_path / 'run'}", f"data.dataset=folder:{root}",
                                "data.fit_clips=4", "train.steps=2", "train.num_workers=1"])
    with pytest.raises(BadAudioError) as info:
        pretrain(config, make_audio_modality(config), progress=False)
    assert info.value.__traceback__ is not None  # the frames are still referenced here
    assert multiprocessing.active_children() == []


# ------------------------------------------------------------------------- dataset layouts

def test_missing_dataset_folder(tmp_path, capsys):
    fails(aiaudio_main, ["dataset", f"folder:{tmp_path / 'nowhere'}"], capsys, str(tmp_path / "nowhere"),
          "not found")


def test_unknown_dataset_spec(capsys):
    fails(aiaudio_main, ["dataset", "esc51:/data"], capsys, "unknown dataset 'esc51'", "available:")


def test_unknown_dataset_option(tmp_path, capsys):
    root = write_folder(tmp_path / "data")
    fails(aiaudio_main, ["dataset", f"folder:{root}?folds=1"], capsys, "no option 'folds'", "extensions")


@pytest.mark.parametrize("layout", ["empty", "loose_files"])
def test_folder_with_no_classes(tmp_path, capsys, layout):
    root = tmp_path / "data"
    root.mkdir()
    if layout == "loose_files":
        write_audio(root / "a.wav", tone(0), SR)
    line = fails(aiaudio_main, ["dataset", f"folder:{root}"], capsys, str(root), "no audio files")
    assert ("outside any class folder" in line) == (layout == "loose_files")


def test_folder_of_unsupported_extensions(tmp_path, capsys):
    root = tmp_path / "data"
    for c in range(2):
        (root / f"class{c}").mkdir(parents=True)
        (root / f"class{c}" / "clip.mp4").write_bytes(b"\x00" * 64)
    fails(aiaudio_main, ["dataset", f"folder:{root}"], capsys, str(root), ".mp4 (2)")
    fails(aiaudio_main, ["dataset", f"folder:{root}?extensions=mp4"], capsys, "extensions='.mp4'",
          "not an audio format")


def test_missing_split_file_and_broken_layout_metadata(tmp_path, capsys):
    root = write_folder(tmp_path / "data")
    fails(aiaudio_main, ["dataset", f"folder:{root}", "--split-file", str(root / "class0" / "0.wav")], capsys,
          "0.wav", "not a MetaAudio class split")
    (tmp_path / "esc" / "meta").mkdir(parents=True)
    (tmp_path / "esc" / "audio").mkdir()
    (tmp_path / "esc" / "meta" / "esc50.csv").write_text("filename,fold\n1-1-A-0.wav,1\n")
    fails(aiaudio_main, ["dataset", f"esc50:{tmp_path / 'esc'}"], capsys, "esc50.csv", "missing column(s)")


# ---------------------------------------------------------------------- existing outputs

def test_synth_to_existing_output_names_the_flag_and_keeps_the_files(tmp_path, capsys):
    out = tmp_path / "synth"
    assert aiaudio_main(["synth", str(out), "--n-clips", "4", "--seconds", "0.25", "--sample-rate", "8000"]) == 0
    capsys.readouterr()
    before = {p: digest(p) for p in out.rglob("*") if p.is_file()}
    line = fails(aiaudio_main, ["synth", str(out), "--n-clips", "6", "--seconds", "0.25", "--sample-rate", "8000"],
                 capsys, str(out / "meta" / "esc50.csv"), "--overwrite")
    assert "overwrite=True" not in line
    assert {p: digest(p) for p in out.rglob("*") if p.is_file()} == before
    assert aiaudio_main(["synth", str(out), "--n-clips", "6", "--seconds", "0.25", "--sample-rate", "8000",
                         "--overwrite"]) == 0


def test_augment_to_existing_output_names_the_flag_and_keeps_the_files(tmp_path, capsys):
    out = tmp_path / "aug"
    argv = ["augment", "--dataset", "synthetic?n_clips=2&seconds=0.5", "--clips", "1", "--seconds", "0.5",
            "--out", str(out)]
    assert aiaudio_main(argv) == 0
    capsys.readouterr()
    before = {p: digest(p) for p in out.iterdir()}
    fails(aiaudio_main, argv, capsys, str(out / "augmentations.png"), "--overwrite")
    assert {p: digest(p) for p in out.iterdir()} == before


def test_augment_of_a_bad_clip_names_it(tmp_path, capsys):
    root = write_folder(tmp_path / "data", classes=1, per_class=1)
    bad = write_bad_audio(root / "class0" / "0.wav", "inf")
    fails(aiaudio_main, ["augment", "--dataset", f"folder:{root}", "--clips", "1", "--seconds", "0.25",
                         "--sample-rate", str(SR), "--out", str(tmp_path / "aug")], capsys, str(bad), "non-finite")


# --------------------------------------------------------------------------------- images

def vision_fewshot(encoder: Path, spec: str) -> list[str]:
    return ["fewshot", "--encoder", str(encoder), "--dataset", spec, "--no-progress", "--ways", "2",
            "--queries", "1", "--episodes", "2"]


@pytest.mark.parametrize("kind, reason", [
    ("corrupt_png", "cannot decode image"), ("zero_bytes", "cannot decode image"),
    ("truncated_jpeg", "cannot decode image"),
])
def test_vision_bad_image_is_named(tmp_path, capsys, vision_encoder, kind, reason):
    root = write_images(tmp_path / "images")
    if kind == "corrupt_png":
        bad = root / "class1" / "0.png"
        data = bytearray(bad.read_bytes())
        data[40:80] = b"\xff" * 40  # inside the image data chunk: the header still opens
        bad.write_bytes(bytes(data))
    elif kind == "zero_bytes":
        bad = root / "class1" / "empty.png"
        bad.write_bytes(b"")
    else:
        buffer = io.BytesIO()
        Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buffer, format="JPEG")
        bad = root / "class2" / "cut.jpg"
        bad.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    fails(aivision_main, vision_fewshot(vision_encoder, f"folder:{root}"), capsys, str(bad), reason)


def test_vision_pretrain_bad_image_in_a_worker_is_named(tmp_path, capsys):
    root = write_images(tmp_path / "images", per_class=3)
    bad = root / "class0" / "1.png"
    bad.write_bytes(b"not a png")
    argv = ["pretrain", "--no-progress", f"run_dir={tmp_path / 'run'}", f"data.dataset=folder:{root}",
            "train.batch_size=9", "train.num_workers=1", "train.steps=1", "encoder.kwargs={width: 4}",
            "method.proj_hidden=16", "method.proj_out=8", "data.load_size=16", "data.augment.size=16"]
    fails(aivision_main, argv, capsys, str(bad), "set data.skip_bad=true")
    assert multiprocessing.active_children() == []
    assert not list((tmp_path / "run").rglob("*.pt"))


def test_vision_missing_folder_unknown_spec_and_no_images(tmp_path, capsys, vision_encoder):
    fails(aivision_main, vision_fewshot(vision_encoder, f"folder:{tmp_path / 'nowhere'}"), capsys,
          str(tmp_path / "nowhere"), "not found")
    fails(aivision_main, vision_fewshot(vision_encoder, "cub201:/data"), capsys, "unknown dataset 'cub201'")
    empty = tmp_path / "empty"
    (empty / "class0").mkdir(parents=True)
    (empty / "class0" / "notes.txt").write_text("no images here")
    fails(aivision_main, vision_fewshot(vision_encoder, f"folder:{empty}"), capsys, str(empty), "no images")
    fails(aivision_main, ["pretrain", "--no-progress", f"run_dir={tmp_path / 'run'}",
                          f"data.dataset=folder:{tmp_path / 'nowhere'}"], capsys,
          "data.dataset", str(tmp_path / "nowhere"))
