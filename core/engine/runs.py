"""Named runs under one output directory: pre-train a model, resume it, or reuse it when done.

The quickstarts and comparison jobs pre-train several models with one shared budget
(``overrides``) plus each model's own overrides, into ``out/<label>/``. Rerunning the job
resumes an interrupted run from its last checkpoint and reuses a finished one.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

from core.config import load_yaml, to_plain
from core.engine.checkpoint import checkpoint_dir, has_checkpoints
from core.engine.config import PretrainConfig, changed_keys, load_config
from core.engine.loop import pretrain
from core.errors import RunError
from core.modality import Modality


class RunStoppedEarly(RunError, RuntimeError):
    """A named run stopped before its last step (SIGTERM, ``train.stop_at``); rerunning resumes it."""


def run_config(label: str, out: Path, config_path: str | Path | None, overrides: Sequence[str],
               model_overrides: Sequence[str]) -> PretrainConfig:
    """The validated config of model ``label``: ``config_path`` + shared ``overrides`` +
    ``run_dir=out/label`` + the model's overrides (last, so they win)."""
    return load_config(config_path, [*overrides, f"run_dir={Path(out) / label}", *model_overrides])


def warn_if_config_changed(run_dir: Path, config: PretrainConfig) -> None:
    """Warn when ``run_dir/config.yaml`` (a finished run's) differs from ``config`` (names the keys)."""
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return
    changed = [k for k in changed_keys(load_yaml(saved), to_plain(config.to_dict())) if k != "train.stop_at"]
    if changed:
        warnings.warn(f"reusing the finished run {run_dir}, whose config differs from the one asked for in "
                      f"{changed}; delete {run_dir} to train it with the new settings", UserWarning, stacklevel=3)


def train_or_reuse(label: str, out: Path, config_path: str | Path | None, overrides: Sequence[str],
                   model_overrides: Sequence[str], make_modality: Callable[[PretrainConfig], Modality],
                   progress: bool = True) -> Path:
    """Pre-train model ``label`` into ``out/label``, resuming an interrupted run or reusing a finished one.

    Returns:
        The run's ``encoder.pt``.

    Raises:
        RunStoppedEarly: the run stopped early (SIGTERM, ``train.stop_at``); rerunning resumes it.
    """
    run_dir = Path(out) / label
    encoder_path = run_dir / "encoder.pt"
    config = run_config(label, out, config_path, overrides, model_overrides)
    if encoder_path.is_file():
        print(f"[{label}] reusing the finished run {run_dir} (delete it to train again)")
        warn_if_config_changed(run_dir, config)
        return encoder_path
    resume = has_checkpoints(checkpoint_dir(run_dir))  # last.pt or a step file: resume picks the newest good one
    print(f"[{label}] {'resuming' if resume else 'pre-training'}: {config.train.steps} steps of batch "
          f"{config.train.batch_size}, descriptor mode {config.descriptor.mode!r}, run dir {run_dir}")
    start = time.perf_counter()
    result = pretrain(config, make_modality(config), resume=resume, progress=progress)
    if result.encoder_path is None:
        raise RunStoppedEarly(f"[{label}] the run stopped early ({result.stopped}); rerun to resume it")
    print(f"[{label}] done in {time.perf_counter() - start:.0f} s")
    return Path(result.encoder_path)
