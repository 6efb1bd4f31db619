"""The toolkit's two kinds of named failure, and how the command line reports them.

* :class:`UserError`: the input is wrong (a file, a key, a value) and the user can fix it.
  The message names the file, key or value and says what to do. CLIs exit with status 2.
* :class:`RunError`: the input was fine but the run could not go on for a reason we can
  name (a non-finite loss, a full disk, a run directory held by another process). The
  message says what happened and what was kept. CLIs exit with status 1.

Anything else escaping a command is an internal error: the CLI prints one line naming the
exception and exits with status 1. ``--debug`` (or ``AI_DEBUG=1`` in the environment) shows
the traceback instead. Existing error classes (``ConfigError``, ``BadAudioError``, ...)
derive from one of these two while keeping their built-in bases, so older ``except
ValueError`` / ``except RuntimeError`` clauses still catch them.
"""
from __future__ import annotations

import contextlib
import errno
import os
from typing import Iterator

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USER = 2
DEBUG_ENV = "AI_DEBUG"


class UserError(Exception):
    """Bad input the user can fix; the message names the file, key or value."""

    exit_code = EXIT_USER


class RunError(Exception):
    """A run stopped for a named reason that is not the input's fault (exit status 1)."""

    exit_code = EXIT_FAILED


class UsageError(UserError, ValueError):
    """A command-line value is wrong (an unknown task, a malformed ``NAME=PATH``); names it."""


class OutputExistsError(UserError, FileExistsError):
    """An output already exists and the command was not told to replace it; the message names
    it and the flag (or keyword) that allows replacing it. Nothing was written."""


class DiskFullError(RunError, OSError):
    """Writing a file failed because the disk (or quota) is full; the message names the file."""


_debug_flag = False  # set by the command line's --debug for the command's duration (core.cli.run_cli)


@contextlib.contextmanager
def debugging(enabled: bool) -> Iterator[None]:
    """Within the block, :func:`debug_requested` is true when ``enabled`` (a ``--debug`` flag)."""
    global _debug_flag
    previous, _debug_flag = _debug_flag, bool(enabled) or _debug_flag
    try:
        yield
    finally:
        _debug_flag = previous


def debug_requested() -> bool:
    """True inside :func:`debugging` (``--debug``) or when ``AI_DEBUG`` is set to anything but
    ``""`` / ``0`` / ``false`` / ``no``: errors that a command reports itself are then re-raised
    with their traceback."""
    return _debug_flag or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` is an ``OSError`` for a full disk or exceeded quota."""
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def classify(err: BaseException) -> tuple[int, str]:
    """The exit status and one-line message for an exception that reached the command line.

    ``UserError`` / ``RunError`` carry their own status. Plain ``FileNotFoundError``,
    ``IsADirectoryError``, ``NotADirectoryError`` and ``PermissionError`` are user errors (a
    path given was wrong); a full disk is a run error. Everything else is internal (status 1).
    """
    if isinstance(err, (UserError, RunError)):
        return err.exit_code, str(err)
    if is_disk_full(err):
        name = getattr(err, "filename", None)
        where = f" while writing {name}" if name else ""
        return EXIT_FAILED, f"disk full{where}: free some space and rerun (files already written are intact)"
    if isinstance(err, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        name = getattr(err, "filename", None)
        reason = err.strerror or str(err)
        return EXIT_USER, f"{name}: {reason}" if name else str(err)
    text = str(err) or type(err).__name__
    return EXIT_FAILED, (f"internal error ({type(err).__name__}: {text}); rerun with --debug "
                         f"(or {DEBUG_ENV}=1) to see the traceback")


class BadFileError(UserError, RuntimeError):
    """A data file (audio clip, image) that cannot be used: the message is ``"<path>: <reason>"``
    and ``path`` / ``reason`` keep both parts. Each modality derives its own class from it.

    ``BadFileError(message)`` with one argument parses a ``"<path>: <reason>"`` message, also
    the traceback text torch's DataLoader hands back for a worker's error, so the error keeps
    its type and one-line message across pickling and worker processes.
    """

    def __init__(self, path: str | os.PathLike, reason: str | None = None) -> None:
        if reason is None:  # one argument: a whole "path: reason" message (pickling, DataLoader workers)
            message = worker_message(str(path), type(self))
            path, _, reason = message.partition(": ")
        super().__init__(f"{path}: {reason}" if reason else str(path))
        self.path = str(path)
        self.reason = reason


def worker_message(text: str, exc_type: type[BaseException]) -> str:
    """The original message of an exception that a torch ``DataLoader`` worker raised.

    A worker's exception reaches the main process as ``exc_type(text)`` where ``text`` is
    ``"Caught X in DataLoader worker process N.\\nOriginal Traceback ...\\n<module>.X: message"``
    (``torch._utils.ExceptionWrapper``). Exception classes whose constructor takes several
    arguments accept this single ``text`` and recover ``message`` here, so the user sees the
    one-line message the worker meant (naming the file), not a traceback.

    Returns:
        The text after the last ``<module>.<name>: `` line of the worker traceback, or ``text``
        unchanged when it is not such a wrapper text.
    """
    if not text.startswith("Caught ") or "Traceback" not in text:
        return text
    module = exc_type.__module__
    name = exc_type.__qualname__ if module in ("builtins", "__main__") else f"{module}.{exc_type.__qualname__}"
    lines = text.rstrip("\n").split("\n")
    for number in range(len(lines) - 1, -1, -1):
        if lines[number].startswith(f"{name}: "):
            return "\n".join([lines[number][len(name) + 2:], *lines[number + 1:]]).strip()
    return text
