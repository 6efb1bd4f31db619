"""Training checkpoints: atomic step files, ``last.pt``, pruning and RNG state capture.

A checkpoint is a dict of plain data and tensors (``torch.load(weights_only=True)`` reads
it); see :data:`REQUIRED_KEYS` and ``core/engine/loop.py`` for what it holds. Files live in
``run_dir/checkpoints/``: ``step_NNNNNNN.pt`` (newest ``keep`` kept) and ``last.pt``, a
copy of the newest one. Every file is written to a temporary name, fsynced and renamed, so
a crash mid-write leaves the previous files intact and no half file at a final path (only a
``.<name>.<random>.tmp`` file, which the next run removes: ``core/engine/rundir.py``).

A *good* checkpoint loads with ``weights_only=True``, has this code's format, version and
every key of :data:`REQUIRED_KEYS`, and every floating-point tensor in it (parameters,
buffers, optimiser moments, queues, front-end statistics) is finite. The writer refuses a
payload with a non-finite tensor (:class:`NonFiniteStateError`), so a run never replaces a
good ``last.pt`` with a broken one.
"""
from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np
import torch

from core.encoders.serialise import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from core.errors import RunError, UserError
from core.fileio import atomic_save, atomic_write, safe_load

LAST = "last.pt"
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
REQUIRED_KEYS = ("format", "version", "step", "epoch", "batch_in_epoch", "config", "encoder_meta", "model",
                 "optimizer", "scheduler", "scaler", "method_extra", "modality", "rng")


class CheckpointError(UserError, ValueError):
    """A checkpoint file that cannot be used (corrupt, truncated, foreign, non-finite); names the file."""


class CheckpointMismatch(UserError, ValueError):
    """A good checkpoint that does not fit the run (other encoder, space or optimiser); names the file."""


class NonFiniteStateError(RunError, ValueError):
    """A checkpoint payload holds NaN or infinite values; it was not written (names the entries)."""


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

    Raises:
        NonFiniteStateError: a floating-point tensor of ``payload`` is not finite; nothing is
            written and the previous files stay as they were.
        DiskFullError: the disk filled up (the previous files are intact, no temporary file is left).
    """
    bad = non_finite_entries(payload)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise NonFiniteStateError(f"refusing to write checkpoint step {payload.get('step')} to {ckpt_dir}: "
                                  f"non-finite values in {shown}")
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
        CheckpointError: corrupt file, foreign format or version, or missing keys (names the file;
            also a ``ValueError``).
    """
    try:
        data = safe_load(path, "checkpoint")
    except ValueError as err:
        raise CheckpointError(str(err)) from err
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a training checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    if data.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint {path} has version {data.get('version')}, this code reads "
                              f"{CHECKPOINT_VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks keys {missing}")
    return data


def verify_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """:func:`load_checkpoint`, then check that it is good (every floating-point tensor finite).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a good checkpoint (the message names the file and the fault).
    """
    data = load_checkpoint(path)
    bad = non_finite_entries(data)
    if bad:
        raise CheckpointError(f"checkpoint {path} holds non-finite values in {', '.join(bad[:3])}"
                              + (f" and {len(bad) - 3} more" if len(bad) > 3 else ""))
    return data


def has_checkpoints(ckpt_dir: Path) -> bool:
    """Whether ``ckpt_dir`` holds ``last.pt`` or a step file (good or not)."""
    return bool(step_files(ckpt_dir)) or (ckpt_dir / LAST).exists()


def _floating_tensors(value: Any, where: str) -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex():
            yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _floating_tensors(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _floating_tensors(item, f"{where}[{i}]")


def non_finite_entries(payload: Any) -> list[str]:
    """Dotted names of the floating-point tensors in ``payload`` (nested dicts / lists) that hold
    NaN or infinity; one device synchronisation per device."""
    groups: dict[torch.device, list[tuple[str, torch.Tensor]]] = {}
    for name, tensor in _floating_tensors(payload, ""):
        if tensor.numel():
            groups.setdefault(tensor.device, []).append((name, tensor))
    bad = []
    for items in groups.values():
        finite = torch.stack([torch.isfinite(t.detach()).all() for _, t in items]).tolist()
        bad += [name for (name, _), ok in zip(items, finite) if not ok]
    return bad


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
