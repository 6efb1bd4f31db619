"""Shuffle-BN and the MoCo-v2 step in a real two-process gloo group (CPU).

Both ranks hold 4 of the 8 samples of a global batch. Checked against one process that
sees the whole batch:

* eval mode (BatchNorm uses running statistics, so keys do not depend on batch-mates):
  shuffle-BN keys equal plain keys, i.e. the permutation is undone exactly;
* train mode: rank r's shuffled keys are the key branch applied to the samples
  ``perm[4r:4r+4]`` as one BatchNorm batch, put back at their own rows, and they differ
  from per-rank (local) BatchNorm keys, so a shuffle really happened;
* both ranks drew the same permutation, and a full MoCo-v2 step leaves identical queues
  (the global batch of keys) on both ranks.
"""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Iterator

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from core import InvarianceSpace, build_encoder
from core.methods import MethodConfig, MoCoV2
from tests.conftest import AUDIO_NAMES, TINY
from tests.spawn_helpers import exit_worker, spawn_ranks

WORLD, N, STEP, SEED = 2, 8, 5, 3
CONFIG = {"name": "moco_v2", "proj_hidden": 32, "proj_out": 16, "queue_size": 32, "temperature": 0.2}
DEADLINE_S = 60.0

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed with gloo"
)


def _space() -> InvarianceSpace:
    return InvarianceSpace(AUDIO_NAMES, min_active=2)


def _method(state: dict | None, batch_norm: str) -> MoCoV2:
    """A MoCo-v2 method; ``state`` (a ``state_dict``) fixes every weight, heads included."""
    encoder = build_encoder("hyper_resnet18", _space(), **TINY["hyper_resnet18"])
    method = MoCoV2(encoder, MethodConfig(**CONFIG, batch_norm=batch_norm), seed=SEED)
    if state is not None:
        method.load_state_dict(state)
    return method


def _worker(rank_id: int, init_file: str, data_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank_id, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=30))
    try:
        data = torch.load(data_file, weights_only=True)
        part = slice(rank_id * N // WORLD, (rank_id + 1) * N // WORLD)
        x, d = data["x"][part], data["descriptor"]
        out: dict = {}
        for mode in ("eval", "train"):
            shuffle, local = _method(data["method"], "shuffle"), _method(data["method"], "local")
            getattr(shuffle, mode)()
            getattr(local, mode)()
            out[f"{mode}_shuffle"], out[f"{mode}_shuffle_all"] = shuffle.momentum_keys(x, d, STEP)
            out[f"{mode}_local"], _ = local.momentum_keys(x, d, STEP)
            out[f"{mode}_perm"] = shuffle.last_permutation
        method = _method(data["method"], "shuffle").train()
        loss, _ = method(data["x2"][part], x, d, STEP)
        loss.backward()
        out["loss"] = loss.detach()
        out["queue"], out["pointer"] = method.queues.get(d), method.queues.pointer(d)
        torch.save(out, Path(out_dir) / f"rank{rank_id}.pt")
        dist.barrier()  # no rank tears gloo down while the other still talks to it
    finally:
        dist.destroy_process_group()
    exit_worker()  # reached only on success


def _run_workers(tmp: Path) -> tuple[dict, list[dict]]:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    data = {"method": _method(None, "local").state_dict(), "x": torch.randn(N, 3, 32, 32, generator=g),
            "x2": torch.randn(N, 3, 32, 32, generator=g),
            "descriptor": _space().from_active(["noise", "time_mask", "time_shift"])}
    return data, spawn_ranks(_worker, tmp, data, WORLD, DEADLINE_S)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, list[dict]]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead; leave the cores to the workers
    try:
        yield _run_workers(tmp_path_factory.mktemp("shuffle_bn"))
    finally:
        torch.set_num_threads(threads)


def test_both_ranks_draw_the_same_permutation(runs):
    _, results = runs
    perm = results[0]["train_perm"]
    assert perm is not None and torch.equal(perm.sort().values, torch.arange(N))
    for result in results:
        assert torch.equal(result["train_perm"], perm) and torch.equal(result["eval_perm"], perm)
    assert set(perm[: N // WORLD].tolist()) != set(range(N // WORLD)), "permutation kept the ranks' blocks"


def test_eval_mode_shuffle_keys_equal_plain_keys(runs):
    data, results = runs
    reference = _method(data["method"], "local").eval()
    with torch.no_grad():
        full = reference.momentum_keys(data["x"], data["descriptor"], STEP)[0]
    n = N // WORLD
    # Other batch compositions and sizes (4 shuffled rows, 4 own rows, all 8): float32 convolutions
    # may block them differently on other CPUs (bit-equal here), a few eps x depth x |key| (<= 0.4)
    # apart. atol 1e-4 is far above that and ~1000x below keys left in shuffled order (~0.1-1 apart).
    for r, result in enumerate(results):
        torch.testing.assert_close(result["eval_shuffle"], result["eval_local"], rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(result["eval_shuffle"], full[r * n:(r + 1) * n], rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(result["eval_shuffle_all"], full, rtol=1e-5, atol=1e-4)


def test_train_mode_keys_come_from_the_shuffled_batches(runs):
    data, results = runs
    perm, n = results[0]["train_perm"], N // WORLD
    reference = _method(data["method"], "local").train()
    expected = torch.empty(N, CONFIG["proj_out"])
    with torch.no_grad():
        for r in range(WORLD):
            rows = perm[r * n:(r + 1) * n]
            expected[rows] = reference.momentum_keys(data["x"][rows], data["descriptor"], STEP)[0]
    for r, result in enumerate(results):
        torch.testing.assert_close(result["train_shuffle"], expected[r * n:(r + 1) * n], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(result["train_shuffle_all"], expected, rtol=1e-5, atol=1e-5)
        assert (result["train_shuffle"] - result["train_local"]).abs().max() > 1e-3


def test_moco_v2_step_fills_identical_queues_with_the_global_batch(runs):
    _, results = runs
    for result in results:
        assert result["pointer"] == N and torch.isfinite(result["loss"])
        torch.testing.assert_close(result["queue"][:N], F.normalize(results[0]["train_shuffle_all"], dim=1),
                                   rtol=1e-5, atol=1e-5)
    assert torch.equal(results[0]["queue"], results[1]["queue"])
    assert not torch.equal(results[0]["loss"], results[1]["loss"])  # each rank's own queries
