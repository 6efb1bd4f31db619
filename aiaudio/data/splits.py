"""Class splits for few-shot evaluation: MetaAudio's published split files or a seeded split.

MetaAudio distributes each split as ``np.save`` of ``[train, val, test]`` (numpy arrays of
class names), which numpy stores as a pickled object array. Unpickling runs code named by the
file, so these files are read with a restricted unpickler that only resolves numpy's array
and scalar constructors: a crafted file cannot import anything else. Plain pickle files of
a list/tuple of three arrays (or lists) are accepted the same way, as are non-object ``.npy``
files (a ``(3, n)`` string array) which need no pickle at all.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from core.dataspec import DatasetError, DatasetNotFoundError
from core.fileio import NumpyOnlyUnpickler

SPLITS = ("train", "val", "test")


def _read_split_object(path: Path) -> Any:
    raw = path.read_bytes()
    stream = io.BytesIO(raw)
    if raw.startswith(b"\x93NUMPY"):
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            _, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            _, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            _, _, dtype = np.lib.format._read_array_header(stream, version)  # version 3 (utf-8 names)
        if not dtype.hasobject:
            return np.load(io.BytesIO(raw), allow_pickle=False)
    return NumpyOnlyUnpickler(stream).load()


def load_class_split(path: str | Path, class_names: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Read a MetaAudio class-split file.

    Args:
        path: ``.npy`` or pickle file holding ``[train, val, test]`` arrays of class names.
        class_names: when given, every class in the file must be one of these.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` of class-name strings.

    Raises:
        DatasetNotFoundError / DatasetError: missing file, wrong structure, overlapping splits
            or classes not in ``class_names`` (all naming the file; also ``FileNotFoundError`` /
            ``ValueError``).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetNotFoundError(f"class split file {path} not found "
                                   f"(expected MetaAudio's pickled [train, val, test])")
    try:
        obj = _read_split_object(path)
    except (pickle.UnpicklingError, ValueError, EOFError, TypeError, AttributeError) as error:
        raise DatasetError(f"{path}: not a MetaAudio class split ({error})") from error
    if not isinstance(obj, (list, tuple, np.ndarray)) or len(obj) != 3:
        raise DatasetError(f"{path}: expected a sequence of three class arrays [train, val, test], "
                         f"got {type(obj).__name__} of length {len(obj) if hasattr(obj, '__len__') else '?'}")
    split: dict[str, list[str]] = {}
    for name, part in zip(SPLITS, obj):
        values = np.asarray(part, dtype=object).reshape(-1).tolist()
        if any(isinstance(v, (list, tuple, np.ndarray, dict)) for v in values):
            raise DatasetError(f"{path}: the {name} split must be a flat array of class names")
        split[name] = [str(v) for v in values]
    seen: dict[str, str] = {}
    for name in SPLITS:
        for c in split[name]:
            if c in seen:
                raise DatasetError(f"{path}: class {c!r} is in both the {seen[c]} and {name} splits")
            seen[c] = name
    if class_names is not None:
        known = set(class_names)
        unknown = [c for c in seen if c not in known]
        if unknown:
            raise DatasetError(f"{path}: {len(unknown)} class(es) not in the dataset, e.g. {unknown[:3]}; "
                             f"dataset classes look like {list(class_names)[:3]} (choose the matching label field)")
    return split


def random_class_split(class_names: Sequence[str], seed: int,
                       fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)) -> dict[str, list[str]]:
    """Seeded disjoint class split (MetaAudio's 70/10/20 by default).

    Sizes come from largest-remainder rounding, so they sum to the number of classes
    (50 -> 35/5/10, 41 -> 29/4/8). Each split keeps the classes in ``class_names`` order.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``.
    """
    names = list(class_names)
    if len(set(names)) != len(names):
        raise ValueError("random_class_split: class names must be distinct")
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"random_class_split: fractions must be three non-negative numbers summing to 1, got {fractions}")
    total = len(names)
    exact = [f * total for f in fractions]
    sizes = [int(np.floor(e)) for e in exact]
    by_remainder = sorted(range(3), key=lambda k: (-(exact[k] - sizes[k]), k))
    for k in by_remainder[: total - sum(sizes)]:
        sizes[k] += 1
    order = torch.randperm(total, generator=torch.Generator().manual_seed(int(seed))).tolist()
    out: dict[str, list[str]] = {}
    start = 0
    for name, size in zip(SPLITS, sizes):
        chosen = sorted(order[start:start + size])
        out[name] = [names[i] for i in chosen]
        start += size
    return out


def split_dataset(dataset: Any, split_file: str | Path | None = None, seed: int = 0) -> dict[str, Any]:
    """Split an ``AudioDataset`` by class into train/val/test datasets.

    Uses ``split_file`` (MetaAudio format) when given, else ``random_class_split`` with
    ``seed``. Each part is relabelled ``0..len(part)-1`` via ``AudioDataset.with_classes``.
    """
    if split_file is not None:
        split = load_class_split(split_file, dataset.class_names)
    else:
        split = random_class_split(dataset.class_names, seed)
    return {name: dataset.with_classes(split[name]) for name in SPLITS}
