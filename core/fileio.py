"""Safe file writing and reading shared by encoder files and training checkpoints."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` so that a crash never leaves a half-written file there.

    Writes a temporary file in the same directory, flushes and fsyncs it, renames it over
    ``path`` (atomic on POSIX) and fsyncs the directory. The previous file, if any, stays
    intact until the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def safe_load(path: str | os.PathLike, what: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with errors that name the file.

    Args:
        path: the file.
        what: what the file should be, for messages (e.g. ``"encoder file"``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is truncated, corrupt or holds objects other than tensors and
            plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError...
        raise ValueError(f"{what} {path} is corrupt or not a torch file: {type(err).__name__}: {err}") from err
