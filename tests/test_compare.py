"""``aiaudio compare``: the rank / average / table logic on hand-made scores, and a real run of
three models (AI-SimCLR, SimCLR, LooC) for 2 steps each on two synthetic tasks and a small
folder dataset, with the extra rows (AI-SimCLR read out with all ones, the calibration
baselines), checking every file it writes, the reuse of finished runs and its errors."""
import json
import math
import os
import re
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from aiaudio.cli import build_parser, main as aiaudio_main
from aiaudio.compare import CALIBRATION, run_compare
from aiaudio.compare_report import descriptor_rows, descriptor_table, markdown_table, summarise, task_ranks
from aiaudio.compare_tasks import CompareSettings, probe_ci95
from aiaudio.data import write_audio
from core.config import ConfigError
from tests.engine_helpers import TINY

pytestmark = pytest.mark.usefixtures("one_thread")

MODELS = ["ai_simclr", "simclr", "looc"]
ROWS = ["ai_simclr", "ai_simclr_ones", "simclr", "looc", "logmel_stats", "untrained"]
LABELS = ["AI-SimCLR", "AI-SimCLR i=1", "SimCLR", "LooC", "log-mel stats", "untrained"]
OVERRIDES = [*TINY, "train.steps=2", "optim.warmup_steps=1", "monitor.every=0", "data.monitor=null"]
FLAGS = ["--episodes", "3", "--train-episodes", "2", "--inner-steps", "2", "--clips", "24", "--shots", "1",
         "--queries", "2", "--max-ways", "3", "--probe-epochs", "2", "--dataset-seconds", "0.5", "--no-progress"]
SETTINGS = CompareSettings(clips=24, shots=1, queries=2, episodes=3, train_episodes=2, inner_steps=2, max_ways=3,
                           probe_epochs=2, dataset_seconds=0.5)
CELL = r"\d+\.\d ± \d+\.\d"
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "compare_audio.sh"


def scores(table: dict) -> dict:
    """{model: {task: accuracy}} -> the nested score records the report functions take."""
    return {m: {t: {"accuracy": a, "ci95": 0.01} for t, a in row.items()} for m, row in table.items()}


# ----------------------------------------------------------------- ranks, averages, tables
def test_task_ranks_give_tied_models_the_mean_of_their_places():
    assert task_ranks({"a": 0.9, "b": 0.5, "c": 0.7}) == {"a": 1.0, "c": 2.0, "b": 3.0}
    assert task_ranks({"a": 0.8, "b": 0.8, "c": 0.1, "d": 0.9}) == {"d": 1.0, "a": 2.5, "b": 2.5, "c": 4.0}
    assert task_ranks({"a": 0.5, "b": math.nan}) == {"a": 1.0}


def test_summarise_averages_accuracy_and_rank_over_tasks():
    s = summarise(scores({"a": {"x": 0.9, "y": 0.2}, "b": {"x": 0.5, "y": 0.6}, "c": {"x": 0.5, "y": 0.1}}),
                  ["a", "b", "c"], ["x", "y"])
    assert s["a"]["avg"] == pytest.approx(0.55) and s["a"]["rank"] == pytest.approx((1 + 2) / 2)
    assert s["b"]["avg"] == pytest.approx(0.55) and s["b"]["rank"] == pytest.approx((2.5 + 1) / 2)
    assert s["c"]["rank"] == pytest.approx((2.5 + 3) / 2)


def test_summarise_skips_a_missing_task():
    s = summarise(scores({"a": {"x": 0.9}, "b": {"x": 0.5, "y": 0.6}}), ["a", "b"], ["x", "y"])
    assert s["a"] == {"avg": pytest.approx(0.9), "rank": 1.0}
    assert s["b"] == {"avg": pytest.approx(0.55), "rank": pytest.approx(1.5)}


