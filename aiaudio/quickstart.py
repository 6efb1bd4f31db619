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

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from aiaudio.clips import AudioClips, frontend_from_extra
from aiaudio.data import open_dataset
from aiaudio.data.synthetic import FACTOR_CLASSES, FACTORS, TASKS
from aiaudio.modality import make_audio_modality
from core.demo import format_table
from core.downstream.fewshot import FewShotConfig, run_fewshot
from core.encoders.serialise import read_encoder_file
from core.engine.config import load_config
from core.engine.loop import pretrain

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
    seed: int = 0


def train_model(label: str, out: Path, overrides: Sequence[str], progress: bool) -> Path:
    """Pre-train one quickstart model into ``out/label`` (resuming or reusing a finished run)."""
    run_dir = out / label
    encoder_path = run_dir / "encoder.pt"
    if encoder_path.is_file():
        print(f"[{label}] reusing the finished run {run_dir} (delete it to train again)")
        return encoder_path
    resume = (run_dir / "checkpoints" / "last.pt").is_file()
    config = load_config(CONFIG, [*overrides, f"run_dir={run_dir}", *MODELS[label]])
    print(f"[{label}] {'resuming' if resume else 'pre-training'}: {config.train.steps} steps of batch "
          f"{config.train.batch_size}, descriptor mode {config.descriptor.mode!r}, run dir {run_dir}")
    start = time.perf_counter()
    result = pretrain(config, make_audio_modality(config), resume=resume, progress=progress)
    if result.encoder_path is None:
        raise RuntimeError(f"[{label}] the run stopped early ({result.stopped}); rerun to resume it")
    print(f"[{label}] done in {time.perf_counter() - start:.0f} s")
    return Path(result.encoder_path)


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
    loaded = {}
    for label, path in encoders.items():
        encoder, extra = read_encoder_file(path)
        frontend = frontend_from_extra(extra, path)
        if frontend is None or not frontend.fitted:
            raise ValueError(f"{path}: encoder file without a fitted front end; rerun the quickstart")
        loaded[label] = (encoder.eval(), frontend)
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
                                   train_episodes=settings.train_episodes, inner_steps=settings.inner_steps)
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


def report(rows: list[dict[str, Any]]) -> str:
    """The table of tasks x models, with the descriptor each task chose."""
    names = rows[0]["descriptor_names"]
    short = {"pitch_shift": "pitch", "fade_in": "fin", "fade_out": "fout", "noise": "noise",
             "time_mask": "mask", "time_shift": "shift", "time_stretch": "stretch"}
    table = []
    for row in rows:
        cells = dict(row)
        for key in ("simclr", "ai_ones", "ai_learned"):
            cells[f"{key}_s"] = f"{100 * row[key]:.1f} ± {100 * row[f'{key}_ci95']:.1f}"
        cells["learned"] = " ".join(f"{v:.2f}" for v in row["descriptor"])
        cells["expect"] = ", ".join(short.get(n, n) for n in row["sensitive_to"]) or "-"
        table.append(cells)
    columns = [("task", "task", "s"), ("ways", "ways", "d"), ("simclr_s", "SimCLR", "s"),
               ("ai_ones_s", "AI-SimCLR i=1", "s"), ("ai_learned_s", "AI-SimCLR learned i", "s"),
               ("learned", "learned i (" + " ".join(short.get(n, n) for n in names) + ")", "s"),
               ("expect", "should be sensitive to (i -> 0)", "s")]
    return format_table(table, columns)


def plots(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """``fewshot.png`` (grouped bars with 95 % intervals) and ``descriptors.png`` (radar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.analysis.plots import radar_plot

    keys = [("simclr", "SimCLR"), ("ai_ones", "AI-SimCLR, i = 1"), ("ai_learned", "AI-SimCLR, learned i")]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(keys)
    for k, (key, label) in enumerate(keys):
        xs = [i + (k - 1) * width for i in range(len(rows))]
        ax.bar(xs, [100 * r[key] for r in rows], width, yerr=[100 * r[f"{key}_ci95"] for r in rows],
               label=label, capsize=2)
    ax.set_xticks(range(len(rows)), [f"{r['task']}\n({r['ways']}-way)" for r in rows])
    ax.set_ylabel("few-shot accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    bars = out / "fewshot.png"
    fig.savefig(bars, dpi=120)
    plt.close(fig)
    radar = radar_plot({r["task"]: r["descriptor"] for r in rows}, rows[0]["descriptor_names"],
                       out / "descriptors.png", title="descriptor learned per task (1 = invariant)")
    return [bars, radar]


def run_quickstart(out: str | Path = "runs/quickstart", overrides: Sequence[str] = (),
                   settings: EvalSettings | None = None, tasks: Sequence[str] = FACTORS,
                   progress: bool = True) -> dict[str, Any]:
    """Pre-train both models (or reuse/resume them), evaluate, print and write the results."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = settings or EvalSettings()
    unknown = [t for t in tasks if t not in FACTORS]
    if unknown:
        raise ValueError(f"quickstart: unknown task {unknown[0]!r}; the synthetic tasks are {list(FACTORS)}")
    start = time.perf_counter()
    encoders = {label: train_model(label, out, overrides, progress) for label in MODELS}
    print(f"few-shot evaluation ({settings.shots}-shot, {settings.queries} queries, {settings.episodes} "
          f"episodes per task, ridge readout, fresh clips)...")
    rows = evaluate(encoders, settings, tasks, progress=progress)
    table = report(rows)
    print(table)
    figures = plots(rows, out)
    results = {"settings": asdict(settings), "overrides": list(overrides), "rows": rows,
               "encoders": {k: str(v) for k, v in encoders.items()}, "wall_s": time.perf_counter() - start}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.txt").write_text(table + "\n")
    print(f"\nwritten: {out / 'results.json'}, {out / 'results.txt'}, " + ", ".join(str(f) for f in figures)
          + f"; run dirs (metrics.csv, loss.png, tensorboard/): {', '.join(str(out / m) for m in MODELS)}")
    print(f"total {results['wall_s'] / 60:.1f} min")
    return results

