"""Shared pieces of the engine tests: a tiny synthetic-audio config, a modality wrapper with
hooks (to kill, signal or poison a run at a chosen step), and a script entry point for runs
in subprocesses::

    python -m tests.engine_helpers kill RUN_DIR KILL_AFTER [a.b=v ...]   # SIGKILLs itself after step_KILL_AFTER
    python -m tests.engine_helpers sigterm RUN_DIR AT [a.b=v ...]        # SIGTERM to itself during step AT (CLI)
    python -m tests.engine_helpers ddp OUT_DIR [a.b=v ...]               # a torchrun worker
    python -m tests.engine_helpers killwrite RUN_DIR NAME [a.b=v ...]    # SIGKILL while writing checkpoints/NAME
    python -m tests.engine_helpers hold RUN_DIR                          # hold the run dir's lock until killed
"""
from __future__ import annotations

import argparse
import errno
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset

import core.fileio
from aiaudio.modality import make_audio_modality
from core.cli import run_cli
from core.engine import PretrainConfig, load_config, pretrain
from core.engine.checkpoint import checkpoint_dir, step_file
from core.engine.cli import add_pretrain_commands
from core.modality import Modality

ROOT = Path(__file__).resolve().parents[1]

# 32 synthetic clips of 0.5 s, 32 mel bins, width-4 Hyper-ResNet18: a few steps take seconds.
TINY = [
    "train.batch_size=8", "train.num_workers=0", "train.log_every=1", "train.checkpoint_every=2",
    "encoder.kwargs={width: 4}", "method.proj_hidden=32", "method.proj_out=16", "optim.lr=0.01",
    "data.dataset=synthetic?n_clips=32&seconds=0.5", "data.seconds=0.5", "data.fit_clips=16",
    "data.frontend={n_mels: 32}",
    "data.augment={pitch_shift: {n_fft: 128, hop_length: 64}, time_stretch: {n_fft: 128, hop_length: 64}}",
]


def tiny_overrides(run_dir: str | Path, *extra: str) -> list[str]:
    """The tiny settings plus ``run_dir`` and ``extra`` overrides."""
    return [f"run_dir={run_dir}", *TINY, *extra]


def tiny_config(run_dir: str | Path, *extra: str) -> PretrainConfig:
    """A validated tiny config writing to ``run_dir``."""
    return load_config(None, tiny_overrides(run_dir, *extra))


class HookedDataset(Dataset):
    """Delegates to ``inner``; calls ``hook(index)`` before every item."""

    def __init__(self, inner: Dataset, hook: Callable[[int], None]) -> None:
        self.inner, self.hook = inner, hook

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> dict[str, Any]:
        self.hook(index)
        return self.inner[index]


class HookedModality(Modality):
    """A real modality with hooks: ``on_item(index)`` before each training item and
    ``on_views(call, view1, view2) -> (view1, view2)`` after the ``call``-th (1-based)
    ``views`` call, i.e. during step ``call`` of a fresh run."""

    def __init__(self, inner: Modality, on_item: Callable[[int], None] | None = None,
                 on_views: Callable[[int, Tensor, Tensor], tuple[Tensor, Tensor]] | None = None) -> None:
        self.inner, self.on_item, self.on_views = inner, on_item, on_views
        self.name, self.space = inner.name, inner.space
        self.calls = 0

    def train_dataset(self) -> Dataset:
        data = self.inner.train_dataset()
        return data if self.on_item is None else HookedDataset(data, self.on_item)

    def setup(self, device: torch.device) -> None:
        self.inner.setup(device)

    def views(self, batch: Tensor, descriptor: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        self.calls += 1
        v1, v2 = self.inner.views(batch, descriptor, generator)
        return (v1, v2) if self.on_views is None else self.on_views(self.calls, v1, v2)

    def encode_input(self, batch: Tensor) -> Tensor:
        return self.inner.encode_input(batch)

    def monitor_data(self):
        return self.inner.monitor_data()

    def default_encoder(self):
        return self.inner.default_encoder()

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)

    def encoder_extra(self) -> dict[str, Any]:
        return self.inner.encoder_extra()


