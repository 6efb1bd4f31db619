"""The quickstart job end to end at a tiny size: both models pre-trained, evaluated, written,
a finished run reused on the second call, and bad arguments refused."""
import json

import pytest
import torch

from aiaudio.cli import main as aiaudio_main
from aiaudio.quickstart import MODELS, EvalSettings, run_quickstart

TINY = ["train.steps=3", "optim.warmup_steps=1", "train.batch_size=8", "train.checkpoint_every=2", "encoder.kwargs.width=4",
        "data.dataset=synthetic?n_clips=24&seconds=2&seed=0", "data.fit_clips=8", "monitor.every=0",
        "data.monitor=null"]
SETTINGS = EvalSettings(clips=48, shots=1, queries=2, episodes=3, train_episodes=2, inner_steps=2, max_ways=3)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("quickstart")
    results = run_quickstart(out, TINY, SETTINGS, tasks=["pitch", "onset"], progress=False)
    return out, results


def test_writes_both_runs_results_and_plots(finished):
    out, results = finished
    for label in MODELS:
        run_dir = out / label
        assert (run_dir / "encoder.pt").is_file() and (run_dir / "metrics.csv").is_file()
        assert (run_dir / "checkpoints" / "last.pt").is_file()
    for name in ("results.json", "results.txt", "fewshot.png", "descriptors.png"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "results.json").read_text())
    assert [row["task"] for row in saved["rows"]] == ["pitch", "onset"]
    assert saved["rows"] == json.loads(json.dumps(results["rows"]))


def test_rows_hold_accuracies_and_a_descriptor_in_range(finished):
    _, results = finished
    for row in results["rows"]:
        assert row["ways"] == 3
        for key in ("simclr", "ai_ones", "ai_learned"):
            assert 0.0 <= row[key] <= 1.0 and row[f"{key}_ci95"] >= 0.0
        assert len(row["descriptor"]) == len(row["descriptor_names"]) == 7
        assert all(0.0 <= v <= 1.0 for v in row["descriptor"])
    pitch = results["rows"][0]
    assert "pitch_shift" in pitch["sensitive_to"]


def test_the_baseline_ran_with_all_ones_and_ai_simclr_sampled(finished):
    out, _ = finished
    import csv

    def descriptors(label):
        with open(out / label / "metrics.csv") as handle:
            return {row["descriptor"] for row in csv.DictReader(handle)}

    assert descriptors("simclr") == {"1111111"}
    assert descriptors("ai_simclr") - {"1111111"}


def test_table_printed_and_finished_runs_reused(finished, capsys):
    out, results = finished
    again = run_quickstart(out, TINY, SETTINGS, tasks=["pitch", "onset"], progress=False)
    printed = capsys.readouterr().out
    assert printed.count("reusing the finished run") == 2
    assert "AI-SimCLR learned i" in printed and "pitch" in printed and "onset" in printed
    assert again["rows"] == results["rows"]  # same encoders, same seeded episodes


def test_cli_refuses_unknown_override_key(tmp_path, capsys):
    rc = aiaudio_main(["quickstart", "--out", str(tmp_path), "--no-progress", "train.stepz=3"])
    assert rc == 2
    assert "stepz" in capsys.readouterr().err
    assert not (tmp_path / "simclr" / "encoder.pt").exists()


def test_unknown_task_is_an_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match="'tempo'"):
        run_quickstart(tmp_path, TINY, SETTINGS, tasks=["tempo"], progress=False)


def test_an_interrupted_model_is_resumed_on_the_next_call(tmp_path, capsys):
    with pytest.raises(RuntimeError, match=r"\[simclr\] the run stopped early \(stop_at\)"):
        run_quickstart(tmp_path, [*TINY, "train.stop_at=2"], SETTINGS, tasks=["onset"], progress=False)
    assert (tmp_path / "simclr" / "checkpoints" / "last.pt").is_file()
    assert not (tmp_path / "simclr" / "encoder.pt").exists()
    capsys.readouterr()
    with pytest.warns(UserWarning, match=r"differs in \['train.stop_at'\]"):
        run_quickstart(tmp_path, TINY, SETTINGS, tasks=["onset"], progress=False)
    assert "[simclr] resuming" in capsys.readouterr().out
    ckpt = torch.load(tmp_path / "simclr" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 3
    with open(tmp_path / "simclr" / "metrics.csv") as handle:
        steps = [int(line.split(",")[0]) for line in handle.readlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 3


def test_cli_reports_an_early_stop_and_exits_1(tmp_path, capsys):
    args = ["quickstart", "--out", str(tmp_path), "--no-progress", *TINY, "train.stop_at=2", "--tasks", "onset"]
    assert aiaudio_main(args) == 1
    assert "[simclr] the run stopped early (stop_at); rerun to resume it" in capsys.readouterr().err
