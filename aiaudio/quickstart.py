"""The quickstart job: pre-train on built-in synthetic audio, then evaluate each synthetic task.

Two models are pre-trained with the same budget from ``aiaudio/configs/quickstart.yaml``:
AI-SimCLR (a binary descriptor sampled per step) and the default SimCLR baseline (the
descriptor fixed to all ones). Each synthetic factor (family, pitch, onset, duration,
loudness, noise) is then a few-shot task on fresh clips: the baseline and AI-SimCLR with the
all-ones descriptor are read out as they are, and AI-SimCLR also learns the task's descriptor
on labelled episodes of separate training clips ("dataset" mode). The printed table shows
accuracy per task and model and the descriptor each task chose; ``results.json``,
``fewshot.png`` and ``descriptors.png`` land in the output directory.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from aiaudio.clips import AudioClips, frontend_from_extra
from aiaudio.data import open_dataset
from aiaudio.data.synthetic import FACTOR_CLASSES, FACTORS, TASKS
from aiaudio.modality import make_audio_modality
from core.errors import UsageError
from core.analysis.quickstart_report import fewshot_bars, fewshot_table, write_results
from core.downstream.fewshot import FewShotConfig, run_fewshot
from core.encoders.serialise import read_encoder_file
from core.engine import runs
from core.engine.config import PretrainConfig

CONFIG = Path(__file__).parent / "configs" / "quickstart.yaml"
# label -> overrides that make the model; both share every other setting (same budget).
MODELS: dict[str, list[str]] = {
    "simclr": ["descriptor.mode=fixed", "descriptor.fixed=null"],
    "ai_simclr": ["descriptor.mode=sample"],
}
# Seeds of the evaluation clips: never the pre-training clips (seed 0) or the monitor's (1).
TEST_SEED, TRAIN_SEED = 101, 102


@dataclass
class EvalSettings:
    """Few-shot settings of the quickstart's evaluation (5 shots keep 100 episodes stable)."""

    clips: int = 300             # fresh clips per task for test episodes (and as many for training)
    seconds: float = 2.0         # length of the built-in clips (one piece each)
    max_ways: int = 5            # ways = min(max_ways, classes of the factor)
    shots: int = 5
    queries: int = 10
    episodes: int = 100
    train_episodes: int = 60     # training-class episodes the "dataset" descriptor is learned on
    inner_steps: int = 20
    descriptor_init: float = 0.5  # start of every entry of the learned descriptor
    seed: int = 0


def run_config(label: str, out: Path, overrides: Sequence[str], model_overrides: Sequence[str] | None = None,
               config_path: str | Path = CONFIG) -> PretrainConfig:
    """The validated pre-training config of model ``label`` in ``out/label`` (see :func:`train_model`)."""
    model = MODELS[label] if model_overrides is None else model_overrides
    return runs.run_config(label, out, config_path, overrides, model)


def train_model(label: str, out: Path, overrides: Sequence[str], progress: bool,
                model_overrides: Sequence[str] | None = None, config_path: str | Path = CONFIG) -> Path:
    """Pre-train one audio model into ``out/label``, resuming an interrupted run or reusing a
    finished one (``core.engine.runs.train_or_reuse``; a reused run whose saved config differs
    from the one asked for gives a warning naming the keys).

    Args:
        label: the model's name (its run directory under ``out``).
        out: the output directory.
        overrides: ``a.b=value`` overrides shared by every model (budget, data, seed).
        progress: show the engine's progress bar.
        model_overrides: the overrides that make this model (default: ``MODELS[label]``); they
            come last, so they win over ``overrides``.
        config_path: the base YAML (default ``aiaudio/configs/quickstart.yaml``).

    Returns:
        The run's ``encoder.pt``.

    Raises:
        RuntimeError: the run stopped early (SIGTERM, ``train.stop_at``); rerunning resumes it.
    """
    model = MODELS[label] if model_overrides is None else model_overrides
    return runs.train_or_reuse(label, out, config_path, overrides, model, make_audio_modality, progress)


def load_model(path: str | Path) -> tuple[Any, Any]:
    """``(encoder in eval mode, fitted front end)`` of a finished run's ``encoder.pt``.

    Raises:
        ValueError: the file stores no fitted front end (names the file).
    """
    encoder, extra = read_encoder_file(path)
    frontend = frontend_from_extra(extra, path)
    if frontend is None or not frontend.fitted:
        raise UsageError(f"{path}: encoder file without a fitted front end; delete its run directory and rerun")
    return encoder.eval(), frontend