class FaultyFile(io.FileIO):
    """A real temporary file of ``core.fileio.atomic_write`` that, once ``limit`` bytes are
    written, raises ``OSError(ENOSPC)`` from ``write`` (``fault="enospc"``, a full disk) or
    SIGKILLs the process (``fault="kill"``, a kill in the middle of a checkpoint write)."""

    def __init__(self, fd: int, limit: int, fault: str) -> None:
        super().__init__(fd, "wb")
        self.limit, self.fault, self.written = limit, fault, 0

    def write(self, data) -> int:
        if self.written + len(data) > self.limit:
            if self.fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.written += len(data)
        return super().write(data)


def faulty_open_temp(name: str, fault: str, limit: int = 1 << 16) -> Callable:
    """A replacement for ``core.fileio.open_temp`` that gives final files called ``name`` a
    :class:`FaultyFile` (every other file opens as usual)."""
    original = core.fileio.open_temp

    def open_temp(fd: int, path: Path):
        return FaultyFile(fd, limit, fault) if Path(path).name == name else original(fd, path)

    return open_temp


def run_helper(*args: str, torchrun: int = 0, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run this module as a script (optionally under ``torchrun --nproc_per_node N``)."""
    # one intra-op thread, like the tests' in-process runs (see the one_thread fixture in conftest.py): bitwise-equal results
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    prefix = [sys.executable]
    if torchrun:
        prefix += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}"]
        return subprocess.run([*prefix, str(Path(__file__)), *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)
    return subprocess.run([*prefix, "-m", "tests.engine_helpers", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------- script modes
def _kill(run_dir: str, kill_after: int, extra: list[str]) -> int:
    config = tiny_config(run_dir, *extra)
    marker = step_file(checkpoint_dir(run_dir), kill_after)
    main_pid = os.getpid()  # the run's process, also when a DataLoader worker loads the item

    def on_item(index: int) -> None:
        if marker.exists():  # data of step kill_after + 1 is being loaded: die without warning
            os.kill(main_pid, signal.SIGKILL)

    pretrain(config, HookedModality(make_audio_modality(config), on_item=on_item), progress=False)
    return 0


def _sigterm(run_dir: str, at: int, extra: list[str]) -> int:
    def on_views(call: int, v1: Tensor, v2: Tensor) -> tuple[Tensor, Tensor]:
        if call == at:
            os.kill(os.getpid(), signal.SIGTERM)
        return v1, v2

    parser = argparse.ArgumentParser(prog="helper")
    sub = parser.add_subparsers(dest="command")
    add_pretrain_commands(sub, lambda cfg: HookedModality(make_audio_modality(cfg), on_views=on_views))
    return run_cli(parser, ["pretrain", "--no-progress", *tiny_overrides(run_dir, *extra)])


def _killwrite(run_dir: str, name: str, extra: list[str]) -> int:
    core.fileio.open_temp = faulty_open_temp(name, "kill")
    config = tiny_config(run_dir, *extra)
    pretrain(config, make_audio_modality(config), progress=False)
    return 0


def _hold(run_dir: str) -> int:
    from core.engine.rundir import RunLock

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    RunLock.acquire(Path(run_dir))
    print("locked", flush=True)
    signal.pause()  # until the test kills this process
    return 0


def _ddp(out_dir: str, extra: list[str]) -> int:
    out = Path(out_dir)
    config = tiny_config(out / "run", *extra)
    rank = int(os.environ["RANK"])
    (out / f"pid_{rank}").write_text(str(os.getpid()))
    result = pretrain(config, make_audio_modality(config), progress=False)
    (out / f"history_{rank}.json").write_text(json.dumps(result.history))
    params = {k: v.detach().cpu() for k, v in result.method.named_parameters()}
    torch.save(params, out / f"params_{rank}.pt")
    return 0


def main(argv: list[str]) -> int:
    mode, target, *rest = argv
    if mode == "kill":
        return _kill(target, int(rest[0]), rest[1:])
    if mode == "sigterm":
        return _sigterm(target, int(rest[0]), rest[1:])
    if mode == "ddp":
        return _ddp(target, rest)
    if mode == "killwrite":
        return _killwrite(target, rest[0], rest[1:])
    if mode == "hold":
        return _hold(target)
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
