"""recipes/real_audio.sh: checks its Debian packages, builds the corpus, then calls
`aiaudio compare` with the four corpus tasks (a stand-in interpreter records the calls;
a stand-in dpkg says which packages are installed)."""
import os
import re
import subprocess
from pathlib import Path

import pytest

from torch import nn

from aiaudio.baselines import baseline_overrides
from aiaudio.cli import build_parser
from aiaudio.space import audio_space
from core import build_encoder
from core.encoders.descriptor_norm import DescriptorBatchNorm2d
from core.engine.config import load_config

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "real_audio.sh"


def run_recipe(tmp_path: Path, env: dict, installed: bool, *args: str):
    """Run the recipe; returns (process, [argument list of each interpreter call])."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "dpkg").write_text(f"#!/usr/bin/env bash\nexit {0 if installed else 1}\n")
    record = tmp_path / "calls.txt"
    (bin_dir / "python").write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" "--END--" >> "{record}"\n')
    for tool in ("dpkg", "python"):
        (bin_dir / tool).chmod(0o755)
    base = {k: v for k, v in os.environ.items() if not re.match(r"^(OUT|CORPUS|CONFIG|STEPS|EPISODES|INSTALL)$", k)}
    done = subprocess.run(["bash", str(RECIPE), *args], capture_output=True, text=True, timeout=60,
                          env={**base, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": str(bin_dir / "python"),
                               **env})
    calls, current = [], []
    for line in (record.read_text().splitlines() if record.exists() else []):
        if line == "--END--":
            calls.append(current)
            current = []
        else:
            current.append(line)
    return done, calls


def test_recipe_builds_the_corpus_then_compares_on_its_four_tasks(tmp_path):
    out = tmp_path / "out"
    done, calls = run_recipe(tmp_path, {"OUT": str(out), "STEPS": "200", "EPISODES": "40"}, True,
                             "--probe-epochs", "3")
    assert done.returncode == 0, done.stderr
    assert calls[0] == ["-m", "aiaudio.corpus", f"{out}/corpus"]
    assert calls[1][:3] == ["-m", "aiaudio.cli", "compare"]
    args = build_parser().parse_args(calls[1][2:])
    assert args.models == ["simclr", "ai_simclr"] and args.no_synthetic and args.calibration
    assert args.episodes == 40 and args.probe_epochs == 3 and args.dataset_seconds == 1.5 and args.queries == 5
    assert args.evaluations == ["fewshot"] and (args.train_episodes, args.inner_steps) == (200, 60)
    assert args.dataset == [f"{t}=folder:{out}/corpus/tasks/{t}" for t in ("pitch", "instrument", "speaker", "word")]
    assert args.overrides == [f"data.dataset=files:{out}/corpus/pool", f"data.monitor=folder:{out}/corpus/monitor",
                              "train.steps=200"]
    assert args.config == "recipes/real_audio.yaml"
    done, calls = run_recipe(tmp_path, {"OUT": str(out), "CORPUS": str(tmp_path / "shared")}, True, "x.y=1")
    assert done.returncode == 0 and calls[2] == ["-m", "aiaudio.corpus", str(tmp_path / "shared")]
    assert f"data.dataset=files:{tmp_path}/shared/pool" in calls[3] and calls[3][-1] == "x.y=1"


def test_recipe_config_is_valid_and_within_the_cpu_budget():
    config = load_config(str(REPO / "recipes" / "real_audio.yaml"))
    assert config.encoder.name == "hyper_resnet18" and config.train.batch_size == 64
    assert config.encoder.kwargs == {"width": 32, "bands": 2, "norm": "descriptor"}
    assert config.train.steps == 6000  # about 30 minutes per model on 2 cores: inside the 60-minute budget
    assert config.data["seconds"] == 1.0 and config.data["dataset"].startswith("files:")


@pytest.mark.parametrize("model", ["ai_simclr", "simclr"])
def test_both_recipe_models_build_from_the_recipe_config(model):
    """The plain SimCLR baseline shares encoder.kwargs with Hyper-ResNet (norm included)."""
    config = load_config(str(REPO / "recipes" / "real_audio.yaml"), baseline_overrides(model))
    encoder = build_encoder(config.encoder.name or "hyper_resnet18", audio_space(), in_chans=1, **config.encoder.kwargs)
    norms = [type(m) for m in encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    expected = DescriptorBatchNorm2d if model == "ai_simclr" else nn.BatchNorm2d
    assert norms and set(norms) == {expected} and encoder.config["norm"] == "descriptor"


@pytest.mark.parametrize("env, message", [
    ({"INSTALL": "0"}, "missing Debian packages; install them with: sudo apt-get install -y --no-install-recommends "
                       "fluidsynth timgm6mb-soundfont flite festival colobot-common-sounds"),
])
def test_recipe_names_missing_packages(tmp_path, env, message):
    done, calls = run_recipe(tmp_path, env, False)
    assert done.returncode == 2 and message in done.stderr and calls == []


@pytest.mark.parametrize("env, message", [
    ({"STEPS": "many"}, "STEPS must be a positive integer"),
    ({"EPISODES": "0"}, "EPISODES must be a positive integer"),
    ({"CONFIG": "/no/such.yaml"}, "CONFIG=/no/such.yaml: no such file"),
])
def test_recipe_refuses_a_bad_environment(tmp_path, env, message):
    done, calls = run_recipe(tmp_path, env, True)
    assert done.returncode == 2 and message in done.stderr and calls == []
