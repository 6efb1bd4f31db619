"""Configs from parsed flags, and the printed tables and JSON reports of the downstream
commands, shared by ``aiaudio`` and ``aivision`` (each adds its own data fields)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.downstream.cli_common import descriptor_table, metric_columns, table, write_json

COST_COLUMNS = [("trainable_params", "trainable params", "d"), ("wall_s", "wall s", ".1f"), ("peak_mb", "peak MB", ".0f")]


def fewshot_config(args: argparse.Namespace, encoder: Any = None) -> Any:
    """``FewShotConfig`` from ``fewshot``'s flags (``core.downstream.cli_options.add_fewshot_options``).

    ``--descriptor auto`` becomes :func:`core.downstream.fewshot.default_descriptor` of
    ``encoder`` (``"dataset"`` while no encoder is given, so the flags can be checked first).
    """
    from core.downstream.fewshot import FewShotConfig, default_descriptor

    descriptor = args.descriptor
    if descriptor == "auto":
        descriptor = "dataset" if encoder is None else default_descriptor(encoder)
    return FewShotConfig(ways=args.ways, shots=args.shots, queries=args.queries, episodes=args.episodes,
                         seed=args.seed, readout=args.readout, ridge_lambda=args.ridge_lambda,
                         descriptor=descriptor, train_episodes=args.train_episodes,
                         inner_steps=args.inner_steps, descriptor_lr=args.descriptor_lr, batch_size=args.batch_size,
                         descriptor_init=args.descriptor_init)


def probe_config(args: argparse.Namespace, task: str, fixed: list[float] | None) -> Any:
    """``ProbeConfig`` from ``probe``'s flags."""
    from core.downstream.probe import ProbeConfig

    return ProbeConfig(task=task, descriptor=args.descriptor, fixed=fixed, bits=args.bits, lrs=args.lrs,
                       weight_decays=args.weight_decays, descriptor_lr=args.descriptor_lr, epochs=args.epochs,
                       batch_size=args.batch_size, val_fraction=args.val_fraction, seed=args.seed, grad=args.grad,
                       micro_batch=args.micro_batch)


def finetune_config(args: argparse.Namespace, task: str, descriptor: list[float] | None) -> Any:
    """``FinetuneConfig`` from ``finetune``'s flags."""
    from core.downstream.finetune import FinetuneConfig

    return FinetuneConfig(task=task, blocks=args.blocks, descriptor=descriptor, epochs=args.epochs, lr=args.lr,
                          weight_decay=args.weight_decay, batch_size=args.batch_size, budget_s=args.budget_s,
                          seed=args.seed)


def report_fewshot(args: argparse.Namespace, config: Any, result: Any, data: dict[str, Any], header: str) -> dict:
    """Print ``header``, the few-shot table and the descriptor used; write ``--json``.

    Args:
        data: the modality's fields (split, classes, clips, input pipeline ...), merged in.

    Returns:
        The report written to ``--json``.
    """
    report: dict[str, Any] = {
        "command": "fewshot", "encoder": args.encoder, "dataset": args.dataset, **data,
        "ways": config.ways, "shots": config.shots, "queries": config.queries, "episodes": result.episodes,
        "readout": config.readout, "descriptor_mode": result.descriptor_mode, "descriptor_spec": config.descriptor,
        "accuracy": result.accuracy, "ci95": result.ci95, "descriptor": result.descriptor,
        "descriptor_names": result.descriptor_names, "seed": args.seed, "wall_s": result.wall_s,
    }
    print(header)
    print(table([report], [("ways", "ways", "d"), ("shots", "shots", "d"), ("queries", "queries", "d"),
                           ("episodes", "episodes", "d"), ("readout", "readout", "s"),
                           ("descriptor_mode", "descriptor", "s"), ("accuracy", "accuracy", ".4f"),
                           ("ci95", "ci95", ".4f"), ("wall_s", "wall s", ".1f")]))
    print("\ndescriptor used" + (" (mean over episodes)" if result.descriptor_mode == "episode" else "") + ":")
    print(descriptor_table(result.descriptor_names, result.descriptor))
    write_json(args.json, report)
    return report