def test_markdown_table_cells_avg_rank_and_bold_best_with_ties():
    data = scores({"a": {"x": 0.75, "y": 0.25}, "b": {"x": 0.5, "y": 0.5}, "c": {"x": 0.5, "y": 0.5}})
    data["a"]["x"]["ci95"] = 0.0123
    lines = markdown_table(data, ["a", "b", "c"], ["x", "y"], labels={"a": "Model A"}).splitlines()
    assert lines[0] == "| model | x | y | avg | rank |"
    assert lines[1] == "|---|---:|---:|---:|---:|"
    # x: a first, b and c share places 2-3 (2.5); y: b and c share 1-2 (1.5), a third: every
    # mean rank is 2.00 and every average 50.0, so all of them are bold; y's best is a tie.
    assert lines[2] == "| Model A | **75.0 ± 1.2** | 25.0 ± 1.0 | **50.0** | **2.00** |"
    assert lines[3] == "| b | 50.0 ± 1.0 | **50.0 ± 1.0** | **50.0** | **2.00** |"
    assert lines[4] == "| c | 50.0 ± 1.0 | **50.0 ± 1.0** | **50.0** | **2.00** |"


def test_markdown_table_bolds_only_the_best_and_marks_missing_cells():
    data = scores({"a": {"x": 0.9, "y": 0.3}, "b": {"x": 0.4}, "c": {"x": 0.4, "y": 0.35}})
    lines = markdown_table(data, ["a", "b", "c"], ["x", "y"]).splitlines()
    cells = [line.strip("| ").split(" | ") for line in lines[2:]]
    assert cells[0] == ["a", "**90.0 ± 1.0**", "30.0 ± 1.0", "**60.0**", "**1.50**"]
    assert cells[1] == ["b", "40.0 ± 1.0", "-", "40.0", "2.50"]
    assert cells[2] == ["c", "40.0 ± 1.0", "**35.0 ± 1.0**", "37.5", "1.75"]


def test_descriptor_table_has_one_column_per_augmentation_and_only_learners():
    results = {"fewshot": {"ai": {"x": {"descriptor": [0.1, 0.9]}}, "base": {"x": {"descriptor": None}}},
               "probe": {"ai": {"x": {"descriptor": [0.5, 0.25]}}, "base": {"x": {"descriptor": None}}}}
    rows = descriptor_rows(results, ["ai"], ["x"])
    assert rows == [("ai", "fewshot", "x", [0.1, 0.9]), ("ai", "probe", "x", [0.5, 0.25])]
    table = descriptor_table(rows, ["pitch_shift", "noise"]).splitlines()
    assert table[0] == "| model | evaluation | task | pitch_shift | noise |"
    assert table[2] == "| ai | fewshot | x | 0.10 | 0.90 |"
    with pytest.raises(ValueError, match="expected 3"):
        descriptor_table(rows, ["a", "b", "c"])


def test_probe_interval_is_the_normal_approximation():
    assert probe_ci95(0.8, 100) == pytest.approx(1.96 * math.sqrt(0.8 * 0.2 / 100))
    assert probe_ci95(1.0, 50) == 0.0


def test_settings_are_validated_naming_the_key():
    with pytest.raises(ConfigError, match="episodes"):
        CompareSettings(episodes=0)
    with pytest.raises(ConfigError, match="max_ways"):
        CompareSettings(max_ways=1)
    with pytest.raises(ConfigError, match="test_fraction"):
        CompareSettings(val_fraction=0.5, test_fraction=0.5)


