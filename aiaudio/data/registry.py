"""Dataset specs: ``name:path?key=value&key=value`` -> the matching reader.

Examples: ``esc50:/data/ESC-50``, ``esc50:/data/ESC-50?folds=1,2,3&label_column=target``,
``nsynth:/data/nsynth?split=test``, ``folder:C:\\audio\\mine``, ``synthetic?n_clips=64&label=pitch``.
The name ends at the first ``:`` (so Windows drive letters and later colons stay in the
path) and the options start at the first ``?`` (paths containing ``?`` are not supported).

Any collection of audio files: ``files:/data/mine`` (every audio file under the folder,
recursively, unlabelled; ``extensions=wav,flac`` narrows or widens the formats),
``manifest:/data/list.txt`` (one path per line, unlabelled) and ``manifest:/data/train.csv``
(a CSV with header ``path,label``: labelled; ``path_column=`` and ``label_column=`` rename
them). ``folder:/data/mine`` reads labelled tasks from one sub-folder per class.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from aiaudio.data.base import AudioDataset
from aiaudio.data.cache import AudioCache
from aiaudio.data.esc50 import read_esc50
from aiaudio.data.files import read_files
from aiaudio.data.folder import read_folder
from aiaudio.data.fsd50k import read_fsd50k
from aiaudio.data.fsdkaggle import read_fsdkaggle
from aiaudio.data.manifest import read_manifest
from aiaudio.data.nsynth import read_nsynth
from aiaudio.data.voxceleb import read_voxceleb
from core.dataspec import DatasetError, DatasetNotFoundError, call_reader, check_options, parse_value
from core.dataspec import parse_spec as core_parse_spec

__all__ = ["READERS", "DatasetError", "DatasetNotFoundError", "open_dataset", "parse_spec", "parse_value",
           "read_synthetic_lazy"]


def read_synthetic_lazy(root: str | Path | None = None, sample_rate: int = 16000, cache: Any = None,
                        **options: Any) -> AudioDataset:
    """The in-memory synthetic dataset (``aiaudio.data.synthetic``), imported on first use."""
    from aiaudio.data.synthetic import read_synthetic

    return read_synthetic(root, sample_rate=sample_rate, cache=cache, **options)


READERS: dict[str, Callable[..., AudioDataset]] = {
    "fsd50k": read_fsd50k,
    "esc50": read_esc50,
    "nsynth": read_nsynth,
    "voxceleb": read_voxceleb,
    "fsdkaggle": read_fsdkaggle,
    "folder": read_folder,
    "files": read_files,
    "manifest": read_manifest,
    "synthetic": read_synthetic_lazy,
}


def parse_spec(spec: str) -> tuple[str, str | None, dict[str, Any]]:
    """Split ``name:path?key=value&...`` into ``(name, path or None, options)``.

    Raises:
        DatasetError: empty or unknown name (lists the available ones) or a malformed option.
    """
    return core_parse_spec(spec, READERS, example="esc50:/data/ESC-50")


def open_dataset(spec: str, sample_rate: int = 16000, cache: AudioCache | str | Path | None = None) -> AudioDataset:
    """Open the dataset a spec string names.

    Args:
        spec: ``name:path?key=value&...`` (see the module docstring).
        sample_rate: rate every clip is resampled to.
        cache: an ``AudioCache`` or a directory for one; None decodes every time.

    Raises:
        DatasetError: unknown dataset or option, a bad option value or a malformed layout
            (a ``UserError``; the message names the spec, file or folder).
        DatasetNotFoundError: a folder or file of the layout is missing, or holds no audio.
    """
    name, path, options = parse_spec(spec)
    reader = READERS[name]
    check_options(name, reader, options)
    if cache is not None and not isinstance(cache, AudioCache):
        cache = AudioCache(cache)
    return call_reader(reader, path, sample_rate=sample_rate, cache=cache, **options)
