"""Modality-free plumbing of the downstream commands (``probe``, ``fewshot``, ``measure``,
``finetune``) that ``aiaudio`` and ``aivision`` share: the common flags, argparse types,
seeded clip-level splits, descriptor lists, JSON output, tables and one-line errors.

A modality adds its own flags (front end, image size, caches) between
:func:`add_source_args` and :func:`add_run_args`, so both CLIs list the shared flags in the
same order.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor

from core.downstream.selection import carve_splits
from core.errors import EXIT_USER, RunError, UserError, classify, debug_requested


def add_source_args(p: argparse.ArgumentParser, dataset_example: str,
                    encoder_help: str = "encoder file (encoder.pt) or training checkpoint") -> None:
    """``--encoder`` and ``--dataset`` (``dataset_example``: a spec shown in the help;
    ``encoder_help``: the modality's description of what ``--encoder`` takes)."""
    p.add_argument("--encoder", required=True, help=encoder_help)
    p.add_argument("--dataset", required=True, help=f"dataset spec name:path?options, e.g. {dataset_example}")


def add_run_args(p: argparse.ArgumentParser) -> None:
    """``--seed``, ``--device``, ``--json`` and ``--no-progress``."""
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--json", default=None, help="write the printed numbers to this JSON file")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def floats_arg(text: str) -> list[float]:
    """argparse type: comma-separated numbers."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


@contextmanager
def cli_errors(prog: str, command: str, extra: tuple[type[BaseException], ...] = ()) -> Iterator[list[int]]:
    """Turn user-facing errors into one line on stderr and exit status 2 (``status[0]``).

    Caught: ``OSError``, ``ValueError``, ``KeyError``, ``IndexError`` and the ``extra`` types
    (a modality's decoding errors), printed as ``<prog> <command>: error: ...`` with status 2,
    or the status a ``UserError`` / ``RunError`` / ``OSError`` carries (:func:`core.errors.classify`);
    re-raised under ``--debug``. Warnings
    are printed as ``<prog> <command>: warning: ...``.
    """
    status = [0]

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        print(f"{prog} {command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            yield status
        except (OSError, ValueError, KeyError, IndexError, *extra) as error:
            if debug_requested():
                raise
            if isinstance(error, (UserError, RunError, OSError)):  # they carry their own status
                code, text = classify(error)
            else:  # a plain ValueError / KeyError / IndexError from the inputs a command was given
                code = EXIT_USER
                text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
            print(f"{prog} {command}: error: {text}", file=sys.stderr)
            status[0] = code


def check_device(name: str) -> str:
    """``name`` when usable; ValueError naming ``--device`` for CUDA without a GPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return name


def stratified_split(labels: Tensor, val_fraction: float, test_fraction: float, seed: int
                     ) -> tuple[list[int], list[int], list[int]]:
    """Seeded clip-level train/val/test split, stratified by class for int labels ``(N,)``
    (per class: ``round(f * n)`` clips to test, then to val, at least one kept for training);
    plain seeded shuffling for regression targets ``(N, T)``."""
    if not (0 <= val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"--val-fraction {val_fraction} and --test-fraction {test_fraction} must be in [0, 1) "
                         f"and (0, 1) with a sum below 1")
    stratify = labels.dim() == 1 and not labels.is_floating_point()
    train, test, val = carve_splits(labels, [test_fraction, val_fraction], seed, stratify)
    return train, val, test


def parse_vector(text: str, what: str, names: Sequence[str]) -> list[float] | None:
    """``ones`` -> None (all ones), else ``v1,...,vK`` (one per name) as floats.

    Raises:
        ValueError: not numbers, wrong count or outside [0, 1] (names ``what`` and the entries).
    """
    if text.strip() == "ones":
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} {text!r}: expected 'ones' or {len(names)} comma-separated "
                         f"numbers in [0, 1] ({', '.join(names)})") from None
    if len(values) != len(names) or not all(0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"{what} {text!r}: need {len(names)} values in [0, 1], one per {', '.join(names)}")
    return values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _tokens(items: Sequence[str]) -> list[str]:
    """Descriptor items split at commas, bare numbers joined to the item before them."""
    tokens: list[str] = []
    for token in ",".join(items).split(","):
        token = token.strip()
        if not token:
            continue
        if _is_number(token):
            if not tokens:
                raise ValueError(f"--descriptors: number {token} comes before any descriptor label")
            tokens[-1] += "," + token
        else:
            tokens.append(token)
    return tokens


