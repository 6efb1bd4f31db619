"""What a downstream fit costs: wall time, peak memory and trainable parameters.

Used next to every score (probe, amortised probe, fine-tuning) so a Pareto table of score
against parameters or time can be drawn.
"""
from __future__ import annotations

import resource
import sys
import time
from typing import Iterable

import torch
from torch import Tensor, nn


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (1 MB = 2**20 bytes).

    ``ru_maxrss`` is in kilobytes on Linux and in bytes on macOS.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1.0 if sys.platform == "darwin" else 1024.0
    return peak * scale / 2**20


class CostMeter:
    """Context manager measuring wall time and peak memory of the code inside it.

    ``with CostMeter(device) as cost: ...`` then read ``cost.wall_s`` and ``cost.peak_mb``.

    Peak memory:
        * CUDA device: ``torch.cuda.max_memory_allocated(device)`` in MB, with the peak
          statistics reset on entry, so it is the peak of tensors allocated inside the block
          (plus whatever was already allocated when it started).
        * CPU: the process's peak resident set size (``resource.getrusage(RUSAGE_SELF)
          .ru_maxrss``) in MB. This is process-wide and monotone: it never goes down, and it
          includes the interpreter, libraries and everything done before the block. To compare
          the memory of two fits, run each in its own fresh process.

    Args:
        device: the device the measured code runs on (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
    """

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        if self.device.type not in ("cpu", "cuda"):
            raise ValueError(f"CostMeter: device must be cpu or cuda, got {str(self.device)!r}")
        self.wall_s = 0.0
        self.peak_mb = 0.0
        self._start: float | None = None

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def __enter__(self) -> "CostMeter":
        if self.is_cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.is_cuda:
            torch.cuda.synchronize(self.device)
        self.wall_s = time.perf_counter() - self._start
        if self.is_cuda:
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self.peak_mb = _peak_rss_mb()

    def to_dict(self) -> dict[str, float]:
        """``{"wall_s", "peak_mb"}``."""
        return {"wall_s": self.wall_s, "peak_mb": self.peak_mb}


def count_trainable(*modules_or_params: nn.Module | Tensor | Iterable[Tensor]) -> int:
    """Number of trainable scalars: unique parameters (by identity) with ``requires_grad``.

    Args:
        *modules_or_params: modules, tensors/parameters, or iterables of tensors (e.g. a
            ``model.parameters()`` generator or a list). A parameter shared between several
            arguments is counted once.

    Returns:
        The total number of elements of the distinct tensors that require gradients.
    """
    seen: dict[int, Tensor] = {}
    for i, item in enumerate(modules_or_params):
        if isinstance(item, nn.Module):
            tensors: Iterable = item.parameters()
        elif isinstance(item, Tensor):
            tensors = [item]
        elif isinstance(item, Iterable) and not isinstance(item, (str, bytes)):
            tensors = item
        else:
            raise TypeError(
                f"count_trainable: argument {i} must be a module, a tensor or an iterable of "
                f"tensors, got {type(item).__name__}"
            )
        for t in tensors:
            if not isinstance(t, Tensor):
                raise TypeError(f"count_trainable: argument {i} holds a {type(t).__name__}, not a tensor")
            if t.requires_grad:
                seen[id(t)] = t
    return sum(t.numel() for t in seen.values())


__all__ = ["CostMeter", "count_trainable"]
