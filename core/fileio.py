"""Safe file writing and reading shared by encoder files and training checkpoints.

:func:`atomic_write` fills a temporary file named ``.<final name>.<random>.tmp`` next to the
final path; :func:`temp_files` finds those a killed writer left behind. A full disk is
reported as :class:`core.errors.DiskFullError` naming the final file.
"""
from __future__ import annotations

import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

import torch

from core.errors import DiskFullError, is_disk_full

TEMP_SUFFIX = ".tmp"


def _disk_full_cause(err: BaseException) -> OSError | None:
    """The ENOSPC / EDQUOT ``OSError`` in ``err``'s chain (``torch.save`` wraps it in a RuntimeError)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if is_disk_full(current):
            return current  # type: ignore[return-value]
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def open_temp(fd: int, path: Path) -> BinaryIO:
    """The binary handle :func:`atomic_write` fills for final file ``path`` (one place to open it)."""
    return os.fdopen(fd, "wb")


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` through ``write(handle)`` so that a crash never leaves a half-written file.

    ``write`` fills a temporary binary file in the same directory; it is flushed, fsynced and
    renamed over ``path`` (atomic on POSIX), then the directory is fsynced. The previous
    file, if any, stays intact until the rename; on any error the temporary file is removed.

    Raises:
        DiskFullError: the disk or quota filled up while writing (names ``path``; the previous
            file is intact and the temporary file removed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with open_temp(fd, path) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        full = _disk_full_cause(err)
        if full is None:
            raise
        kept = "the previous version is intact" if path.exists() else "nothing was written there"
        error = DiskFullError(f"disk full while writing {path} ({full.strerror or full}); {kept} and the "
                              f"partial temporary file was removed: free some space and rerun")
        error.errno, error.path = full.errno, path  # filename stays None: str(error) is the message
        raise error from err
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def temp_files(directory: str | os.PathLike, finals: Iterable[str] | re.Pattern[str]) -> list[Path]:
    """Temporary files of :func:`atomic_write` directly in ``directory`` whose final name is in
    ``finals`` (or matches the pattern): what a writer killed mid-write left behind."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    wanted = finals.fullmatch if isinstance(finals, re.Pattern) else set(finals).__contains__
    found = []
    for entry in os.scandir(directory):
        name = entry.name
        if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)) or not entry.is_file(follow_symlinks=False):
            continue
        final = name[1:-len(TEMP_SUFFIX)].rpartition(".")[0]  # ".<final>.<random>.tmp" -> "<final>"
        if final and wanted(final):
            found.append(Path(entry.path))
    return sorted(found)


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