def task_clips(task: str, frontend: Any, settings: EvalSettings, seed: int) -> AudioClips:
    """Fresh synthetic clips labelled by ``task``, as log-mel clips for ``frontend``."""
    spec = f"synthetic?n_clips={settings.clips}&seconds={settings.seconds}&seed={seed}&label={task}"
    return AudioClips(open_dataset(spec), frontend, seconds=settings.seconds)


def evaluate(encoders: dict[str, Path], settings: EvalSettings, tasks: Sequence[str] = FACTORS,
             progress: bool = False) -> list[dict[str, Any]]:
    """Few-shot accuracy per task for the baseline, AI-SimCLR (ones) and AI-SimCLR (learned).

    Returns:
        One row per task: ``task``, ``ways``, the three accuracies and 95 % intervals
        (fractions), ``descriptor`` (the learned one) and the task's expected sensitivities.
    """
    loaded = {label: load_model(path) for label, path in encoders.items()}
    names = list(loaded["ai_simclr"][0].space.names)
    runs = [("simclr", "simclr", "fixed:ones"), ("ai_ones", "ai_simclr", "fixed:ones"),
            ("ai_learned", "ai_simclr", "dataset")]
    rows = []
    for task in tasks:
        ways = min(settings.max_ways, len(FACTOR_CLASSES[task]))
        row: dict[str, Any] = {"task": task, "ways": ways, "sensitive_to": list(TASKS[task].sensitive_to),
                               "invariant_to": list(TASKS[task].invariant_to)}
        clips: dict[tuple[str, int], AudioClips] = {}  # per model and seed: log-mels computed once per task

        def task_clips_of(model: str, seed: int) -> AudioClips:
            if (model, seed) not in clips:
                clips[model, seed] = task_clips(task, loaded[model][1], settings, seed)
            return clips[model, seed]

        for key, model, descriptor in runs:
            encoder = loaded[model][0]
            test = task_clips_of(model, TEST_SEED)
            train = task_clips_of(model, TRAIN_SEED) if descriptor == "dataset" else None
            config = FewShotConfig(ways=ways, shots=settings.shots, queries=settings.queries,
                                   episodes=settings.episodes, seed=settings.seed, descriptor=descriptor,
                                   train_episodes=settings.train_episodes, inner_steps=settings.inner_steps,
                                   descriptor_init=settings.descriptor_init)
            result = run_fewshot(encoder, test, config, train=train, progress=progress)
            row[key], row[f"{key}_ci95"] = result.accuracy, result.ci95
            if descriptor == "dataset":
                row["descriptor"] = [round(float(v), 3) for v in result.descriptor]
        rows.append(row)
        if progress:
            print(f"  {task}: simclr {row['simclr']:.1%}, ai ones {row['ai_ones']:.1%}, "
                  f"ai learned {row['ai_learned']:.1%}")
    for row in rows:
        row["descriptor_names"] = names
    return rows


SHORT = {"pitch_shift": "pitch", "fade_in": "fin", "fade_out": "fout", "noise": "noise", "time_mask": "mask",
         "time_shift": "shift", "time_stretch": "stretch"}


def report(rows: list[dict[str, Any]]) -> str:
    """The table of tasks x models, with the descriptor each task chose."""
    return fewshot_table(rows, SHORT)


def plots(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """``fewshot.png`` (grouped bars with 95 % intervals) and ``descriptors.png`` (radar)."""
    from core.analysis.plots import radar_plot

    radar = radar_plot({r["task"]: r["descriptor"] for r in rows}, rows[0]["descriptor_names"],
                       out / "descriptors.png", title="descriptor learned per task (1 = invariant)")
    return [fewshot_bars(rows, out / "fewshot.png"), radar]


def run_quickstart(out: str | Path = "runs/quickstart", overrides: Sequence[str] = (),
                   settings: EvalSettings | None = None, tasks: Sequence[str] = FACTORS,
                   progress: bool = True) -> dict[str, Any]:
    """Pre-train both models (or reuse/resume them), evaluate, print and write the results."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = settings or EvalSettings()
    unknown = [t for t in tasks if t not in FACTORS]
    if unknown:
        raise UsageError(f"quickstart: unknown task {unknown[0]!r}; the synthetic tasks are {list(FACTORS)}")
    start = time.perf_counter()
    encoders = {label: train_model(label, out, overrides, progress) for label in MODELS}
    print(f"few-shot evaluation ({settings.shots}-shot, {settings.queries} queries, {settings.episodes} "
          f"episodes per task, ridge readout, fresh clips)...")
    rows = evaluate(encoders, settings, tasks, progress=progress)
    table = report(rows)
    print(table)
    figures = plots(rows, out)
    results = {"settings": asdict(settings), "overrides": list(overrides), "rows": rows,
               "encoders": {k: str(v) for k, v in encoders.items()}}
    write_results(out, results, table, figures, list(MODELS), start)
    return results

