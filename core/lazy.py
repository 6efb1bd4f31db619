"""A registry whose entries are imported on first lookup (heavy optional backends)."""
from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any


class LazyRegistry(Mapping):
    """Name -> object named ``"package.module:attribute"``, imported when first looked up.

    Args:
        what: what the entries are, for the error message (e.g. "audio augmentation backend").
        paths: name -> ``"module:attribute"``.
    """

    def __init__(self, what: str, paths: dict[str, str]) -> None:
        self.what = what
        self._paths = dict(paths)

    def __getitem__(self, name: str) -> Any:
        if name not in self._paths:
            raise KeyError(f"unknown {self.what} {name!r}; allowed: {sorted(self._paths)}")
        module, attr = self._paths[name].split(":")
        return getattr(importlib.import_module(module), attr)

    def __contains__(self, name: object) -> bool:
        return name in self._paths

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)
