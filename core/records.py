"""The part of a dataset reader's output that is the same for every modality: a list of
records with a ``label`` index into ``class_names``, subsets and class selections."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

import numpy as np
from torch.utils.data import Dataset


class RecordDataset(Dataset, ABC):
    """Records (frozen dataclasses with at least ``label: int``) plus their class names.

    Subclasses load an item from a record and say how a record is relabelled
    (:meth:`_relabel`); :meth:`subset` and :meth:`with_classes` then work for all of them.

    Attributes:
        name: dataset name (for messages).
        records: the items' records.
        class_names: label vocabulary; ``record.label`` indexes it (-1 = unlabelled).
    """

    name: str
    records: list[Any]
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def labels(self) -> np.ndarray:
        """``(N,)`` int64 label index per item (-1 when unlabelled)."""
        return np.array([r.label for r in self.records], dtype=np.int64)

    def subset(self, indices: Sequence[int]) -> "RecordDataset":
        """A dataset over ``records[indices]`` sharing everything else (class names, caches)."""
        out = self._copy_empty()
        out.records = [self.records[int(i)] for i in indices]
        return out

    def with_classes(self, classes: Sequence[str]) -> "RecordDataset":
        """Items whose label is in ``classes``, relabelled 0..len(classes)-1 in that order.

        Raises:
            KeyError: a class name the dataset does not have (names it and the dataset).
        """
        index = {c: i for i, c in enumerate(self.class_names)}
        missing = [c for c in classes if c not in index]
        if missing:
            raise KeyError(f"{self.name}: unknown class {missing[0]!r} ({len(missing)} missing)")
        remap = {index[c]: j for j, c in enumerate(classes)}
        out = self._copy_empty()
        out.class_names = list(classes)
        out.records = [self._relabel(r, remap) for r in self.records if r.label in remap]
        return out

    @abstractmethod
    def _relabel(self, record: Any, remap: dict[int, int]) -> Any:
        """``record`` with its label(s) mapped through ``remap`` (old index -> new index)."""

    def _copy_empty(self) -> "RecordDataset":
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.records = []
        return out
