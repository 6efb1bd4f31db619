"""Which checkpoint a run resumes from, and whether it fits the run.

:func:`choose_resume` takes the newest good checkpoint (see :mod:`core.engine.checkpoint`):
``last.pt``, unless a good ``step_*.pt`` is newer, else the newest good step file. The files
it skipped as corrupt are never deleted or overwritten: once the run has been validated,
:func:`set_aside` renames them to ``<name>.corrupt`` (``.corrupt.1``, ... when taken) so that
neither the next checkpoint nor pruning touches them, and a warning names them. With no good
checkpoint, :class:`NothingToResume` names every file tried. A good checkpoint written for
another space or architecture is a :class:`CheckpointMismatch`, not a corrupt file: nothing
falls back and nothing is moved. Without ``--resume``, a run directory holding ``last.pt`` or
any step file (good or not) is refused (:class:`CheckpointsExist`); ``--resume`` continues it.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.config import to_plain
from core.engine.checkpoint import (LAST, CheckpointError, CheckpointMismatch, checkpoint_dir, has_checkpoints,
                                    step_files, verify_checkpoint)
from core.engine.config import PretrainConfig, changed_keys
from core.errors import UserError
from core.invariance import InvarianceSpace


class NothingToResume(UserError, FileNotFoundError):
    """``--resume`` found no good checkpoint; names the files tried."""


class CheckpointsExist(UserError, FileExistsError):
    """A fresh start into a run directory that holds checkpoints."""


@dataclass
class ResumePoint:
    """The checkpoint to resume from: its file, its contents and the ``(file, reason)`` skipped."""
    path: Path
    data: dict[str, Any]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 200 else text[:197] + "..."


def choose_resume(run_dir: Path) -> ResumePoint:
    """The newest good checkpoint of ``run_dir`` (read only; see the module docstring).

    Raises:
        NothingToResume: no run directory, no checkpoint, or none good (names what was tried).
    """
    ckpt_dir = checkpoint_dir(run_dir)
    last = ckpt_dir / LAST
    hint = "start without --resume, or point run_dir at the run to continue"
    if not Path(run_dir).is_dir():
        raise NothingToResume(f"cannot resume: no checkpoint {last} (the run directory {run_dir} does not exist; "
                              f"{hint})")
    skipped: list[tuple[Path, str]] = []
    last_data = None
    if last.exists():
        try:
            last_data = verify_checkpoint(last)
        except (CheckpointError, OSError) as err:
            skipped.append((last, _reason(err)))
    for step, path in reversed(step_files(ckpt_dir)):
        if last_data is not None and step <= int(last_data["step"]):
            break
        try:
            return ResumePoint(path, verify_checkpoint(path), skipped)
        except (CheckpointError, OSError) as err:
            skipped.append((path, _reason(err)))
    if last_data is not None:
        return ResumePoint(last, last_data, skipped)
    if not skipped:
        raise NothingToResume(f"cannot resume: no checkpoint {last} nor step_*.pt in {ckpt_dir} ({hint})")
    tried = "; ".join(f"{path.name}: {reason}" for path, reason in skipped)
    raise NothingToResume(f"cannot resume from {ckpt_dir}: no checkpoint there is usable (tried {tried}); move "
                          f"those files away and start without --resume to train from scratch, or choose "
                          f"another run_dir")


def refuse_fresh_start(run_dir: Path) -> None:
    """Raise :class:`CheckpointsExist` when ``run_dir`` holds checkpoints (naming them)."""
    ckpt_dir = checkpoint_dir(run_dir)
    if has_checkpoints(ckpt_dir):
        names = [p.name for p in (ckpt_dir / LAST,) if p.exists()] + [p.name for _, p in step_files(ckpt_dir)]
        raise CheckpointsExist(f"{ckpt_dir} already holds checkpoints; resume that run (--resume continues from "
                               f"the newest good one of {', '.join(names)}) or choose another run_dir")


def set_aside(paths: list[Path]) -> list[tuple[Path, Path]]:
    """Rename each existing file to ``<name>.corrupt`` (or ``.corrupt.N``); returns ``(old, new)`` pairs."""
    moved = []
    for path in paths:
        if not path.exists():
            continue
        target, n = path.with_name(f"{path.name}.corrupt"), 1
        while target.exists():
            target, n = path.with_name(f"{path.name}.corrupt.{n}"), n + 1
        os.rename(path, target)
        moved.append((path, target))
    return moved


def check_fits(point: ResumePoint, config: PretrainConfig, space: InvarianceSpace, world_size: int,
               warn: bool) -> None:
    """Refuse a checkpoint of another invariance space; warn (when ``warn``) about config keys
    that differ and about another world size (the data order changes)."""
    ckpt, path = point.data, point.path
    meta = ckpt["encoder_meta"]
    stored = meta.get("space") if isinstance(meta, dict) else None
    if stored != space.to_dict():
        raise CheckpointMismatch(f"checkpoint {path} was written for the invariance space {stored}, not this "
                                 f"run's {space.to_dict()}: resume it with its own modality or choose another run_dir")
    changed = changed_keys(ckpt["config"], to_plain(config.to_dict()))
    if changed and warn:
        warnings.warn(f"resuming {path} with a config that differs in {changed}", stacklevel=4)
    if warn and ckpt.get("world_size", world_size) != world_size:
        warnings.warn(f"resuming {path} written by {ckpt['world_size']} rank(s) on {world_size}: the data "
                      f"order changes", stacklevel=4)


def load_fitting(point: ResumePoint, config: PretrainConfig, load: Callable[[], Any]) -> None:
    """Run ``load()`` (state into the built run); a checkpoint that does not fit is a CheckpointMismatch
    naming the file and the config keys it was written with other values of."""
    try:
        load()
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:
        changed = changed_keys(point.data["config"], to_plain(config.to_dict()))
        first = " ".join(str(err).split())[:300]
        raise CheckpointMismatch(
            f"checkpoint {point.path} does not fit this config ({type(err).__name__}: {first}); it was written "
            f"with other values of {changed or 'no config key'}: resume with the run's own config "
            f"({Path(config.run_dir) / 'config.yaml'}) or choose another run_dir") from err

