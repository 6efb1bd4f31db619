"""The vision quickstart end to end at a tiny size: both models pre-trained on synthetic images,
every chosen factor task evaluated, files written, finished runs reused, bad input refused."""
import csv
import json

import pytest
import torch

from aivision.cli import main as aivision_main
from aivision.quickstart import EXPECTED, MODELS, EvalSettings, run_quickstart

TINY = ["train.steps=3", "optim.warmup_steps=1", "train.batch_size=8", "train.checkpoint_every=2",
        "encoder.kwargs.width=4", "data.dataset=synthetic?n_images=24&size=32&seed=0", "monitor.every=0",
        "data.monitor=null"]
SETTINGS = EvalSettings(images=60, shots=1, queries=2, episodes=3, train_episodes=2, inner_steps=2, max_ways=3)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("quickstart_vision")
    return out, run_quickstart(out, TINY, SETTINGS, tasks=["colour", "orientation"], progress=False)


def test_runs_results_and_figures_are_written(finished):
    out, results = finished
    for label in MODELS:
        assert (out / label / "encoder.pt").is_file() and (out / label / "metrics.csv").is_file()
    for name in ("results.json", "results.txt", "fewshot.png", "descriptors.png"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "results.json").read_text())
    assert [row["task"] for row in saved["rows"]] == ["colour", "orientation"]
    for row in saved["rows"]:
        assert row["ways"] == 3 and row["descriptor_names"] == ["spatial", "appearance"]
        assert row["sensitive_to"] == list(EXPECTED[row["task"]])
        for key in ("simclr", "ai_ones", "ai_learned"):
            assert 0.0 <= row[key] <= 1.0 and row[f"{key}_ci95"] >= 0.0
        assert len(row["descriptor"]) == 2 and all(0.0 <= v <= 1.0 for v in row["descriptor"])
    with open(out / "simclr" / "metrics.csv") as handle:
        assert {r["descriptor"] for r in csv.DictReader(handle)} == {"11"}


def test_second_call_reuses_the_runs_and_repeats_the_numbers(finished, capsys):
    out, results = finished
    again = run_quickstart(out, TINY, SETTINGS, tasks=["colour", "orientation"], progress=False)
    printed = capsys.readouterr().out
    assert printed.count("reusing the finished run") == 2 and "AI-SimCLR learned i" in printed
    assert again["rows"] == results["rows"]


def test_bad_task_and_bad_override_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="'texture'"):
        run_quickstart(tmp_path, TINY, SETTINGS, tasks=["texture"], progress=False)
    assert aivision_main(["quickstart", "--out", str(tmp_path), "--no-progress", "train.stepz=3"]) == 2
    assert "stepz" in capsys.readouterr().err
