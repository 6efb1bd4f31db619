"""Run-directory guards and numerical health, piece by piece: the lock, stale temporary files,
which checkpoint a resume takes, the checkpoint writer's refusals (non-finite state, full
disk) and the stop on non-finite gradients."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import torch
from torch import nn

import core.fileio
from aiaudio.modality import make_audio_modality
from core.encoders.serialise import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from core.engine import pretrain
from core.engine.checkpoint import REQUIRED_KEYS, NonFiniteStateError, save_checkpoint, verify_checkpoint
from core.engine.health import Health, TrainingDivergedError, global_norm
from core.engine.resume import NothingToResume, choose_resume
from core.engine.rundir import RunDirBusy, RunLock, remove_stale_temps
from core.engine.runs import train_or_reuse
from core.errors import DiskFullError
from core.fileio import atomic_save
from tests.engine_helpers import ROOT, faulty_open_temp, tiny_config, tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread per module


def payload(step: int, weight: float = 1.0) -> dict:
    """A minimal checkpoint dict with every required key."""
    data = {key: {} for key in REQUIRED_KEYS}
    data.update(format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION, step=step, epoch=0, batch_in_epoch=step,
                model={"w": torch.full((4,), weight)})
    return data


def test_lock_is_exclusive_names_the_holder_and_is_released(tmp_path):
    held = RunLock.acquire(tmp_path)
    with pytest.raises(RunDirBusy, match=rf"run directory {tmp_path} is in use: process {os.getpid()} on "):
        RunLock.acquire(tmp_path, wait_s=0)
    held.release()
    RunLock.acquire(tmp_path).release()
    assert (tmp_path / "run.lock").read_text().startswith(f"pid={os.getpid()} host=")


HOLD_FORK_AND_DIE = """
import os, signal, sys, time
from pathlib import Path
from core.engine.rundir import RunLock

RunLock.acquire(Path(sys.argv[1]))
child = os.fork()  # like a DataLoader worker
if child == 0:
    time.sleep(60)
    os._exit(0)