def report_probe(args: argparse.Namespace, result: Any, data: dict[str, Any], header: str) -> dict:
    """Print ``header``, the probe's table (selected hyper-parameters, metrics, cost) and the
    descriptor; write ``--json``. Returns the report."""
    report = {"command": "probe", "encoder": args.encoder, "dataset": args.dataset, **data,
              "descriptor_mode": args.descriptor, **result.to_dict(), "seed": args.seed}
    print(header)
    print(table([{**report, **result.metrics}],
                [("task", "task", "s"), ("descriptor_mode", "descriptor", "s"), ("lr", "lr", "g"),
                 ("weight_decay", "weight decay", "g"), ("val_score", "val score", ".4f")]
                + metric_columns(result.metrics) + COST_COLUMNS))
    print("\ndescriptor:")
    print(descriptor_table(result.descriptor_names, result.descriptor))
    write_json(args.json, report)
    return report


def report_finetune(args: argparse.Namespace, result: Any, data: dict[str, Any], header: str) -> dict:
    """Print ``header`` and the fine-tuning table (blocks, epochs, metrics, cost); write ``--json``."""
    report = {"command": "finetune", "encoder": args.encoder, "dataset": args.dataset, **data,
              **result.to_dict(), "seed": args.seed}
    print(header)
    print(table([{**report, **result.metrics}],
                [("task", "task", "s"), ("blocks", "blocks", "s"), ("epochs_done", "epochs", "d")]
                + metric_columns(result.metrics) + COST_COLUMNS))
    if result.budget_hit:
        print(f"stopped by the wall-clock budget of {args.budget_s:g} s")
    write_json(args.json, report)
    return report


def measured_inputs(count: int, wanted: int, seed: int, what: str, dataset: str) -> list[int]:
    """The seeded, sorted choice of ``wanted`` of ``count`` inputs for ``measure``.

    Raises:
        ValueError: fewer than 2 inputs (names the dataset).
    """
    import torch

    if count < 2:
        raise ValueError(f"--dataset {dataset}: measuring needs at least 2 {what}, got {count}")
    return sorted(torch.randperm(count, generator=torch.Generator().manual_seed(seed))[:wanted].tolist())


def run_measure(args: argparse.Namespace, encoder: Any, clean: Any, prepare: Any, transforms: dict[str, Any],
                strengths: dict[str, list[float]], descriptors: dict[str, Any], units: dict[str, str],
                data: dict[str, Any], header: str, names: list[str] | None = None) -> dict:
    """Measure invariance (``core.analysis.invariance``), plot it, print the summary and write ``--json``.

    Args:
        clean: the clean inputs ``(N, ...)`` on the CPU; transforms run on ``--device``.
        prepare: the modality's inputs -> encoder inputs function.
        transforms: name -> ``fn(inputs, strength, generator)``.
        units: transform name -> unit of its strengths (shown in the table).
        data: the modality's fields for the report; ``header`` is printed first.
        names: the clean inputs' names (files), for a non-finite features error.
    """
    from core.analysis.invariance import measure_invariance, summarise_invariance
    from core.analysis.plots import invariance_plot

    bar = None
    if not args.no_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(v) for v in strengths.values()), desc="transforms x strengths")

    def on_device(transform: Any) -> Any:  # run the transform where the encoder runs; count progress
        def run(inputs: Any, strength: float, generator: Any) -> Any:
            out = transform(inputs.to(args.device), strength, generator).cpu()
            if bar is not None:
                bar.update(1)
            return out
        return run

    try:
        rows = measure_invariance(encoder, clean, prepare, {k: on_device(t) for k, t in transforms.items()},
                                  strengths, descriptors, batch_size=args.batch_size, seed=args.seed,
                                  device=args.device, names=names)
    finally:
        if bar is not None:
            bar.close()
    summary = summarise_invariance(rows)
    out_dir = Path(args.out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = invariance_plot(rows, out_dir / "invariance.png")
    bars = invariance_plot(summary, out_dir / "invariance_summary.png")
    for row in summary:
        row["unit"] = units[row["transform"]]
    print(header)
    print(table(summary, [("descriptor", "descriptor", "s"), ("transform", "transform", "s"),
                          ("cosine", "cosine", ".4f"), ("mahalanobis", "mahalanobis", ".4f"),
                          ("num_strengths", "strengths", "d"), ("unit", "strength unit", "s")]))
    print(f"\nplots: {plot} (against strength), {bars} (means)")
    report = {"command": "measure", "encoder": args.encoder, "dataset": args.dataset, **data,
              "descriptors": {k: [float(v) for v in d] for k, d in descriptors.items()},
              "descriptor_names": list(encoder.space.names), "strengths": strengths, "summary": summary,
              "rows": rows, "plots": [str(plot), str(bars)], "seed": args.seed}
    write_json(args.json, report)
    return report
