"""A clip source whose prepared inputs (log-mels, fitted images) stay in a byte-bounded LRU
cache, so episodes and probe epochs that revisit a clip do not decode and transform it again."""
from __future__ import annotations

from abc import abstractmethod
from collections import OrderedDict
from typing import Sequence

from torch import Tensor

from core.downstream.clips import ClipSource


class CachedClips(ClipSource):
    """Adds :meth:`fetch`, :meth:`warm` and cache statistics to a :class:`ClipSource`.

    Subclasses call :meth:`_init_cache` in their constructor and implement :meth:`_compute`.

    Attributes:
        batch_size: items prepared per call when warming.
        cache_bytes: cache bound (0 disables the cache).
        hits, misses: lookups served from the cache / prepared.
    """

    batch_size: int
    cache_bytes: int

    def _init_cache(self, cache_mb: float, batch_size: int) -> None:
        self.batch_size = int(batch_size)
        self.cache_bytes = int(cache_mb * 2**20)
        self._cache: OrderedDict[int, Tensor] = OrderedDict()
        self._cached_bytes = 0
        self.hits = 0
        self.misses = 0

    @abstractmethod
    def _compute(self, indices: list[int]) -> dict[int, Tensor]:
        """Prepare items ``indices`` (distinct, not cached) -> ``{index: tensor}``."""

    def fetch(self, indices: Sequence[int]) -> list[Tensor]:
        """The prepared items ``indices`` in that order, from the cache where possible."""
        idx = self._check_indices(indices)
        found: dict[int, Tensor] = {}
        missing = []
        for i in dict.fromkeys(idx):
            if i in self._cache:
                self._cache.move_to_end(i)
                found[i] = self._cache[i]
                self.hits += 1
            else:
                missing.append(i)
        self.misses += len(missing)
        if missing:
            for i, value in self._compute(missing).items():
                found[i] = value
                self._remember(i, value)
        return [found[i] for i in idx]

    def warm(self, indices: Sequence[int] | None = None, progress: bool = False, desc: str = "inputs") -> None:
        """Prepare (and cache, as far as the cache holds them) items ``indices`` (default all),
        ``batch_size`` at a time, with an optional progress bar."""
        idx = list(range(len(self))) if indices is None else self._check_indices(indices)
        chunks = [idx[k:k + self.batch_size] for k in range(0, len(idx), self.batch_size)]
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc=desc, unit="batch")
        for chunk in chunks:
            self.fetch(chunk)

    @property
    def cached(self) -> list[int]:
        """Positions of the cached items, least recently used first."""
        return list(self._cache)

    @property
    def cached_mb(self) -> float:
        return self._cached_bytes / 2**20

    def _remember(self, i: int, value: Tensor) -> None:
        size = value.numel() * value.element_size()
        if size > self.cache_bytes:
            return
        self._cache[i] = value
        self._cached_bytes += size
        while self._cached_bytes > self.cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.numel() * old.element_size()