print(child, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_forked_child_does_not_keep_a_killed_runs_lock(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD_FORK_AND_DIE, str(tmp_path)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    child = int(proc.stdout.readline())
    proc.stdout.close()  # the child keeps its copy of the pipe
    assert proc.wait(timeout=60) == -signal.SIGKILL
    try:
        os.kill(child, 0)  # still running
        RunLock.acquire(tmp_path, wait_s=0).release()
    finally:
        os.kill(child, signal.SIGKILL)


def test_only_the_runs_own_temporary_files_are_removed(tmp_path):
    ckpt_dir = tmp_path / "checkpoints"
    ckpt_dir.mkdir()
    ours = [ckpt_dir / ".last.pt.a1b2c3d4.tmp", ckpt_dir / ".step_0000002.pt.zz_9aaaa.tmp",
            tmp_path / ".config.yaml.qwertyui.tmp", tmp_path / ".metrics.csv.asdfghjk.tmp"]
    others = [tmp_path / ".notes.txt.abcdefgh.tmp", tmp_path / "keep.tmp", ckpt_dir / "last.pt.corrupt",
              ckpt_dir / "step_0000002.pt"]
    for path in ours + others:
        path.write_bytes(b"x")
    assert remove_stale_temps(tmp_path) == sorted(ours[2:]) + sorted(ours[:2])
    assert [p for p in ours + others if p.exists()] == others


def test_resume_takes_the_newest_good_checkpoint(tmp_path):
    ckpt_dir = tmp_path / "checkpoints"
    save_checkpoint(payload(2), ckpt_dir, keep=5)
    atomic_save(payload(4), ckpt_dir / "step_0000004.pt")  # killed before last.pt was refreshed
    point = choose_resume(tmp_path)
    assert (point.path.name, point.data["step"], point.skipped) == ("step_0000004.pt", 4, [])
    (ckpt_dir / "step_0000004.pt").write_bytes(b"garbage")  # a corrupt newer step file: last.pt wins
    point = choose_resume(tmp_path)
    assert point.path.name == "last.pt" and [p.name for p, _ in point.skipped] == ["step_0000004.pt"]
    (ckpt_dir / "last.pt").write_bytes(b"")
    (ckpt_dir / "step_0000002.pt").unlink()
    with pytest.raises(NothingToResume, match=r"no checkpoint there is usable \(tried last\.pt: .*; step_0000004\.pt"):
        choose_resume(tmp_path)


def test_writer_refuses_non_finite_state_and_keeps_the_previous_checkpoint(tmp_path):
    ckpt_dir = tmp_path / "checkpoints"
    save_checkpoint(payload(1), ckpt_dir, keep=2)
    bad = payload(2, weight=float("inf"))
    bad["optimizer"] = {"state": {0: {"exp_avg": torch.tensor([float("nan")])}}}
    with pytest.raises(NonFiniteStateError, match=r"step 2 .*non-finite values in model\.w, optimizer\.state\.0"):
        save_checkpoint(bad, ckpt_dir, keep=2)
    assert sorted(os.listdir(ckpt_dir)) == ["last.pt", "step_0000001.pt"]
    assert verify_checkpoint(ckpt_dir / "last.pt")["step"] == 1


def test_full_disk_is_a_named_error_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    ckpt_dir = tmp_path / "checkpoints"
    save_checkpoint(payload(1), ckpt_dir, keep=2)
    big = payload(2)
    big["model"]["big"] = torch.ones(100_000)
    monkeypatch.setattr(core.fileio, "open_temp", faulty_open_temp("step_0000002.pt", "enospc", limit=50_000))
    with pytest.raises(DiskFullError, match=r"disk full while writing .*step_0000002\.pt") as err:
        save_checkpoint(big, ckpt_dir, keep=2)
    assert err.value.errno == 28 and isinstance(err.value, OSError)
    assert sorted(os.listdir(ckpt_dir)) == ["last.pt", "step_0000001.pt"]


def test_health_criterion():
    huge = [torch.full((1000,), 1e28), torch.ones(3)]
    assert torch.isfinite(global_norm(huge)) and float(global_norm(huge)) == pytest.approx(1e28 * 1000 ** 0.5)
    health = Health(initial=100.0, max_growth=1e6)
    assert health.param_fault(5e7) is None
    assert "diverged" in health.param_fault(2e8) and "not finite" in health.param_fault(float("nan"))
    assert Health(100.0, None).param_fault(1e30) is None


def test_non_finite_gradients_stop_before_the_optimiser_step(tmp_path):
    config = tiny_config(tmp_path / "run", "train.steps=5", "train.checkpoint_every=1")
    step = {"n": 0}

    def count(module, args):  # the method's forward starts a step
        if type(module).__name__ == "SimCLR":
            step["n"] += 1

    def poison(module, args, output):  # step 3: the loss is unchanged, its gradients are not finite
        if step["n"] == 3 and isinstance(module, nn.Linear) and output.requires_grad:
            output.register_hook(lambda grad: torch.full_like(grad, float("inf")))

    handles = [nn.modules.module.register_module_forward_pre_hook(count),
               nn.modules.module.register_module_forward_hook(poison)]
    try:
        with pytest.raises(TrainingDivergedError, match=r"non-finite gradient norm \((inf|nan)\) at step 3 .*"
                           r"descriptor \[.*stopped before the optimiser step.*last\.pt \(step 2\)"):
            pretrain(config, make_audio_modality(config), progress=False)
    finally:
        for handle in handles:
            handle.remove()
    good = verify_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert good["step"] == 2 and not (tmp_path / "run" / "checkpoints" / "step_0000003.pt").exists()


def test_named_runs_resume_from_a_step_file_when_last_pt_is_gone(tmp_path, capsys):
    config = tiny_config(tmp_path / "out" / "m", "train.steps=4", "train.stop_at=2")
    assert pretrain(config, make_audio_modality(config), progress=False).stopped == "stop_at"
    (tmp_path / "out" / "m" / "checkpoints" / "last.pt").unlink()
    overrides = [o for o in tiny_overrides(tmp_path / "unused", "train.steps=4") if not o.startswith("run_dir=")]
    with pytest.warns(UserWarning, match=r"differs in \['train.stop_at'\]"):  # the first part stopped at 2
        encoder = train_or_reuse("m", tmp_path / "out", None, overrides, [], make_audio_modality, progress=False)
    assert encoder.is_file() and "[m] resuming" in capsys.readouterr().out
