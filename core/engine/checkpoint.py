"""Training checkpoints: atomic step files, ``last.pt``, pruning and RNG state capture.

A checkpoint is a dict of plain data and tensors (``torch.load(weights_only=True)`` reads
it); see :data:`REQUIRED_KEYS` and ``core/engine/loop.py`` for what it holds. Files live in
``run_dir/checkpoints/``: ``step_NNNNNNN.pt`` (newest ``keep`` kept) and ``last.pt``, a
copy of the newest one. Every file is written to a temporary name, fsynced and renamed, so
a crash mid-write leaves the previous files intact and no half file at a final path.
"""
from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from core.encoders.serialise import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from core.fileio import atomic_save, atomic_write, safe_load

LAST = "last.pt"
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
REQUIRED_KEYS = ("format", "version", "step", "epoch", "batch_in_epoch", "config", "encoder_meta", "model",
                 "optimizer", "scheduler", "scaler", "method_extra", "modality", "rng")


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    """``run_dir/checkpoints``."""
    return Path(run_dir) / "checkpoints"


def step_file(ckpt_dir: Path, step: int) -> Path:
    """``ckpt_dir/step_NNNNNNN.pt`` (7 digits, zero-padded)."""
    return ckpt_dir / f"step_{step:07d}.pt"


def step_files(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every step file, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), ckpt_dir / name) for name in os.listdir(ckpt_dir)
             if (m := _STEP_FILE.match(name))]
    return sorted(found)


def atomic_copy(src: Path, dst: Path) -> Path:
    """Copy ``src`` to ``dst`` through a temporary file, fsync and rename."""
    def copy(out: BinaryIO) -> None:
        with open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)

    return atomic_write(dst, copy)


def save_checkpoint(payload: dict[str, Any], ckpt_dir: Path, keep: int) -> Path:
    """Write ``payload`` as ``step_<payload['step']>.pt``, refresh ``last.pt``, prune old files.

    Args:
        payload: the checkpoint dict (must hold ``step``).
        ckpt_dir: ``run_dir/checkpoints`` (created if missing).
        keep: newest step files to keep (>= 1).

    Returns:
        The step file.
    """
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = atomic_save(payload, step_file(ckpt_dir, int(payload["step"])))
    atomic_copy(path, ckpt_dir / LAST)
    for _, old in step_files(ckpt_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a training checkpoint (CPU tensors).

    Raises:
        FileNotFoundError: no such file.
        ValueError: corrupt file, foreign format or version, or missing keys (names the file).
    """
    data = safe_load(path, "checkpoint")
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a training checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    if data.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint {path} has version {data.get('version')}, this code reads {CHECKPOINT_VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"checkpoint {path} lacks keys {missing}")
    return data


def resume_checkpoint(run_dir: str | os.PathLike) -> Path:
    """``run_dir/checkpoints/last.pt``, or FileNotFoundError saying there is nothing to resume."""
    path = checkpoint_dir(run_dir) / LAST
    if not path.is_file():
        raise FileNotFoundError(
            f"cannot resume: no checkpoint {path} (start without --resume, or point run_dir at the "
            f"run to continue)")
    return path


def capture_rng() -> dict[str, Any]:
    """All global RNG states as plain data / tensors: torch CPU, CUDA (if any), numpy, python."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": [int(v) for v in internal], "gauss_next": gauss_next},
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng` (CUDA states only when the device count matches)."""
    torch.set_rng_state(state["torch"].to(torch.uint8))
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in cuda])
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
