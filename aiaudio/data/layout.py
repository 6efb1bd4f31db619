"""Metadata helpers the readers share: checked paths, csv tables, class-name ordering."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable, Sequence

from core.dataspec import DatasetError, DatasetNotFoundError


def require_path(path: str | Path, dataset: str, expected: str, directory: bool = False) -> Path:
    """``path`` if it exists (as a folder when ``directory``), else ``DatasetNotFoundError`` (a
    ``FileNotFoundError``) that names it and describes the layout the reader ``dataset`` expected."""
    path = Path(path).expanduser()
    ok = path.is_dir() if directory else path.is_file()
    if not ok:
        kind = "folder" if directory else "file"
        raise DatasetNotFoundError(f"{dataset}: {kind} {path} not found; expected layout: {expected}")
    return path


def read_csv(path: Path, required: Sequence[str], header: bool = True) -> list[dict[str, str]]:
    """Rows of a csv file as dicts (header row as keys).

    Raises:
        DatasetError: a required column is missing (names the file, the missing and found columns).
    """
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        missing = [c for c in required if c not in columns]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {missing}; found header {columns}, "
                             f"expected at least {list(required)}")
        return [dict(row) for row in reader]


def typed(value: str) -> Any:
    """A csv cell as int when it is a canonical decimal integer (``"3"`` -> 3, ``"007"`` stays)."""
    text = value.strip()
    if text.lstrip("-").isdigit() and str(int(text)) == text:
        return int(text)
    return value


def _numeric(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def ordered_classes(values: Iterable[str]) -> list[str]:
    """Distinct label strings, sorted numerically when all look numeric, else as strings."""
    distinct = set(values)
    if distinct and all(_numeric(v) is not None for v in distinct):
        return sorted(distinct, key=lambda v: (_numeric(v), v))
    return sorted(distinct)


def label_text(value: Any) -> str:
    """A metadata value as a class name (lists joined with commas, bools/numbers via ``str``)."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)
