"""Safe file writing and reading shared by encoder files and training checkpoints."""
from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` through ``write(handle)`` so that a crash never leaves a half-written file.

    ``write`` fills a temporary binary file in the same directory; it is flushed, fsynced and
    renamed over ``path`` (atomic on POSIX), then the directory is fsynced. The previous
    file, if any, stays intact until the rename; on any error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
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


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))


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


# The only globals a pickled numpy array (or dict/list of arrays) needs.
NUMPY_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # protocol-2 pickles store array bytes via codecs.encode
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that resolves numpy's array and scalar constructors only, so a crafted
    file (a dataset's split or array pickle) cannot import and run anything else.

    Raises (on ``load()``):
        pickle.UnpicklingError: the file names any other global (the message names it).
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are allowed)")
        return super().find_class(module, name)
