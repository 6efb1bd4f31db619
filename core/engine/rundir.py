"""The run directory's guards: one run at a time, and the leftovers of killed writers.

* **Lock.** Rank 0 holds an exclusive ``fcntl.flock`` on ``run_dir/run.lock`` for the whole
  run; the OS drops it when the process exits or is killed (forked DataLoader workers close
  their copy of the descriptor, so they do not keep it). The file records the holder's PID
  and host and stays after the run (deleting it would race with a starting run). A second
  run on the same directory stops with :class:`RunDirBusy` before touching any file.
* **Leftovers.** Under the lock, the temporary files of the run's own atomic writes
  (``.<name>.<random>.tmp`` next to ``config.yaml``, ``metrics.csv``, ``encoder.pt`` and the
  checkpoints), left by a process killed mid-write, are removed and reported.
* **Resume / fresh start.** :mod:`core.engine.resume` picks the checkpoint (or refuses a fresh
  start over checkpoints); :meth:`RunDirectory.claim` sets skipped corrupt files aside.

Nothing is written before :meth:`RunDirectory.claim`, which the loop calls once the whole run
has been validated.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import time
import warnings
from pathlib import Path
from typing import Callable

from core.engine.checkpoint import checkpoint_dir
from core.engine.distributed import DistContext, run_on_main
from core.engine.resume import ResumePoint, choose_resume, refuse_fresh_start, set_aside
from core.errors import RunError
from core.fileio import temp_files

LOCK_NAME = "run.lock"
RUN_FILES = ("config.yaml", "metrics.csv", "encoder.pt")
CHECKPOINT_NAMES = re.compile(r"last\.pt|step_\d+\.pt")


_HELD: set[int] = set()  # descriptors of the locks this process holds


def _forget_in_child() -> None:
    """A forked child (a DataLoader worker) closes its copies of the lock descriptors, so that
    the lock dies with the run's process and not with its last worker."""
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_forget_in_child)


class RunDirBusy(RunError):
    """Another process holds the run directory's lock; names the directory and the holder."""


def _holder(fd: int) -> tuple[int | None, str]:
    """(PID, host) recorded in an open lock file; (None, "") when unreadable."""
    try:
        fields = dict(part.split("=", 1) for part in os.pread(fd, 256, 0).decode().split() if "=" in part)
        return int(fields["pid"]), fields.get("host", "")
    except (OSError, ValueError, KeyError):
        return None, ""


def _gone(pid: int | None, host: str) -> bool:
    """Whether the recorded holder is a process of this host that no longer runs."""
    if pid is None or host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class RunLock:
    """An exclusive lock on ``run_dir/run.lock`` (:meth:`acquire`; :meth:`release` or process exit frees it)."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, run_dir: Path, wait_s: float = 15.0) -> "RunLock":
        """Take the lock without blocking on a live holder.

        A holder that has exited while its forked children (DataLoader workers) still keep
        the lock is waited for up to ``wait_s`` seconds.

        Raises:
            RunDirBusy: another process holds it (names the directory and its PID and host).
        """
        path = Path(run_dir) / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    pid, host = _holder(fd)
                    if _gone(pid, host) and time.monotonic() < deadline:
                        time.sleep(0.2)
                        continue
                    who = f"process {pid} on {host or 'an unknown host'}" if pid is not None else "another process"
                    note = " (which has exited; its child processes still hold the lock)" if _gone(pid, host) else ""
                    raise RunDirBusy(f"run directory {run_dir} is in use: {who}{note} holds {path}; wait for that "
                                     f"run to finish or stop it, or choose another run_dir") from None
                except OSError as err:
                    if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                        raise
                    warnings.warn(f"cannot lock {path} ({err.strerror}): nothing stops a second run from "
                                  f"writing into {run_dir} at the same time", stacklevel=3)
                    os.close(fd)
                    return cls(path, None)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid={os.getpid()} host={socket.gethostname()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        _HELD.add(fd)
        return cls(path, fd)

    def release(self) -> None:
        """Unlock and close (the file stays)."""
        if self.fd is not None:
            _HELD.discard(self.fd)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def remove_stale_temps(run_dir: Path) -> list[Path]:
    """Delete the leftover temporary files of the run's own atomic writes; returns them.
    Call only while holding the lock (no other writer can own them then)."""
    found = temp_files(run_dir, RUN_FILES) + temp_files(checkpoint_dir(run_dir), CHECKPOINT_NAMES)
    for path in found:
        path.unlink(missing_ok=True)
    return found


class RunDirectory:
    """The run directory as one run uses it: lock, checkpoint choice and the first writes.

    Every rank calls every method (failures on rank 0 are agreed on, so no rank waits forever).
    """

    def __init__(self, run_dir: Path, ctx: DistContext) -> None:
        self.run_dir, self.ctx = Path(run_dir), ctx
        self.lock: RunLock | None = None

    def _lock(self) -> None:
        if self.lock is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.lock = RunLock.acquire(self.run_dir)

    def lock_existing(self) -> None:
        """Take the lock now when the run directory exists (before reading its checkpoints)."""
        run_on_main(self.ctx, lambda: self._lock() if self.run_dir.is_dir() else None, f"lock {self.run_dir}")

    def open(self, resume: bool) -> ResumePoint | None:
        """Read only: the checkpoint to resume from, or check that a fresh start may begin here."""
        if resume:
            return choose_resume(self.run_dir)
        refuse_fresh_start(self.run_dir)
        return None

    def claim(self, point: ResumePoint | None, write_config: Callable[[Path], None]) -> None:
        """After the run has been validated: lock (if not yet), re-check, remove stale temporary
        files, set corrupt checkpoints aside (warning about both) and write ``config.yaml``."""
        def claim() -> None:
            self._lock()
            if point is None:
                refuse_fresh_start(self.run_dir)  # a run may have started here since open()
            removed = remove_stale_temps(self.run_dir)
            if removed:
                warnings.warn(f"removed {len(removed)} temporary file(s) left by an interrupted write: "
                              f"{', '.join(str(p) for p in removed)}", stacklevel=4)
            if point is not None and point.skipped:
                moved = set_aside([path for path, _ in point.skipped])
                renamed = {old: new for old, new in moved}
                notes = "; ".join(f"{path} ({reason}) set aside as {renamed[path].name}" if path in renamed
                                  else f"{path} ({reason})" for path, reason in point.skipped)
                warnings.warn(f"resuming from {point.path} (step {point.data['step']}): skipped unusable "
                              f"checkpoint(s): {notes}", stacklevel=4)
            write_config(self.run_dir / "config.yaml")
        run_on_main(self.ctx, claim, f"prepare {self.run_dir}")

    def release(self) -> None:
        """Free the lock (rank 0; no-op elsewhere)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None
