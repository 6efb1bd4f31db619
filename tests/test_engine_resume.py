"""Exact resume after SIGKILL, SIGTERM and stop_at; checkpoints interrupted mid-write."""
import csv
import os
import signal
import subprocess
import sys

import pytest
import torch

from aiaudio.modality import make_audio_modality
from core.engine import pretrain
from core.engine.checkpoint import load_checkpoint, save_checkpoint
from tests.engine_helpers import ROOT, main as helper_main, run_helper, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread per module

# 6 steps over 32 clips in batches of 8: the kill at step 3 falls mid-epoch and the resumed
# run crosses into epoch 1. Deterministic algorithms make the comparison bitwise.
RESUME = ["train.steps=6", "train.checkpoint_every=3", "train.deterministic=true"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run: history and final checkpoint."""
    config = tiny_config(tmp_path_factory.mktemp("reference") / "run", *RESUME)
    result = pretrain(config, make_audio_modality(config), progress=False)
    return result.history, torch.load(result.checkpoint, weights_only=True), result.run_dir


def assert_same_state(ckpt, ref):
    assert ckpt["step"] == ref["step"] and ckpt["epoch"] == ref["epoch"] == 1
    assert ckpt["batch_in_epoch"] == ref["batch_in_epoch"] == 2
    assert ckpt["model"].keys() == ref["model"].keys()
    for key, value in ref["model"].items():
        assert torch.equal(ckpt["model"][key], value), key
    for pid, state in ref["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(ckpt["optimizer"]["state"][pid][name], value), (pid, name)
    assert ckpt["scheduler"]["last_epoch"] == ref["scheduler"]["last_epoch"]


def csv_steps(run_dir):
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [int(r["step"]) for r in csv.DictReader(handle)]


def test_sigkill_after_checkpoint_then_resume_equals_uninterrupted(reference, tmp_path):
    ref_history, ref_ckpt, ref_dir = reference
    run_dir = tmp_path / "killed"
    proc = run_helper("kill", str(run_dir), "3", *RESUME)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.pt", "step_0000003.pt"]
    assert csv_steps(run_dir) == [1, 2, 3]
    config = tiny_config(run_dir, *RESUME)
    result = pretrain(config, make_audio_modality(config), resume=True, progress=False)
    assert [h["step"] for h in result.history] == [4, 5, 6]
    assert result.history == ref_history[3:]  # same descriptors, learning rates and losses
    assert_same_state(torch.load(result.checkpoint, weights_only=True), ref_ckpt)
    assert csv_steps(run_dir) == [1, 2, 3, 4, 5, 6]  # appended, no duplicates
    with open(run_dir / "metrics.csv") as a, open(ref_dir / "metrics.csv") as b:
        strip = lambda rows: [r[:2] + r[3:4] + r[5:] for r in csv.reader(rows)]  # drop timing columns
        assert strip(a) == strip(b)


def test_sigterm_checkpoints_exits_cleanly_and_resume_continues(reference, tmp_path, capsys):
    _, ref_ckpt, _ = reference
    run_dir = tmp_path / "term"
    previous = signal.getsignal(signal.SIGTERM)
    # runs `pretrain` through the CLI in this process and sends SIGTERM to it during step 2
    assert helper_main(["sigterm", str(run_dir), "2", *RESUME]) == 128 + signal.SIGTERM
    assert "stopped by SIGTERM after step 2" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == previous  # handler removed again
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.pt", "step_0000002.pt"]
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 2
    assert not (run_dir / "encoder.pt").exists()

    config = tiny_config(run_dir, *RESUME, "train.stop_at=4")
    with pytest.warns(UserWarning, match=r"differs in \['train\.stop_at'\]"):
        first = pretrain(config, make_audio_modality(config), resume=True, progress=False)
    assert (first.stopped, first.steps, first.encoder_path) == ("stop_at", 4, None)
    second = pretrain(config, make_audio_modality(config), resume=True, progress=False)  # stop_at now passed
    assert (second.stopped, second.steps) == (None, 6) and second.encoder_path.is_file()
    assert [h["step"] for h in second.history] == [5, 6]
    assert_same_state(torch.load(second.checkpoint, weights_only=True), ref_ckpt)
    assert csv_steps(run_dir) == [1, 2, 3, 4, 5, 6]


class Explodes:
    """Pickling this raises, like a full disk in the middle of torch.save."""

    def __reduce__(self):
        raise RuntimeError("disk went away")


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path):
    ckpt_dir = tmp_path / "checkpoints"
    save_checkpoint({"step": 1, "w": torch.ones(3)}, ckpt_dir, keep=2)
    with pytest.raises(RuntimeError, match="disk went away"):
        save_checkpoint({"step": 2, "w": torch.zeros(3), "bad": Explodes()}, ckpt_dir, keep=2)
    assert sorted(os.listdir(ckpt_dir)) == ["last.pt", "step_0000001.pt"]
    assert torch.load(ckpt_dir / "last.pt", weights_only=True)["step"] == 1


KILL_INSIDE_SAVE = """
import os, signal, sys, torch
from pathlib import Path
from core.engine.checkpoint import save_checkpoint

class Die:
    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGKILL)

out = Path(sys.argv[1])
save_checkpoint({"step": 1, "w": torch.ones(10000)}, out, keep=2)
save_checkpoint({"step": 2, "w": torch.zeros(10000), "z": Die()}, out, keep=2)
"""


def test_process_killed_inside_torch_save_leaves_no_half_file(tmp_path):
    ckpt_dir = tmp_path / "checkpoints"
    proc = subprocess.run([sys.executable, "-c", KILL_INSIDE_SAVE, str(ckpt_dir)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    names = sorted(os.listdir(ckpt_dir))
    assert [n for n in names if not n.startswith(".")] == ["last.pt", "step_0000001.pt"]
    assert all(n.endswith(".tmp") for n in names if n.startswith("."))  # only an orphaned temp file
    assert torch.load(ckpt_dir / "last.pt", weights_only=True)["step"] == 1
    (ckpt_dir / "last.pt").write_bytes((ckpt_dir / "last.pt").read_bytes()[:100])
    with pytest.raises(ValueError, match=r"last\.pt is corrupt"):
        load_checkpoint(ckpt_dir / "last.pt")


def test_moco_v2_queues_survive_a_stop_and_resume(tmp_path):
    extra = ["method.name=moco_v2", "method.queue_size=32", "train.steps=4", "train.deterministic=true"]
    full = tiny_config(tmp_path / "full", *extra)
    reference = pretrain(full, make_audio_modality(full), progress=False)
    part = tiny_config(tmp_path / "part", *extra, "train.stop_at=2")
    assert pretrain(part, make_audio_modality(part), progress=False).stopped == "stop_at"
    queues = load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt")["method_extra"]["queues"]
    assert len(queues["queues"]) >= 1  # the per-descriptor queues filled so far are in the checkpoint
    resumed = pretrain(part, make_audio_modality(part), resume=True, progress=False)
    assert resumed.history == reference.history[2:]
    a = torch.load(reference.checkpoint, weights_only=True)
    b = torch.load(resumed.checkpoint, weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
