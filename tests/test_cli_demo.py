"""The quickstart demo's numbers and the console scripts."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aiaudio import cli as audio_cli
from aiaudio.space import AUDIO_AUGMENTATIONS, FREQUENCY_GROUP, TIME_GROUP, audio_space
from aivision import cli as vision_cli
from aivision.space import group_space, individual_space
from core.demo import descriptor_effects, format_table, interpolation_curve
from tests.conftest import tiny_encoder


def test_modality_spaces_match_the_paper():
    assert audio_space().names == AUDIO_AUGMENTATIONS and len(audio_space().descriptors) == 120
    assert set(FREQUENCY_GROUP) | set(TIME_GROUP) == set(AUDIO_AUGMENTATIONS)
    assert group_space().descriptors.tolist() == [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    assert len(individual_space().descriptors) == 26


def test_descriptor_effects_values(audio_space):
    x = torch.randn(2, 3, 32, 32)
    table = audio_space.descriptors
    hyper = tiny_encoder("hyper_resnet18", audio_space)
    rows = descriptor_effects(hyper, x, {"ref": table[-1], "other": table[0]}, reference="ref")
    ref, other = rows
    assert ref["cosine"] == pytest.approx(1.0) and ref["feature_change"] == 0 and ref["kernel_change"] == 0
    assert other["feature_change"] > 0.01 and other["kernel_change"] > 0.01
    plain = tiny_encoder("resnet18", audio_space)
    rows = descriptor_effects(plain, x, {"ref": table[-1], "other": table[0]}, reference="ref")
    assert rows[1]["feature_change"] == 0 and "kernel_change" not in rows[1]
    with pytest.raises(ValueError, match="reference"):
        descriptor_effects(plain, x, {"a": table[0]}, reference="b")


def test_interpolation_end_points(audio_space):
    enc = tiny_encoder("hyper_resnet18", audio_space)
    curve = interpolation_curve(enc, torch.randn(2, 3, 32, 32), audio_space.descriptors[0], audio_space.descriptors[-1], steps=3)
    assert [round(r["t"], 2) for r in curve] == [0.0, 0.5, 1.0]
    assert curve[0]["cosine_to_start"] == pytest.approx(1.0) and curve[-1]["cosine_to_end"] == pytest.approx(1.0)


def test_format_table_aligns_and_marks_missing():
    text = format_table([{"a": 1.23456, "b": "x"}, {"a": 2.0}], [("a", "A", ".2f"), ("b", "B", "s")])
    lines = text.splitlines()
    assert lines[0].split() == ["A", "B"] and lines[2].split() == ["1.23", "x"] and lines[3].split() == ["2.00", "-"]


def test_audio_demo_prints_report(capsys):
    assert audio_cli.main(["demo", "--width", "8", "--seconds", "1.5", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "120 binary descriptors" in out
    assert "frequency group" in out and "...quantised, 1 bit" in out
    assert "max |difference| 0.00e+00" in out


def test_vision_demo_prints_report(capsys):
    assert vision_cli.main(["demo", "--encoder", "prompt_vit_small", "--size", "16", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "spatial [1,0]" in out and "max |difference|" in out


@pytest.mark.parametrize("script", ["aiaudio", "aivision"])
def test_console_scripts_installed(script):
    exe = Path(sys.executable).parent / script
    assert exe.exists(), f"{exe} missing: run `pip install -e .`"
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "demo" in result.stdout
