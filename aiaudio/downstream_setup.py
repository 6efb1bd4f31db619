"""Shared plumbing of the audio downstream commands (``probe``, ``fewshot``, ``measure``,
``finetune``): common flags, reading the encoder and its input pipeline, opening and
splitting the dataset, building ``AudioClips``, descriptor lists, JSON output and
one-line errors."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor

from aiaudio.space import AUDIO_AUGMENTATIONS
from core.downstream.selection import carve_splits

SPLITS = ("train", "val", "test", "all")


def add_common_args(p: argparse.ArgumentParser) -> None:
    """Flags every downstream command takes (contract K)."""
    p.add_argument("--encoder", required=True, help="encoder file (encoder.pt) or training checkpoint")
    p.add_argument("--dataset", required=True, help="dataset spec name:path?options, e.g. esc50:/data/ESC-50")
    p.add_argument("--split-file", default=None, help="MetaAudio class split (pickled [train, val, test]); "
                   "default: seeded 70/10/20 class split")
    p.add_argument("--cache", default=None, help="directory for decoded, resampled audio")
    p.add_argument("--cache-mb", type=float, default=2048.0, help="in-memory cache of computed log-mels (MB)")
    p.add_argument("--seconds", type=float, default=5.0, help="piece length: clips are cut into pieces of this "
                   "many seconds, the last zero-padded (MetaAudio: 5)")
    p.add_argument("--sample-rate", type=int, default=16000,
                   help="decode rate when the encoder file stores no front end (else the stored one is used)")
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


def add_task_args(p: argparse.ArgumentParser) -> None:
    """Flags of the commands that train on a clip-level split (probe, finetune)."""
    p.add_argument("--task", default="classification", choices=["classification", "regression"])
    p.add_argument("--target", default=None, help="regression: numeric metadata field(s) of the clips, "
                   "comma-separated (e.g. pitch_value of the synthetic set)")
    p.add_argument("--split", default="all", choices=SPLITS,
                   help="classes to use (a part of the class split, or all); clips are then split at clip level")
    p.add_argument("--val-fraction", type=float, default=0.2, help="fraction of each class's clips for validation")
    p.add_argument("--test-fraction", type=float, default=0.2, help="fraction of each class's clips for test")


def clip_split(args: argparse.Namespace, s: "AudioSetup") -> tuple[Any, list[int], list[int], list[int], str]:
    """The chosen classes' dataset and its seeded clip-level train/val/test indices."""
    data = choose_part(s, args.split, args.dataset)
    if args.task == "classification":
        labels = torch.from_numpy(data.labels)
    else:
        if not args.target:
            raise ValueError("--task regression needs --target FIELD[,FIELD] (numeric metadata of the clips)")
        labels = torch.zeros(len(data), 1)
    train, val, test = stratified_split(labels, args.val_fraction, args.test_fraction, args.seed)
    if not train or not test:
        raise ValueError(f"--dataset {args.dataset}: {len(data)} clips are too few for a train/test split")
    how = "stratified by class" if args.task == "classification" else "random"
    classes = "all classes" if args.split == "all" else f"the {args.split} classes"
    note = (f"clip-level split {how} (seed {args.seed}) of {classes}: train {len(train)}, "
            f"val {len(val)}, test {len(test)} clips")
    return data, train, val, test, note


