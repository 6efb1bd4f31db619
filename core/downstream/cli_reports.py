"""Configs from parsed flags, and the printed tables and JSON reports of the downstream
commands, shared by ``aiaudio`` and ``aivision`` (each adds its own data fields)."""
from __future__ import annotations

import argparse
from typing import Any

from core.downstream.cli_common import descriptor_table, metric_columns, table, write_json

COST_COLUMNS = [("trainable_params", "trainable params", "d"), ("wall_s", "wall s", ".1f"), ("peak_mb", "peak MB", ".0f")]


def fewshot_config(args: argparse.Namespace) -> Any:
    """``FewShotConfig`` from ``fewshot``'s flags (``core.downstream.cli_options.add_fewshot_options``)."""
    from core.downstream.fewshot import FewShotConfig

    return FewShotConfig(ways=args.ways, shots=args.shots, queries=args.queries, episodes=args.episodes,
                         seed=args.seed, readout=args.readout, ridge_lambda=args.ridge_lambda,
                         descriptor=args.descriptor, train_episodes=args.train_episodes,
                         inner_steps=args.inner_steps, descriptor_lr=args.descriptor_lr, batch_size=args.batch_size)


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
