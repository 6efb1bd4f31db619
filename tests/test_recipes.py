"""Recipes: their YAML configs validate, and their scripts check the environment and call the
CLIs with arguments those CLIs accept (a stand-in interpreter records the calls)."""
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aiaudio.cli import build_parser
from aivision.baselines import BASELINES
from aivision.cli import build_parser as vision_parser
from aivision.modality import VisionDataConfig
from aiaudio.data import write_audio
from aiaudio.modality import AudioDataConfig, make_audio_modality
from core.config import from_dict
from core.engine.config import load_config
from core.invariance import InvarianceSpace

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
SCRIPTS = ["fsd50k_simclr.sh", "imagenet100_moco.sh", "imagenet_vit_moco_v3.sh"]
CONFIGS = ["fsd50k_simclr.yaml", "imagenet100_moco.yaml", "imagenet_vit_moco_v3.yaml"]


def run_script(name: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if not re.match(r"^(FSD50K|ESC50|NSYNTH|VOXCELEB|FSDKAGGLE|IMAGENET)_|^(GPUS|GLOBAL_BATCH|RUN_DIR|DEVICE|PYTHON)$", k)}
    base.setdefault("PYTHON", sys.executable)
    return subprocess.run(["bash", str(RECIPES / name), *args], env={**base, **env}, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def recorder(tmp_path):
    """A stand-in interpreter that writes each call's arguments (one per line) to calls/NNN."""
    calls = tmp_path / "calls"
    calls.mkdir()
    fake = tmp_path / "fake_python"
    fake.write_text(f'#!/usr/bin/env bash\nn=$(ls "{calls}" | wc -l)\nprintf "%s\\n" "$@" > "{calls}/$(printf %03d "$n")"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake, lambda: [p.read_text().splitlines() for p in sorted(calls.iterdir())]


@pytest.fixture
def fsd50k_root(tmp_path):
    root = tmp_path / "FSD50K"
    truth = root / "FSD50K.ground_truth"
    truth.mkdir(parents=True)
    (truth / "vocabulary.csv").write_text("0,Bark,/m/05tny_\n1,Rain,/m/06mb1\n")
    (truth / "dev.csv").write_text('fname,labels,mids,split\n11,Bark,/m/05tny_,train\n12,Rain,/m/06mb1,val\n')
    for name in ("11", "12"):
        write_audio(root / "FSD50K.dev_audio" / f"{name}.wav", np.full(4410, 0.1, np.float32), 44100)
    return root


# -------------------------------------------------------------------------- configs
def test_every_value_in_the_recipe_yamls_states_its_source():
    for name in CONFIGS:
        for number, line in enumerate((RECIPES / name).read_text().splitlines(), 1):
            if re.match(r"^\s*[a-z_]+:\s*[^\s#]", line):  # a key with a value (not a section header)
                assert "#" in line, f"{name}:{number} has no source comment: {line.strip()}"


def test_fsd50k_config_is_the_papers_audio_setting():
    config = load_config(RECIPES / "fsd50k_simclr.yaml")
    data = from_dict(AudioDataConfig, config.data, "data")
    assert config.method.name == "simclr" and config.method.temperature == 0.5
    assert config.encoder.name == "hyper_resnet18" and config.descriptor.mode == "sample"
    assert config.optim.name == "adamw" and config.optim.warmup_steps == round(config.train.steps * 40 / 300)
    assert len(InvarianceSpace(data.space, data.min_active).descriptors) == 120
    assert data.space == ["pitch_shift", "fade_in", "fade_out", "noise", "time_mask", "time_shift", "time_stretch"]
    assert (data.frontend.n_fft, data.frontend.hop_length, data.frontend.n_mels) == (1024, 512, 128)
    assert data.augment.pitch_shift.max_semitones == 15.0 and data.augment.time_mask.max_fraction == 0.125


def test_imagenet100_config_is_the_papers_vision_setting():
    config = load_config(RECIPES / "imagenet100_moco.yaml")
    steps_per_epoch = 126_689 // 1024
    assert config.method.name == "moco_v2" and config.encoder.name == "hyper_resnet50"
    assert (config.method.proj_layers, config.method.proj_hidden, config.method.proj_out) == (3, 4096, 256)
    assert config.train.batch_size == 1024 and config.optim.name == "adamw"
    assert config.train.steps == 300 * steps_per_epoch and config.optim.warmup_steps == 40 * steps_per_epoch
    assert config.data["space"] == ["spatial", "appearance"]
    assert len(InvarianceSpace(config.data["space"], config.data["min_active"]).descriptors) == 3


# -------------------------------------------------------------------------- scripts
@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_parse(name):
    result = subprocess.run(["bash", "-n", str(RECIPES / name)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "set -euo pipefail" in (RECIPES / name).read_text()


def test_fsd50k_script_needs_its_data(tmp_path, fsd50k_root):
    result = run_script("fsd50k_simclr.sh", {})
    assert result.returncode != 0 and "FSD50K_ROOT is not set" in result.stderr
    result = run_script("fsd50k_simclr.sh", {"FSD50K_ROOT": str(tmp_path / "nowhere")})
    assert result.returncode != 0 and "FSD50K.dev_audio" in result.stderr and "nowhere" in result.stderr
    result = run_script("fsd50k_simclr.sh", {"FSD50K_ROOT": str(fsd50k_root), "GPUS": "3"})
    assert result.returncode != 0 and "GLOBAL_BATCH (256) must be a positive multiple of GPUS (3)" in result.stderr


def test_imagenet100_script_needs_its_data(tmp_path):
    result = run_script("imagenet100_moco.sh", {})
    assert result.returncode != 0 and "IMAGENET_ROOT is not set" in result.stderr
    result = run_script("imagenet100_moco.sh", {"IMAGENET_ROOT": str(tmp_path)})
    assert result.returncode != 0 and "has no train/ folder" in result.stderr


def test_fsd50k_script_calls(tmp_path, recorder, fsd50k_root):
    fake, calls = recorder
    run_dir = tmp_path / "run"
    env = {"PYTHON": str(fake), "FSD50K_ROOT": str(fsd50k_root), "GPUS": "2", "RUN_DIR": str(run_dir),
           "ESC50_ROOT": "/data/ESC-50", "ESC50_SPLIT": "/data/esc50_split.pkl", "NSYNTH_ROOT": "/data/nsynth",
           "DEVICE": "cpu"}
    result = run_script("fsd50k_simclr.sh", env, "train.steps=20")
    assert result.returncode == 0, result.stderr
    train, export, *fewshot = calls()
    # torchrun with 2 processes, then the aiaudio CLI's pretrain with the recipe's config.
    assert train[:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    assert train[5:8] == ["-m", "aiaudio.cli", "pretrain"] and "--resume" not in train
    args = build_parser().parse_args(train[7:])
    config = load_config(REPO / args.config, args.overrides)
    assert config.run_dir == str(run_dir) and config.train.batch_size == 128 and config.train.steps == 20
    assert config.data["dataset"] == f"fsd50k:{fsd50k_root}?split=dev"
    modality = make_audio_modality(config)  # the spec the script builds opens the FSD50K layout
    assert len(modality.dataset) == 2 and modality.train_dataset()[0]["input"].shape == (64000,)
    assert build_parser().parse_args(export[2:]).checkpoint == str(run_dir / "checkpoints" / "last.pt")
    assert export[:2] == ["-m", "aiaudio.cli"] and export[-1] == str(run_dir / "encoder.pt")
    # Few-shot evaluation on the two datasets whose paths are set, with contract K's flags.
    assert len(fewshot) == 2
    esc, nsynth = (build_parser().parse_args(call[2:]) for call in fewshot)
    assert (esc.command, esc.dataset, esc.split_file, nsynth.dataset, nsynth.split_file) == (
        "fewshot", "esc50:/data/ESC-50", "/data/esc50_split.pkl", "nsynth:/data/nsynth", None)
    assert (esc.ways, esc.shots, esc.queries, esc.episodes, esc.split, esc.descriptor) == (5, 1, 15, 600, "test", "episode")
    assert esc.encoder == str(run_dir / "encoder.pt") and esc.json == str(run_dir / "fewshot_esc50.json")
    # A second run resumes, and without dataset paths the evaluation is skipped with a message.
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"")
    env = {k: v for k, v in env.items() if not k.startswith(("ESC50", "NSYNTH"))}
    result = run_script("fsd50k_simclr.sh", env)
    assert result.returncode == 0 and "few-shot evaluation skipped" in result.stdout
    assert "--resume" in calls()[-2]
    # Only step files (last.pt deleted or renamed aside as corrupt): still a resume, which takes
    # the newest intact one, never a fresh start over the checkpoints.
    (run_dir / "checkpoints" / "last.pt").rename(run_dir / "checkpoints" / "last.pt.corrupt")
    (run_dir / "checkpoints" / "step_0000100.pt").write_bytes(b"")
    result = run_script("fsd50k_simclr.sh", env)
    assert result.returncode == 0 and "--resume" in calls()[-2]


def test_imagenet100_script_calls(tmp_path, recorder):
    fake, calls = recorder
    (tmp_path / "imagenet" / "train").mkdir(parents=True)
    env = {"PYTHON": str(fake), "IMAGENET_ROOT": str(tmp_path / "imagenet"), "GPUS": "8", "RUN_DIR": str(tmp_path / "run")}
    result = run_script("imagenet100_moco.sh", env)
    assert result.returncode == 0, result.stderr
    train = [c for c in calls() if "torch.distributed.run" in c][0]
    assert train[:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "8"]
    assert train[5:8] == ["-m", "aivision.cli", "pretrain"]
    config_at = train.index("--config") + 1
    overrides = [a for a in train[config_at + 1:] if "=" in a]
    config = load_config(REPO / train[config_at], overrides)
    assert config.train.batch_size == 128 and config.data["dataset"] == f"imagenet100:{tmp_path / 'imagenet'}"
    data = from_dict(VisionDataConfig, config.data, "data")
    assert (data.load_size, data.augment.size, data.augment.crop.min_scale) == (256, 224, 0.2)
    args = vision_parser().parse_args(train[7:])
    assert args.model == "ai_moco" and args.config == "recipes/imagenet100_moco.yaml"
    # a baseline by name, with the same budget; an unknown name stops before anything runs
    result = run_script("imagenet100_moco.sh", {**env, "MODEL": "moco_spatial"})
    assert result.returncode == 0, result.stderr
    train = [c for c in calls() if "torch.distributed.run" in c][-1]
    args = vision_parser().parse_args(train[7:])
    assert args.model == "moco_spatial" and str(tmp_path / "run") in " ".join(args.overrides)
    config = load_config(REPO / args.config, [*BASELINES[args.model], *args.overrides])
    assert config.descriptor.active == ["spatial"] and config.encoder.name == "resnet50"


def test_vit_config_is_the_papers_moco_v3_setting():
    config = load_config(RECIPES / "imagenet_vit_moco_v3.yaml")
    steps_per_epoch = 1_281_167 // 1024
    assert config.method.name == "moco_v3" and config.encoder.name == "prompt_vit_base"
    assert config.encoder.kwargs["num_prompts"] == 256 and config.encoder.kwargs["pretrained"] is None
    assert (config.method.proj_layers, config.method.proj_hidden, config.method.proj_out) == (3, 4096, 256)
    assert config.train.steps == 300 * steps_per_epoch and config.optim.warmup_steps == 40 * steps_per_epoch
    data = from_dict(VisionDataConfig, config.data, "data")
    assert data.space == ["spatial", "appearance"] and data.augment.crop.min_scale == 0.08


def test_vit_script_checks_the_checkpoint_and_calls_pretrain(tmp_path, recorder):
    fake, calls = recorder
    (tmp_path / "imagenet" / "train").mkdir(parents=True)
    env = {"PYTHON": str(fake), "IMAGENET_ROOT": str(tmp_path / "imagenet"), "GPUS": "4",
           "RUN_DIR": str(tmp_path / "run"), "PRETRAINED": str(tmp_path / "missing.pth.tar")}
    result = run_script("imagenet_vit_moco_v3.sh", env)
    assert result.returncode != 0 and "missing.pth.tar: no such file" in result.stderr
    (tmp_path / "vit-b.pth.tar").write_bytes(b"weights")
    result = run_script("imagenet_vit_moco_v3.sh", {**env, "PRETRAINED": str(tmp_path / "vit-b.pth.tar")})
    assert result.returncode == 0, result.stderr
    train, export = calls()
    args = vision_parser().parse_args(train[7:])
    config = load_config(REPO / args.config, args.overrides)
    assert config.train.batch_size == 256 and config.data["dataset"] == f"folder:{tmp_path / 'imagenet'}/train"
    assert config.encoder.kwargs["pretrained"] == str(tmp_path / "vit-b.pth.tar")
    assert export[:3] == ["-m", "aivision.cli", "export"]
