"""Bad-input corpus, processes and run directories: kills, signals, full disks, corrupt or
foreign checkpoints, rejected configs on ``--resume`` and concurrent runs, each through the
real ``aiaudio`` command line. Every case ends with its documented exit status and (for a
failure) one named error line without a traceback, and loses nothing already written:
checkpoints, ``config.yaml`` and ``metrics.csv`` rows are hashed before and after."""
from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import uuid

import pytest
import torch

import core.fileio
from aiaudio.cli import main
from core.engine.checkpoint import verify_checkpoint
from core.engine.rundir import RunLock
from tests.engine_helpers import ROOT, faulty_open_temp, run_helper, tiny_overrides

pytestmark = [
    pytest.mark.usefixtures("one_thread"),  # conftest: one intra-op thread per module
    # the cases resume copies of one base run, so run_dir (and the steps asked for) differ from
    # the saved config by design; the warning itself is tested in test_engine_resume
    pytest.mark.filterwarnings("ignore:resuming .* with a config that differs:UserWarning"),
]

BASE = ["train.steps=4", "train.checkpoint_every=2", "train.keep_checkpoints=2"]


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``aiaudio`` in this process; returns (status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def pretrain(capsys, run_dir, *extra: str, resume: bool = False) -> tuple[int, str, str]:
    return cli(capsys, "pretrain", "--no-progress", *(["--resume"] if resume else []),
               *tiny_overrides(run_dir, *extra))


def one_line_error(err: str, *needles: str) -> str:
    """The one error line of ``err`` (no traceback), holding every needle."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], (needle, err)
    return errors[0]


def snapshot(run_dir) -> dict[str, str]:
    """SHA-256 of every file under ``run_dir`` (TensorBoard's event files aside)."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and "tensorboard" not in p.parts}


def rows(run_dir) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def ckpt(run_dir, name: str):
    return run_dir / "checkpoints" / name


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A finished 4-step run: step_0000002.pt, step_0000004.pt, last.pt (= step 4), metrics rows 1-4."""
    run_dir = tmp_path_factory.mktemp("base") / "run"
    assert main(["pretrain", "--no-progress", *tiny_overrides(run_dir, *BASE)]) == 0
    return run_dir


@pytest.fixture()
def run(base, tmp_path):
    """A private copy of the base run."""
    shutil.copytree(base, tmp_path / "run")
    return tmp_path / "run"


def test_sigkill_mid_run_then_resume(tmp_path, capsys):
    run_dir = tmp_path / "run"
    proc = run_helper("kill", str(run_dir), "2", *BASE)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    RunLock.acquire(run_dir, wait_s=0).release()  # the OS freed the dead run's lock
    before, kept = rows(run_dir), snapshot(run_dir)["checkpoints/step_0000002.pt"]
    status, out, err = pretrain(capsys, run_dir, *BASE, resume=True)
    assert status == 0 and "pre-trained 4 steps" in out and "Traceback" not in err
    assert rows(run_dir)[:2] == before and [int(r["step"]) for r in rows(run_dir)] == [1, 2, 3, 4]
    assert snapshot(run_dir)["checkpoints/step_0000002.pt"] == kept


def test_sigterm_exits_143_then_resume(tmp_path, capsys):
    run_dir = tmp_path / "run"
    proc = run_helper("sigterm", str(run_dir), "3", *BASE)  # a real SIGTERM during step 3
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert "stopped by SIGTERM after step 3" in proc.stderr and "Traceback" not in proc.stderr
    assert verify_checkpoint(ckpt(run_dir, "last.pt"))["step"] == 3
    before, saved = rows(run_dir), snapshot(run_dir)
    status, _, err = pretrain(capsys, run_dir, *BASE, resume=True)
    assert status == 0 and "Traceback" not in err
    assert rows(run_dir)[:3] == before and snapshot(run_dir)["checkpoints/step_0000003.pt"] == saved[
        "checkpoints/step_0000003.pt"]


def test_kill_during_checkpoint_write_then_resume(tmp_path, capsys):
    run_dir = tmp_path / "run"
    proc = run_helper("killwrite", str(run_dir), "step_0000004.pt", *BASE)  # SIGKILL with 64 KiB written
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    leftovers = [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".step_0000004.pt.")
    saved = snapshot(run_dir)
    with pytest.warns(UserWarning, match=r"removed 1 temporary file\(s\) left by an interrupted write: .*step_0000004"):
        status, _, err = pretrain(capsys, run_dir, *BASE, resume=True)
    assert status == 0 and "Traceback" not in err
    assert not [p for p in run_dir.rglob("*.tmp")]
    assert snapshot(run_dir)["checkpoints/step_0000002.pt"] == saved["checkpoints/step_0000002.pt"]
    assert verify_checkpoint(ckpt(run_dir, "last.pt"))["step"] == 4


def test_disk_full_during_checkpoint_write(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    monkeypatch.setattr(core.fileio, "open_temp", faulty_open_temp("step_0000004.pt", "enospc"))
    status, _, err = pretrain(capsys, run_dir, *BASE)
    assert status == 1
    one_line_error(err, "disk full while writing", "step_0000004.pt", "not written", "last.pt (step 2)")
    assert verify_checkpoint(ckpt(run_dir, "last.pt"))["step"] == 2  # the previous checkpoint is intact
    assert not [p for p in run_dir.rglob("*.tmp")] and not ckpt(run_dir, "step_0000004.pt").exists()
    assert [int(r["step"]) for r in rows(run_dir)] == [1, 2, 3, 4]


@pytest.fixture()
def small_tmpfs(tmp_path):
    """A real 5 MiB tmpfs (room for one checkpoint and its last.pt copy); skipped where mounting is not allowed."""
    mount = tmp_path / f"tmpfs-{uuid.uuid4().hex[:8]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_disk_full_on_a_real_small_tmpfs(small_tmpfs, capsys):
    run_dir = small_tmpfs / "run"
    status, _, err = pretrain(capsys, run_dir, *BASE, "train.keep_checkpoints=1")
    assert status == 1
    line = one_line_error(err, "disk full while writing")
    assert "step_0000004.pt" in line or "last.pt" in line or "encoder.pt" in line
    assert verify_checkpoint(ckpt(run_dir, "last.pt"))["step"] in (2, 4)
    assert not [p for p in run_dir.rglob("*.tmp")]


def test_corrupt_last_falls_back_to_the_step_file(run, capsys):
    data = ckpt(run, "last.pt").read_bytes()
    ckpt(run, "last.pt").write_bytes(data[: len(data) // 3] + b"\0" * 64)
    corrupt, saved = ckpt(run, "last.pt").read_bytes(), snapshot(run)
    with pytest.warns(UserWarning, match=r"resuming from .*step_0000004\.pt \(step 4\): skipped unusable .*last\.pt"):
        status, _, err = pretrain(capsys, run, *BASE, "train.steps=6", resume=True)
    assert status == 0 and "Traceback" not in err
    assert ckpt(run, "last.pt.corrupt").read_bytes() == corrupt  # set aside, never deleted or overwritten
    assert snapshot(run)["checkpoints/step_0000004.pt"] == saved["checkpoints/step_0000004.pt"]
    assert verify_checkpoint(ckpt(run, "last.pt"))["step"] == 6
    assert [int(r["step"]) for r in rows(run)] == [1, 2, 3, 4, 5, 6]


def test_corrupt_last_without_fallback_is_a_named_user_error(run, capsys):
    ckpt(run, "last.pt").write_bytes(b"not a checkpoint")
    ckpt(run, "step_0000004.pt").write_bytes(ckpt(run, "step_0000004.pt").read_bytes()[:5000])
    ckpt(run, "step_0000002.pt").unlink()
    saved = snapshot(run)
    status, _, err = pretrain(capsys, run, *BASE, "train.steps=6", resume=True)
    assert status == 2
    one_line_error(err, "cannot resume", "no checkpoint there is usable", "last.pt", "step_0000004.pt")
    assert snapshot(run) == saved  # nothing moved, nothing written


def test_deleted_last_resumes_from_the_step_file_and_a_fresh_start_is_refused(run, capsys):
    ckpt(run, "last.pt").unlink()
    saved = snapshot(run)
    status, _, err = pretrain(capsys, run, *BASE)  # no --resume: refused, naming what is there
    assert status == 2
    one_line_error(err, "already holds checkpoints", "--resume", "step_0000004.pt")
    assert snapshot(run) == saved
    status, _, err = pretrain(capsys, run, *BASE, "train.steps=6", resume=True)
    assert status == 0 and "Traceback" not in err
    assert snapshot(run)["checkpoints/step_0000004.pt"] == saved["checkpoints/step_0000004.pt"]
    assert verify_checkpoint(ckpt(run, "last.pt"))["step"] == 6


def test_truncated_checkpoints_fall_back_to_the_newest_intact_one(run, capsys):
    for name in ("last.pt", "step_0000004.pt"):
        ckpt(run, name).write_bytes(ckpt(run, name).read_bytes()[:100_000])
    truncated = ckpt(run, "step_0000004.pt").read_bytes()
    with pytest.warns(UserWarning, match=r"resuming from .*step_0000002\.pt \(step 2\)"):
        status, _, err = pretrain(capsys, run, *BASE, resume=True)
    assert status == 0 and "Traceback" not in err
    assert ckpt(run, "step_0000004.pt.corrupt").read_bytes() == truncated
    assert ckpt(run, "last.pt.corrupt").is_file() and verify_checkpoint(ckpt(run, "last.pt"))["step"] == 4


def test_non_finite_checkpoint_is_not_resumed(run, capsys):
    data = torch.load(ckpt(run, "last.pt"), weights_only=True)
    next(v for v in data["model"].values() if v.is_floating_point()).fill_(float("nan"))
    torch.save(data, ckpt(run, "last.pt"))
    torch.save(data, ckpt(run, "step_0000004.pt"))
    with pytest.warns(UserWarning, match=r"step_0000002\.pt \(step 2\): skipped .*non-finite values"):
        status, _, err = pretrain(capsys, run, *BASE, resume=True)
    assert status == 0 and "Traceback" not in err


@pytest.mark.parametrize("change", ["width", "space"])
def test_checkpoint_of_another_config_or_space(run, capsys, change):
    extra = ["encoder.kwargs={width: 8}"] if change == "width" else []
    if change == "space":  # a checkpoint written for another invariance space
        for name in ("last.pt", "step_0000004.pt", "step_0000002.pt"):
            data = torch.load(ckpt(run, name), weights_only=True)
            data["encoder_meta"]["space"]["names"] = ["spatial", "appearance"]
            torch.save(data, ckpt(run, name))
    saved = snapshot(run)
    with pytest.warns(UserWarning) if change == "width" else contextlib.nullcontext():
        status, _, err = pretrain(capsys, run, *BASE, *extra, resume=True)
    assert status == 2
    one_line_error(err, "last.pt", "does not fit this config" if change == "width" else "invariance space")
    assert snapshot(run) == saved


@pytest.mark.parametrize("override,needles", [
    ("optim.warmup_steps=50", ["command line override optim.warmup_steps=50", "exceeds train.steps=6"]),
    ("train.batch_size=64", ["too few for train.batch_size=64"]),
    ("encoder.name=resnet9", ["cannot build 'resnet9'"]),
])
def test_rejected_config_on_resume_leaves_the_run_dir_unchanged(run, capsys, override, needles):
    saved = snapshot(run)
    status, _, err = pretrain(capsys, run, *BASE, "train.steps=6", override, resume=True)
    assert status == 2
    one_line_error(err, *needles)
    assert snapshot(run) == saved  # config.yaml byte-identical: the documented resume still works
    status, _, err = pretrain(capsys, run, *BASE, "train.steps=6", resume=True)
    assert status == 0 and "Traceback" not in err


def test_second_run_is_locked_out(run, capsys):
    holder = subprocess.Popen([sys.executable, "-m", "tests.engine_helpers", "hold", str(run)], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        saved = snapshot(run)
        status, _, err = pretrain(capsys, run, *BASE, "train.steps=6", resume=True)
        assert status == 1
        one_line_error(err, f"run directory {run} is in use", f"process {holder.pid}")
        assert snapshot(run) == saved  # not a byte written
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    status, _, err = pretrain(capsys, run, *BASE, "train.steps=6", resume=True)  # the OS freed the lock
    assert status == 0 and "Traceback" not in err


def test_diverging_run_stops_with_a_finite_last_checkpoint(tmp_path, capsys):
    # lr=100: the weights reach ~1e24 by step 2 while the normalised loss stays finite
    run_dir = tmp_path / "run"
    status, _, err = pretrain(capsys, run_dir, "train.steps=6", "train.checkpoint_every=1", "optim.lr=100")
    assert status == 1
    line = one_line_error(err, "diverged", "after step 2", "descriptor [", "last good checkpoint",
                          "last.pt (step 1)")
    assert "max_param_growth" in line
    good = verify_checkpoint(ckpt(run_dir, "last.pt"))  # every tensor finite
    assert good["step"] == 1 and max(float(v.abs().max()) for v in good["model"].values()
                                     if v.is_floating_point()) < 1e6
    assert not ckpt(run_dir, "step_0000002.pt").exists() and not (run_dir / "encoder.pt").exists()


@pytest.mark.parametrize("content", ["garbage", "truncated", "yaml"])
def test_export_of_a_garbage_or_corrupt_file(base, tmp_path, capsys, content):
    source = tmp_path / "input.pt"
    data = {"garbage": os.urandom(4096), "yaml": b"train:\n  steps: 3\n",
            "truncated": ckpt(base, "last.pt").read_bytes()[:200_000]}[content]
    source.write_bytes(data)
    status, _, err = cli(capsys, "export", "--checkpoint", source, "--out", tmp_path / "enc.pt")
    assert status == 2
    one_line_error(err, str(source))
    assert source.read_bytes() == data and not (tmp_path / "enc.pt").exists()


def test_resume_without_a_run_dir(tmp_path, capsys):
    status, _, err = pretrain(capsys, tmp_path / "missing", *BASE, resume=True)
    assert status == 2
    one_line_error(err, "cannot resume", str(tmp_path / "missing"), "does not exist", "without --resume")
    assert not (tmp_path / "missing").exists()
