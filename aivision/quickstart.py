"""The vision quickstart: pre-train on built-in synthetic images, then evaluate each factor task.

Two models are pre-trained with the same budget from ``aivision/configs/quickstart.yaml``:
AI-SimCLR (a descriptor over ``[spatial, appearance]`` sampled per step) and the default
SimCLR baseline (the descriptor fixed to all ones). Each synthetic factor (shape, colour,
orientation, position, size) is then a few-shot task on fresh images: the baseline and
AI-SimCLR with the all-ones descriptor are read out as they are, and AI-SimCLR also learns
the task's descriptor on labelled episodes of separate training images ("dataset" mode).
The factors want opposite invariances (``EXPECTED``): colour is destroyed by the appearance
group (jitter, grayscale), orientation by flips, position and size by crops, while shape
survives both groups. ``results.json``, ``results.txt``, ``fewshot.png`` and
``descriptors.png`` land in the output directory.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from aivision.modality import make_vision_modality
from aivision.synthetic import FACTORS, SyntheticImageConfig, factor_names, synthesise
from core.errors import UsageError
from core.analysis.plots import grouped_bars
from core.analysis.quickstart_report import fewshot_bars, fewshot_table, write_results
from core.downstream.clips import TensorClips
from core.downstream.fewshot import FewShotConfig, run_fewshot
from core.encoders.serialise import read_encoder_file
from core.engine.runs import train_or_reuse

CONFIG = Path(__file__).parent / "configs" / "quickstart.yaml"
MODELS: dict[str, list[str]] = {"simclr": ["descriptor.mode=fixed"], "ai_simclr": ["descriptor.mode=sample"]}
# What each factor's task should be sensitive to (descriptor entry -> 0).
EXPECTED: dict[str, tuple[str, ...]] = {"shape": (), "colour": ("appearance",), "orientation": ("spatial",),
                                        "position": ("spatial",), "size": ("spatial",)}
# Image index offsets of the evaluation sets: disjoint from pre-training (0..) and the monitor.
TEST_OFFSET, TRAIN_OFFSET = 1_000_000, 2_000_000


@dataclass
class EvalSettings:
    """Few-shot settings of the quickstart's evaluation."""

    images: int = 300            # fresh images per task for test episodes (and as many for training)
    max_ways: int = 5            # ways = min(max_ways, classes of the factor)
    shots: int = 5
    queries: int = 10
    episodes: int = 100
    train_episodes: int = 60     # training-image episodes the "dataset" descriptor is learned on
    inner_steps: int = 20
    seed: int = 0


def load_model(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """``(encoder in eval mode, extra)`` of a finished run's ``encoder.pt``.

    Raises:
        ValueError: the file stores no vision input pipeline (names the file).
    """
    encoder, extra = read_encoder_file(path)
    if extra.get("modality") != "vision":
        raise UsageError(f"{path}: not a vision encoder file (extra has no modality 'vision'); delete its run "
                         "directory and rerun")
    return encoder.eval(), extra


def encoder_inputs(extra: dict[str, Any], settings: EvalSettings, offset: int) -> tuple[Tensor, dict[str, Tensor]]:
    """Fresh synthetic images (indices from ``offset``) rendered at the run's ``load_size`` and
    prepared as ``extra``'s pipeline does: ``(inputs (N, 3, S, S), factors {name: (N,)})``."""
    from aivision.augment.ops import normalize, to_unit_float
    from aivision.images import resize_center_crop

    config = SyntheticImageConfig(n_images=settings.images, size=int(extra.get("load_size", 32)), offset=offset)
    images, factors = synthesise(range(offset, offset + settings.images), config)
    side = int(extra["image_size"])
    x = torch.stack([resize_center_crop(image, side) for image in images]) if images.shape[-1] != side else images
    x = to_unit_float(x)
    return (normalize(x, extra["mean"], extra["std"]) if extra.get("normalize", True) else x), factors


def evaluate(encoders: dict[str, Path], settings: EvalSettings, tasks: Sequence[str],
             progress: bool = False) -> list[dict[str, Any]]:
    """Few-shot accuracy per task for the baseline, AI-SimCLR (ones) and AI-SimCLR (learned).

    The test and training images are rendered and prepared once per model and serve every
    task (only the labels differ).

    Returns:
        One row per task: ``task``, ``ways``, the three accuracies and 95 % intervals
        (fractions), the learned ``descriptor`` and the entries it should be sensitive to.
    """
    loaded = {label: load_model(path) for label, path in encoders.items()}
    names = list(loaded["ai_simclr"][0].space.names)
    runs = [("simclr", "simclr", "fixed:ones"), ("ai_ones", "ai_simclr", "fixed:ones"),
            ("ai_learned", "ai_simclr", "dataset")]
    classes = factor_names(SyntheticImageConfig())
    inputs = {(model, offset): encoder_inputs(loaded[model][1], settings, offset)
              for model in loaded for offset in (TEST_OFFSET, TRAIN_OFFSET)}

    def clips(model: str, offset: int, task: str) -> TensorClips:
        x, factors = inputs[model, offset]
        return TensorClips(x, factors[task], class_names=classes[task])

    rows = []
    for task in tasks:
        ways = min(settings.max_ways, len(classes[task]))
        row: dict[str, Any] = {"task": task, "ways": ways, "sensitive_to": list(EXPECTED[task]),
                               "descriptor_names": names}
        for key, model, descriptor in runs:
            encoder = loaded[model][0]
            test = clips(model, TEST_OFFSET, task)
            train = clips(model, TRAIN_OFFSET, task) if descriptor == "dataset" else None
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
    return rows


def report(rows: list[dict[str, Any]]) -> str:
    """The table of tasks x models, with the descriptor each task chose."""
    return fewshot_table(rows)


def plots(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """``fewshot.png`` (accuracy per task and model, 95 % intervals) and ``descriptors.png``."""
    names = rows[0]["descriptor_names"]
    learned = grouped_bars([r["task"] for r in rows], {n: [r["descriptor"][i] for r in rows] for i, n in enumerate(names)},
                           out / "descriptors.png", ylabel="learned descriptor (1 = invariant)", ylim=(0, 1),
                           title="descriptor learned per task")
    return [fewshot_bars(rows, out / "fewshot.png"), learned]


def run_quickstart(out: str | Path = "runs/quickstart_vision", overrides: Sequence[str] = (),
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
    encoders = {label: train_or_reuse(label, out, CONFIG, overrides, model, make_vision_modality, progress)
                for label, model in MODELS.items()}
    print(f"few-shot evaluation ({settings.shots}-shot, {settings.queries} queries, {settings.episodes} "
          f"episodes per task, ridge readout, fresh images)...")
    rows = evaluate(encoders, settings, tasks, progress=progress)
    table = report(rows)
    print(table)
    figures = plots(rows, out)
    results = {"settings": asdict(settings), "overrides": list(overrides), "rows": rows,
               "encoders": {k: str(v) for k, v in encoders.items()}}
    write_results(out, results, table, figures, list(MODELS), start)
    return results