# ----------------------------------------------------------------- a real run
def write_folder_dataset(root, classes: int = 10, clips: int = 3, rate: int = 16000):
    """``classes`` folders of ``clips`` half-second tones each (one frequency per class)."""
    t = np.arange(rate // 2) / rate
    rng = np.random.default_rng(0)
    for c in range(classes):
        for k in range(clips):
            wave = 0.3 * np.sin(2 * np.pi * (200 + 150 * c) * t) + 0.01 * rng.standard_normal(t.size)
            write_audio(root / f"class{c:02d}" / f"{k}.wav", wave.astype(np.float32), rate)
    return root


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    folder = write_folder_dataset(tmp_path_factory.mktemp("folder"))
    rc = aiaudio_main(["compare", "--out", str(out), "--models", *MODELS, "--tasks", "pitch", "onset",
                       "--dataset", f"folder:{folder}", *FLAGS, *OVERRIDES])
    assert rc == 0
    return out, json.loads((out / "results.json").read_text())


def test_every_run_and_report_is_written(finished):
    out, _ = finished
    for model in MODELS:
        assert (out / model / "encoder.pt").is_file() and (out / model / "config.yaml").is_file()
    for name in ("results.json", "comparison.md", "comparison.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_hold_every_model_task_and_evaluation(finished):
    _, report = finished
    tasks = [t["name"] for t in report["tasks"]]
    assert tasks == ["pitch", "onset", "folder"]
    assert [t["kind"] for t in report["tasks"]] == ["synthetic", "synthetic", "dataset"]
    assert report["tasks"][2]["ways"] == 2 and "test classes" in report["tasks"][2]["note"]
    assert list(report["models"]) == ROWS
    assert [report["models"][m]["label"] for m in ROWS] == LABELS
    assert [report["models"][m]["kind"] for m in ROWS] == ["pretrained", "readout", "pretrained", "pretrained",
                                                          "calibration", "calibration"]
    assert report["models"]["ai_simclr"]["learns_descriptor"] is True
    for model in ("simclr", "ai_simclr_ones", "logmel_stats", "untrained"):
        record = report["models"][model]
        assert record["fixed_descriptor"] == [1.0] * 7 and not record["learns_descriptor"]
    assert {report["models"][m]["steps"] for m in MODELS} == {2}
    assert report["models"]["ai_simclr_ones"]["encoder"] == report["models"]["ai_simclr"]["encoder"]
    assert {report["models"][m]["steps"] for m in CALIBRATION} == {0}
    assert set(report["summary"]["fewshot"]) == set(ROWS)
    for evaluation in ("fewshot", "probe"):
        for model in ROWS:
            for task in tasks:
                entry = report["results"][evaluation][model][task]
                assert 0.0 <= entry["accuracy"] <= 1.0 and entry["ci95"] >= 0.0
                learned = entry["descriptor"]
                if model == "ai_simclr":
                    assert len(learned) == 7 and all(0.0 <= v <= 1.0 for v in learned)
                else:
                    assert learned is None
    assert report["results"]["probe"]["simclr"]["folder"]["test_clips"] == 10  # one test clip per class
    assert report["results"]["fewshot"]["looc"]["pitch"]["descriptor_mode"] == "fixed"
    assert report["results"]["fewshot"]["ai_simclr"]["pitch"]["descriptor_mode"] == "dataset"
    assert report["results"]["fewshot"]["ai_simclr_ones"]["pitch"]["descriptor_mode"] == "fixed"
    assert report["results"]["probe"]["untrained"]["folder"]["descriptor_mode"] == "fixed"


def test_calibration_rows_are_rebuilt_by_their_encoder_value(finished):
    """Each calibration row records the ``--encoder`` value that gives the same encoder and
    front end in probe / fewshot / measure: the first model's front end, the base config's
    architecture (hyper_resnet18, width 4) seeded by the config seed."""
    from aiaudio.downstream_setup import read_encoder
    from aiaudio.quickstart import load_model
    from core.encoders.calibration import build_untrained

    out, report = finished
    models = report["models"]
    first = models["ai_simclr"]["encoder"]
    _, frontend = load_model(first)
    stats, extra = read_encoder(models["logmel_stats"]["encoder"], "cpu")
    assert models["logmel_stats"]["encoder"] == f"logmel-stats?frontend={first}"
    assert stats.config == {"in_chans": 1, "bands": 32} and extra["frontend"] == frontend.to_dict()
    value = models["untrained"]["encoder"]
    assert value == f"untrained:hyper_resnet18?in_chans=1&width=4&seed=0&frontend={first}"
    untrained, _ = read_encoder(value, "cpu")
    expected = build_untrained("hyper_resnet18", untrained.space, 0, in_chans=1, width=4).state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in untrained.state_dict().items())


def test_markdown_has_a_row_per_model_a_column_per_task_and_descriptors_only_for_ai_simclr(finished):
    out, report = finished
    text = (out / "comparison.md").read_text()
    sections = text.split("\n## ")
    for title in ("Few-shot", "Linear probe"):
        section = next(s for s in sections if s.startswith(title))
        rows = [line for line in section.splitlines() if line.startswith("| ")]
        assert rows[0] == "| model | pitch | onset | folder | avg | rank |"
        assert [r.split(" | ")[0].lstrip("| ") for r in rows[1:]] == LABELS
        for row in rows[1:]:
            cells = row.strip("| ").split(" | ")
            assert all(re.fullmatch(rf"(\*\*)?{CELL}(\*\*)?", c) for c in cells[1:4]), row
            assert re.fullmatch(r"(\*\*)?\d+\.\d(\*\*)?", cells[4]) and re.fullmatch(r"(\*\*)?\d\.\d\d(\*\*)?", cells[5])
        assert "**" in section  # a best cell per column
    descriptors = next(s for s in sections if s.startswith("Learned descriptors")).splitlines()
    table = [line for line in descriptors if line.startswith("| ")]
    assert table[0] == "| model | evaluation | task | " + " | ".join(report["descriptor_names"]) + " |"
    assert len(table) == 1 + 2 * 3 and all(line.startswith("| ai_simclr |") for line in table[1:])  # 2 evaluations x 3 tasks
    models = next(s for s in sections if s.startswith("Models")).splitlines()
    assert any(line.startswith("- `logmel_stats` (log-mel stats): calibration, not pre-trained") for line in models)
    assert any(line.startswith("- `ai_simclr_ones` (AI-SimCLR i=1)") for line in models)


def test_finished_runs_are_reused(finished, capsys):
    out, _ = finished
    stamps = {m: (out / m / "encoder.pt").stat().st_mtime_ns for m in MODELS}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = run_compare(out, MODELS, overrides=OVERRIDES, settings=SETTINGS, tasks=["onset"], progress=False,
                             calibration=False)
    assert not [w for w in caught if "differs" in str(w.message)]
    assert list(report["models"]) == ROWS[:4] and list(report["results"]["probe"]) == ROWS[:4]  # no calibration rows
    assert capsys.readouterr().out.count("reusing the finished run") == 3
    assert {m: (out / m / "encoder.pt").stat().st_mtime_ns for m in MODELS} == stamps
    assert all(report["models"][m]["reused"] for m in MODELS)
    with pytest.warns(UserWarning, match=r"differs from the one asked for in \['train.steps'\]"):
        run_compare(out, ["simclr"], overrides=[*OVERRIDES, "train.steps=3"], settings=SETTINGS, tasks=["onset"],
                    progress=False)


def test_evaluations_can_be_chosen(tmp_path, capsys):
    folder = write_folder_dataset(tmp_path / "f", classes=10, clips=3)
    out = tmp_path / "out"
    rc = aiaudio_main(["compare", "--out", str(out), "--models", "ai_simclr", "--no-synthetic", "--no-calibration",
                       "--dataset", f"tones=folder:{folder}", "--evaluations", "fewshot", *FLAGS, *OVERRIDES])
    assert rc == 0
    report = json.loads((out / "results.json").read_text())
    assert list(report["results"]) == ["fewshot"] and report["settings"]["evaluations"] == ["fewshot"]
    assert set(report["results"]["fewshot"]) == {"ai_simclr", "ai_simclr_ones"}
    assert set(report["results"]["fewshot"]["ai_simclr"]) == {"tones"}
    text = (out / "comparison.md").read_text()
    assert "## Few-shot" in text and "## Linear probe" not in text
    assert "tones" in capsys.readouterr().out
    with pytest.raises(ValueError, match="evaluations"):
        CompareSettings(evaluations=[])


def test_dataset_tasks_are_named_by_dataset_or_by_name_given(tmp_path):
    from aiaudio.compare import open_datasets

    folder = write_folder_dataset(tmp_path / "f", classes=3, clips=1)
    tasks = open_datasets([f"tones=folder:{folder}", f"folder:{folder}", f"folder:{folder}?extensions=wav"],
                          {}, 16000, None, 0)
    assert [t.name for t in tasks] == ["tones", "folder", "folder_2"]
    assert tasks[0].spec == f"folder:{folder}" and tasks[0].data.num_classes == 3
    with pytest.raises(ValueError, match="task name 'tones' given twice"):
        open_datasets([f"tones=folder:{folder}", f"tones=folder:{folder}"], {}, 16000, None, 0)


# ----------------------------------------------------------------- errors, before any training
@pytest.mark.parametrize("args, message", [
    (["--models", "simclr", "moco"], "unknown model 'moco'; known: ai_simclr, simclr"),
    (["--models", "simclr", "simclr"], "'simclr' given twice"),
    (["--dataset", "esc51:/data/ESC-50"], "esc51"),
    (["--dataset", "esc50:/no/such/ESC-50"], "/no/such/ESC-50"),
    (["--dataset", "synthetic?label=pitch"], "built in"),
    (["--split-file", "esc50=/x.pkl"], "no --dataset named 'esc50'"),
    (["--split-file", "esc50"], "expected NAME=PATH"),
    (["--dataset", "a=esc51:/data/ESC-50"], "esc51"),
    (["--tasks", "pitch", "tempo"], "unknown task 'tempo'"),
    (["--no-synthetic"], "nothing to evaluate"),
    (["--episodes", "0"], "episodes"),
    (["--config", "/no/such/base.yaml"], "/no/such/base.yaml"),
    (["train.stepz=3"], "stepz"),
])
def test_bad_arguments_fail_with_a_clear_error_before_training(tmp_path, capsys, args, message):
    rc = aiaudio_main(["compare", "--out", str(tmp_path), "--no-progress", *args, *OVERRIDES])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("aiaudio compare: error:") and message in err
    assert not list(tmp_path.glob("*/encoder.pt")) and not list(tmp_path.glob("*/checkpoints"))


def test_an_early_stop_exits_1_and_the_next_call_resumes(tmp_path, capsys):
    args = ["compare", "--out", str(tmp_path), "--models", "simclr", "--tasks", "onset", *FLAGS, *OVERRIDES]
    assert aiaudio_main([*args, "train.stop_at=1", "train.checkpoint_every=1"]) == 1
    assert "[simclr] the run stopped early (stop_at); rerun to resume it" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()
    with pytest.warns(UserWarning, match="differs"):
        assert aiaudio_main([*args, "train.checkpoint_every=1"]) == 0
    assert "[simclr] resuming" in capsys.readouterr().out
    assert json.loads((tmp_path / "results.json").read_text())["models"]["simclr"]["steps"] == 2


# ----------------------------------------------------------------- the recipe
def run_recipe(tmp_path, env: dict, *args: str):
    """Run recipes/compare_audio.sh with a stand-in interpreter that records its arguments."""
    record = tmp_path / "args.txt"
    fake = tmp_path / "fake_python"
    fake.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "{record}"\n')
    fake.chmod(0o755)
    base = {k: v for k, v in os.environ.items()
            if not re.match(r"^(ESC50|NSYNTH|VOXCELEB|FSDKAGGLE)_|^(OUT|CONFIG|MODELS|STEPS|BATCH|SEED|EPISODES|"
                            r"SYNTHETIC|DEVICE|AUDIO_CACHE)$", k)}
    done = subprocess.run(["bash", str(RECIPE), *args], env={**base, "PYTHON": str(fake), **env},
                          capture_output=True, text=True, timeout=60)
    return done, record.read_text().splitlines() if record.exists() else None


def test_recipe_passes_models_budget_and_datasets_to_aiaudio_compare(tmp_path):
    esc = tmp_path / "ESC-50"
    esc.mkdir()
    split = tmp_path / "esc50_split.pkl"
    split.write_bytes(b"x")
    done, called = run_recipe(tmp_path, {"MODELS": "ai_simclr,simclr looc", "STEPS": "150", "BATCH": "32",
                                         "EPISODES": "50", "ESC50_ROOT": str(esc), "ESC50_SPLIT": str(split),
                                         "OUT": str(tmp_path / "out")}, "--probe-epochs", "3")
    assert done.returncode == 0, done.stderr
    assert called[:3] == ["-m", "aiaudio.cli", "compare"]
    args = build_parser().parse_args(called[2:])
    assert args.models == ["ai_simclr", "simclr", "looc"] and args.episodes == 50 and args.probe_epochs == 3
    assert args.dataset == [f"esc50:{esc}"] and args.split_file == [f"esc50={split}"]
    assert args.overrides == ["train.steps=150", "train.batch_size=32"]
    assert args.out == str(tmp_path / "out") and args.config == "aiaudio/configs/quickstart.yaml"
    assert not args.no_synthetic and args.calibration
    assert build_parser().parse_args(["compare", "--no-calibration"]).calibration is False


@pytest.mark.parametrize("env, message", [
    ({"SYNTHETIC": "0"}, "no dataset path set"),
    ({"NSYNTH_ROOT": "/no/such/nsynth"}, "NSYNTH_ROOT=/no/such/nsynth: no such folder"),
    ({"STEPS": "many"}, "STEPS must be a non-negative integer"),
    ({"DEVICE": "tpu"}, "DEVICE must be auto, cpu or cuda"),
])
def test_recipe_refuses_a_bad_environment(tmp_path, env, message):
    done, called = run_recipe(tmp_path, env)
    assert done.returncode == 2 and message in done.stderr and called is None