def parse_descriptors(items: Sequence[str], space: Any) -> dict[str, Tensor]:
    """Labelled descriptors ``{label: (K,)}`` from ``--descriptors`` items, comma-joined or separate.

    Forms: ``ones``, ``zeros``, ``active:a+b`` (1 for the named entries of ``space``),
    ``LABEL:v1,...,vK`` and ``LABEL:file.json`` (the ``descriptor`` list a ``probe`` or
    ``fewshot --json`` wrote). A bare number continues the previous item's vector, so
    ``ones,learned:0.7,0.2,...`` reads as two descriptors.
    """
    names = list(space.names)
    out: dict[str, Tensor] = {}
    for token in _tokens(items):
        label, colon, body = token.partition(":")
        if not colon and label in ("ones", "zeros"):
            vector = space.ones() if label == "ones" else torch.zeros(space.dim)
        elif label == "active" and colon:
            chosen = [n for n in body.split("+") if n]
            unknown = [n for n in chosen if n not in names]
            if unknown:
                raise ValueError(f"--descriptors {token!r}: unknown augmentation {unknown[0]!r} "
                                 f"(known: {', '.join(names)})")
            vector, label = space.from_active(chosen), token
        elif colon and body.endswith(".json"):
            path = Path(body).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"--descriptors {token!r}: no such file {path}")
            try:
                values = json.loads(path.read_text())["descriptor"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"--descriptors {token!r}: {path} holds no 'descriptor' list") from None
            vector = torch.tensor(parse_vector(",".join(map(str, values)), f"--descriptors {token!r}", names))
        elif colon:
            values = parse_vector(body, f"--descriptors {token!r}", names)
            vector = space.ones() if values is None else torch.tensor(values)
        else:
            raise ValueError(f"--descriptors {token!r}: expected ones, zeros, active:a+b, LABEL:v1,...,vK "
                             f"or LABEL:file.json")
        if label in out:
            raise ValueError(f"--descriptors: label {label!r} given twice")
        out[label] = space.check(vector)
    if not out:
        raise ValueError("--descriptors: no descriptor given")
    return out


def warm_if_fits(clips: Any, progress: bool, desc: str) -> None:
    """Precompute every clip of ``clips`` (a source with ``warm`` and ``cache_bytes``) with a
    progress bar when they fit in its cache."""
    if len(clips) == 0:
        return
    first = clips.pieces([0])[0]
    if first.numel() * first.element_size() * len(clips) <= 0.8 * clips.cache_bytes:
        clips.warm(progress=progress, desc=desc)


def write_json(path: str | None, data: dict[str, Any]) -> None:
    """Write ``data`` (the printed numbers) as indented JSON, creating parent folders."""
    if path is None:
        return
    out = Path(path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, default=float) + "\n")


def descriptor_table(names: Sequence[str], values: Sequence[float]) -> str:
    """Two-column table of a descriptor's entries."""
    from core.demo import format_table

    return format_table([{"name": n, "value": float(v)} for n, v in zip(names, values)],
                        [("name", "augmentation", "s"), ("value", "descriptor", ".4f")])


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """``core.demo.format_table``: ``columns`` holds (key, header, format spec) triples."""
    from core.demo import format_table

    return format_table(rows, columns)


def metric_columns(metrics: dict[str, float]) -> list[tuple[str, str, str]]:
    """Table columns for a metrics dict (``mean_class_accuracy`` -> ``mean class accuracy``)."""
    return [(k, k.replace("_", " "), ".4f") for k in metrics]
