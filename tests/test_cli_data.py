"""The data sub-commands of ``aiaudio``: dataset, synth, augment."""
import json
import re

import numpy as np
import pytest
import soundfile as sf

from aiaudio import cli
from aiaudio.data import open_dataset
from core.dataspec import DatasetError
from aiaudio.space import AUDIO_AUGMENTATIONS


def test_synth_then_dataset_round_trip(tmp_path, capsys):
    root = tmp_path / "synth"
    assert cli.main(["synth", str(root), "--n-clips", "30", "--seconds", "0.5", "--label", "pitch"]) == 0
    assert (root / "meta" / "esc50.csv").is_file() and len(list((root / "audio").glob("*.wav"))) == 30
    out = tmp_path / "info.json"
    assert cli.main(["dataset", f"esc50:{root}?label_column=pitch", "--scan", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "esc50: 30 clips, 8 classes" in printed and "bad files: 0" in printed
    report = json.loads(out.read_text())
    assert report["clips"] == 30 and report["classes"] == 8 and report["bad_files"] == []
    assert report["seconds"]["min"] == pytest.approx(0.5)
    assert report["split"]["train"]["classes"] + report["split"]["val"]["classes"] + report["split"]["test"]["classes"] == 8
    assert cli.main(["synth", str(root), "--n-clips", "4"]) == 2
    assert "esc50.csv already exists" in capsys.readouterr().err


def test_dataset_scan_reports_bad_file(tmp_path, capsys):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        sf.write(tmp_path / cls / "ok.wav", np.zeros(1600, np.float32) + 0.1, 16000)
    (tmp_path / "b" / "broken.wav").write_bytes(b"not audio at all")
    assert cli.main(["dataset", f"folder:{tmp_path}", "--scan"]) == 0
    printed = capsys.readouterr().out
    assert "bad files: 1" in printed and "broken.wav" in printed


def test_dataset_unknown_name_is_a_clear_error(capsys):
    assert cli.main(["dataset", "esc51:/nowhere"]) == 2
    assert re.search(r"^aiaudio dataset: error: unknown dataset 'esc51'.*available", capsys.readouterr().err)
    with pytest.raises(DatasetError, match="unknown dataset 'esc51'") as info:
        open_dataset("esc51:/nowhere")
    assert isinstance(info.value, ValueError)  # older ``except ValueError`` callers still catch it


def test_augment_writes_figure_and_wavs(tmp_path, capsys):
    out = tmp_path / "aug"
    assert cli.main(["augment", "--dataset", "synthetic?n_clips=4&seconds=1.0", "--clips", "2",
                     "--seconds", "1.0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (out / "augmentations.png").stat().st_size > 10_000
    wavs = sorted(p.name for p in out.glob("*.wav"))
    assert len(wavs) == 2 * (len(AUDIO_AUGMENTATIONS) + 2)
    clean, _ = sf.read(out / "clip0_clean.wav")
    shifted, _ = sf.read(out / "clip0_pitch_shift.wav")
    assert clean.shape == shifted.shape == (16000,) and not np.allclose(clean, shifted)
    for name in AUDIO_AUGMENTATIONS:
        assert name in printed