@contextmanager
def cli_errors(command: str) -> Iterator[list[int]]:
    """Turn user-facing errors into one line on stderr and exit status 2 (``status[0]``);
    warnings are printed as ``aiaudio <command>: warning: ...``."""
    from aiaudio.data.base import BadAudioError

    status = [0]

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        print(f"aiaudio {command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            yield status
        except (OSError, ValueError, KeyError, IndexError, BadAudioError) as error:
            text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
            print(f"aiaudio {command}: error: {text}", file=sys.stderr)
            status[0] = 2


def check_device(name: str) -> str:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return name


def read_encoder(path: str, device: str) -> tuple[Any, dict[str, Any]]:
    """``(encoder in eval mode, extra)`` of an encoder file or checkpoint for the audio space.

    Raises:
        FileNotFoundError / ValueError: missing or foreign file, encoder trained on another
            space or for inputs with another channel count (names the file).
    """
    from core.encoders.serialise import read_encoder_file

    if not Path(path).expanduser().is_file():
        raise FileNotFoundError(f"--encoder {path}: no such file (give an encoder.pt or a training checkpoint)")
    encoder, extra = read_encoder_file(Path(path).expanduser(), map_location=device)
    if tuple(encoder.space.names) != AUDIO_AUGMENTATIONS:
        raise ValueError(f"{path}: the encoder was trained on the space {list(encoder.space.names)}, not the "
                         f"audio space {list(AUDIO_AUGMENTATIONS)}")
    chans = encoder.config.get("in_chans") if isinstance(getattr(encoder, "config", None), dict) else None
    if chans is not None and chans != 1:
        raise ValueError(f"{path}: the encoder takes {chans} input channels; audio log-mels have 1")
    return encoder, extra


@dataclass
class AudioSetup:
    """What a command works on: the encoder, the dataset (whole and split by class) and,
    after :func:`attach_frontend`, the front end."""
    encoder: Any
    extra: dict[str, Any]
    dataset: Any                    # the whole AudioDataset
    parts: dict[str, Any]           # "all" plus, when split, the "train"/"val"/"test" class parts
    split_note: str
    frontend: Any = None


def setup(args: argparse.Namespace) -> AudioSetup:
    """Read ``--encoder``, open ``--dataset`` at its front end's rate (``--sample-rate`` when
    the file stores none) and split it by class (``--split-file`` or the seeded 70/10/20
    split; datasets with fewer than 3 classes are not split)."""
    from aiaudio.clips import frontend_from_extra
    from aiaudio.data import open_dataset, split_dataset

    device = check_device(args.device)
    encoder, extra = read_encoder(args.encoder, device)
    stored = frontend_from_extra(extra, args.encoder)
    rate = stored.config.sample_rate if stored is not None else args.sample_rate
    data = open_dataset(args.dataset, sample_rate=rate, cache=args.cache)
    if len(data) == 0:
        raise ValueError(f"--dataset {args.dataset}: no clips")
    parts: dict[str, Any] = {"all": data}
    if args.split_file is not None or data.num_classes >= 3:
        parts.update(split_dataset(data, split_file=args.split_file, seed=args.seed))
        note = (f"class split from {args.split_file}" if args.split_file
                else f"seeded 70/10/20 class split (seed {args.seed})")
    else:
        note = "no class split (fewer than 3 classes)"
    return AudioSetup(encoder, extra, data, parts, note)


def attach_frontend(s: AudioSetup, args: argparse.Namespace, fit_data: Any) -> Any:
    """The encoder's stored front end, else one fitted on ``fit_data`` (warning naming the
    encoder file); stored in ``s.frontend`` on ``--device`` and returned."""
    from aiaudio.clips import encoder_frontend

    frontend = encoder_frontend(s.extra, args.encoder, fit_data, seconds=args.seconds,
                                progress=not args.no_progress)
    s.frontend = frontend.to(args.device)
    return s.frontend


def make_clips(s: AudioSetup, args: argparse.Namespace, data: Any, targets: Any = None) -> Any:
    """``AudioClips`` of ``data`` (regression when ``targets``: meta field names)."""
    from aiaudio.clips import AudioClips

    kwargs = {"cache_mb": args.cache_mb}
    if targets is not None:
        return AudioClips.regression(data, s.frontend, targets, seconds=args.seconds, **kwargs)
    return AudioClips(data, s.frontend, seconds=args.seconds, **kwargs)


def choose_part(s: AudioSetup, split: str, dataset: str) -> Any:
    """The class-split part ``split`` (``all`` = every class)."""
    if split not in s.parts:
        raise ValueError(f"--split {split}: {dataset} has no class split ({s.split_note}); use --split all")
    part = s.parts[split]
    if len(part) == 0:
        raise ValueError(f"--split {split}: no clips of {dataset} in that part ({s.split_note})")
    return part


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


def parse_vector(text: str, what: str) -> list[float] | None:
    """``ones`` -> None (all ones), else ``v1,...,vK`` as floats (names ``what`` on errors)."""
    if text.strip() == "ones":
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} {text!r}: expected 'ones' or {len(AUDIO_AUGMENTATIONS)} comma-separated "
                         f"numbers in [0, 1] ({', '.join(AUDIO_AUGMENTATIONS)})") from None
    if len(values) != len(AUDIO_AUGMENTATIONS) or not all(0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"{what} {text!r}: need {len(AUDIO_AUGMENTATIONS)} values in [0, 1], one per "
                         f"{', '.join(AUDIO_AUGMENTATIONS)}")
    return values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_descriptors(items: Sequence[str], space: Any) -> dict[str, Tensor]:
    """Labelled descriptors from ``--descriptors`` items, comma-joined or separate.

    Forms: ``ones``, ``zeros``, ``active:pitch_shift+noise`` (1 for the named entries),
    ``LABEL:v1,...,vK`` and ``LABEL:file.json`` (the ``descriptor`` list a ``probe`` or
    ``fewshot --json`` wrote). A bare number continues the previous item's vector, so
    ``ones,learned:0.7,0.2,...`` reads as two descriptors.
    """
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
    out: dict[str, Tensor] = {}
    for token in tokens:
        label, colon, body = token.partition(":")
        if not colon and label in ("ones", "zeros"):
            vector = space.ones() if label == "ones" else torch.zeros(space.dim)
        elif label == "active" and colon:
            names = [n for n in body.split("+") if n]
            unknown = [n for n in names if n not in space.names]
            if unknown:
                raise ValueError(f"--descriptors {token!r}: unknown augmentation {unknown[0]!r} "
                                 f"(known: {', '.join(space.names)})")
            vector, label = space.from_active(names), token
        elif colon and body.endswith(".json"):
            path = Path(body).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"--descriptors {token!r}: no such file {path}")
            try:
                values = json.loads(path.read_text())["descriptor"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"--descriptors {token!r}: {path} holds no 'descriptor' list") from None
            vector = torch.tensor(parse_vector(",".join(map(str, values)), f"--descriptors {token!r}"))
        elif colon:
            values = parse_vector(body, f"--descriptors {token!r}")
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
    """Precompute every clip of ``clips`` with a progress bar when they fit in its cache."""
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
