"""Run a worker function in several real processes (spawn) and collect what each rank saved."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable, NoReturn

import pytest
import torch
import torch.multiprocessing as mp


def spawn_ranks(worker: Callable[..., None], tmp: Path, data: dict, world: int, deadline_s: float) -> list[dict]:
    """Save ``data`` to ``tmp/data.pt``, run ``worker(rank, rendezvous_file, data_file, out_dir)``
    in ``world`` spawned processes and return each rank's ``tmp/rank{r}.pt``.

    A worker that fails raises here (``ProcessRaisedException`` / ``ProcessExitedException``);
    workers still running after ``deadline_s`` seconds fail the test and are terminated.
    """
    torch.save(data, tmp / "data.pt")
    context = mp.start_processes(worker, args=(str(tmp / "rendezvous"), str(tmp / "data.pt"), str(tmp)),
                                 nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + deadline_s
    try:
        while not context.join(timeout=1.0):  # raises if a worker failed
            if time.monotonic() > deadline:
                pytest.fail(f"distributed workers did not finish within {deadline_s} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
    return [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(world)]


def exit_worker() -> NoReturn:
    """End a worker that finished its work (results saved, group destroyed) with status 0,
    skipping the interpreter's and libtorch's exit-time destructors: a gloo thread torn down
    there sometimes aborts the process ("terminate called without an active exception")
    after everything it had to do is done. Call it only on success, so failures still raise."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
