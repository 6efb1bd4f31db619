"""Real two-process (gloo, CPU) runs of the losses against one process on the whole batch.

What the distributed losses should reproduce, for a global batch of N = W * n samples:

* ``nt_xent`` (gathered with gradient): rank r's loss is the mean over its own 2n anchors
  of the full-batch per-anchor losses, so the *mean* of the ranks' losses equals the
  full-batch loss (a single rank's loss does not). The gradient reaching rank r's inputs
  is d(sum of all ranks' losses)/dx = W * d(full loss)/dx, and DDP's averaging of
  parameter gradients over ranks therefore yields exactly the full-batch gradient.
* ``mocov3_loss``: same structure (mean over ranks = full value, query gradients W times).
"""
from __future__ import annotations

import datetime
import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from tests.spawn_helpers import exit_worker, spawn_ranks

from core.distributed import all_gather_no_grad, all_gather_with_grad, rank, world_size
from core.losses import mocov3_loss, nt_xent

WORLD = 2
N = 8  # global batch
IN_DIM, OUT_DIM = 6, 5
TEMPERATURE = 0.3
DEADLINE_S = 60.0

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed with gloo"
)


def _make_inputs() -> dict:
    g = torch.Generator().manual_seed(7)
    model = nn.Linear(IN_DIM, OUT_DIM).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(OUT_DIM, IN_DIM, generator=g, dtype=torch.float64))
        model.bias.copy_(torch.randn(OUT_DIM, generator=g, dtype=torch.float64))
    data = {name: torch.randn(N, IN_DIM, generator=g, dtype=torch.float64) for name in ("x1", "x2")}
    data.update({name: torch.randn(N, 4, generator=g, dtype=torch.float64) for name in ("q1", "q2", "k1", "k2")})
    data["model"] = model.state_dict()
    return data


def _worker(rank_id: int, init_file: str, data_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank_id, world_size=WORLD,
        timeout=datetime.timedelta(seconds=30),
    )
    try:
        data = torch.load(data_file, weights_only=True)
        n = N // WORLD
        part = slice(rank_id * n, (rank_id + 1) * n)
        out: dict = {"world_size": world_size(), "rank": rank()}

        marker = torch.full((2, 3), float(rank_id), dtype=torch.float64, requires_grad=True)
        gathered = all_gather_with_grad(marker)
        out["gathered"] = gathered.detach()
        (gathered * torch.arange(1.0, 5.0, dtype=torch.float64).view(4, 1)).sum().backward()
        out["marker_grad"] = marker.grad
        no_grad = all_gather_no_grad(marker)
        out["no_grad_gathered"], out["no_grad_requires_grad"] = no_grad, no_grad.requires_grad

        model = nn.Linear(IN_DIM, OUT_DIM).double()
        model.load_state_dict(data["model"])
        ddp = nn.parallel.DistributedDataParallel(model)
        x1 = data["x1"][part].clone().requires_grad_(True)
        x2 = data["x2"][part].clone().requires_grad_(True)
        z1, z2 = ddp(torch.cat([x1, x2])).split(n)
        loss = nt_xent(z1, z2, temperature=TEMPERATURE)
        loss.backward()
        out["nt_xent"] = loss.detach()
        out["nt_xent_local"] = nt_xent(z1.detach(), z2.detach(), temperature=TEMPERATURE, gather=False)
        out["z"] = torch.cat([z1, z2]).detach()
        out["param_grads"] = {k: p.grad.clone() for k, p in model.named_parameters()}
        out["x1_grad"], out["x2_grad"] = x1.grad, x2.grad

        q1 = data["q1"][part].clone().requires_grad_(True)
        q2 = data["q2"][part].clone().requires_grad_(True)
        moco = mocov3_loss(q1, q2, data["k1"][part], data["k2"][part], temperature=TEMPERATURE)
        moco.backward()
        out["mocov3"], out["q1_grad"], out["q2_grad"] = moco.detach(), q1.grad, q2.grad
        torch.save(out, Path(out_dir) / f"rank{rank_id}.pt")
        del ddp  # release DDP's reducer (and its hooks into the group) before the group goes
        dist.barrier()  # no rank tears gloo down while the other still talks to it
    finally:
        dist.destroy_process_group()
    exit_worker()  # reached only on success


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[dict]]:
    tmp = tmp_path_factory.mktemp("dist")
    data = _make_inputs()
    results = spawn_ranks(_worker, tmp, data, WORLD, DEADLINE_S)
    return data, results


def _single_process_nt_xent(data: dict) -> tuple[torch.Tensor, dict, torch.Tensor, torch.Tensor]:
    model = nn.Linear(IN_DIM, OUT_DIM).double()
    model.load_state_dict(data["model"])
    x1, x2 = data["x1"].clone().requires_grad_(True), data["x2"].clone().requires_grad_(True)
    loss = nt_xent(model(x1), model(x2), temperature=TEMPERATURE)
    loss.backward()
    return loss.detach(), {k: p.grad for k, p in model.named_parameters()}, x1.grad, x2.grad


def _per_anchor_nt_xent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> list[float]:
    """Loss of every anchor of the full batch, anchors ordered [z1 rows; z2 rows]."""
    z = torch.cat([z1, z2])
    z = (z / z.norm(dim=1, keepdim=True)).tolist()
    m = len(z1)
    losses = []
    for a in range(2 * m):
        positive = (a + m) % (2 * m)
        sims = {j: sum(u * v for u, v in zip(z[a], z[j])) / t for j in range(2 * m) if j != a}
        losses.append(-sims[positive] + math.log(sum(math.exp(s) for s in sims.values())))
    return losses


def test_process_group_helpers(runs) -> None:
    _, results = runs
    for r, out in enumerate(results):
        assert (out["world_size"], out["rank"]) == (WORLD, r)
        expected = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64).view(4, 1).expand(4, 3)
        assert torch.equal(out["gathered"], expected)
        assert torch.equal(out["no_grad_gathered"], expected)
        assert out["no_grad_requires_grad"] is False
        # Every rank's loss is sum_i w_i * gathered_i with w = 1..4; the gradient of rank r's
        # slice sums over both ranks' losses: 2 * w[slice].
        weights = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)[2 * r : 2 * r + 2]
        assert torch.equal(out["marker_grad"], (WORLD * weights).view(2, 1).expand(2, 3))


def test_nt_xent_loss_matches_full_batch(runs) -> None:
    data, results = runs
    full_loss, _, _, _ = _single_process_nt_xent(data)
    losses = [out["nt_xent"].item() for out in results]
    assert sum(losses) / WORLD == pytest.approx(full_loss.item(), rel=1e-10)
    # Each rank's own loss is the mean over *its* anchors of the full-batch anchor losses,
    # not the full-batch loss itself.
    z = torch.cat([out["z"] for out in results])  # per rank [z1_r; z2_r]
    n = N // WORLD
    z1 = torch.cat([z[r * 2 * n : r * 2 * n + n] for r in range(WORLD)])
    z2 = torch.cat([z[r * 2 * n + n : (r + 1) * 2 * n] for r in range(WORLD)])
    per_anchor = _per_anchor_nt_xent(z1, z2, TEMPERATURE)
    for r, loss in enumerate(losses):
        mine = per_anchor[r * n : (r + 1) * n] + per_anchor[N + r * n : N + (r + 1) * n]
        assert loss == pytest.approx(sum(mine) / (2 * n), rel=1e-10)
    assert abs(losses[0] - losses[1]) > 1e-3
    # gather=False contrasts only inside the rank.
    for r, out in enumerate(results):
        local = nt_xent(z1[r * n : (r + 1) * n], z2[r * n : (r + 1) * n], temperature=TEMPERATURE)
        assert out["nt_xent_local"].item() == pytest.approx(local.item(), rel=1e-10)


def test_nt_xent_gradients_match_full_batch(runs) -> None:
    data, results = runs
    _, full_grads, full_x1, full_x2 = _single_process_nt_xent(data)
    n = N // WORLD
    for r, out in enumerate(results):
        for name, grad in full_grads.items():
            torch.testing.assert_close(out["param_grads"][name], grad, rtol=1e-9, atol=1e-12)
        part = slice(r * n, (r + 1) * n)
        torch.testing.assert_close(out["x1_grad"], WORLD * full_x1[part], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(out["x2_grad"], WORLD * full_x2[part], rtol=1e-9, atol=1e-12)


def test_mocov3_matches_full_batch(runs) -> None:
    data, results = runs
    q1 = data["q1"].clone().requires_grad_(True)
    q2 = data["q2"].clone().requires_grad_(True)
    full = mocov3_loss(q1, q2, data["k1"], data["k2"], temperature=TEMPERATURE)
    full.backward()
    losses = [out["mocov3"].item() for out in results]
    assert sum(losses) / WORLD == pytest.approx(full.item(), rel=1e-10)
    n = N // WORLD
    for r, out in enumerate(results):
        part = slice(r * n, (r + 1) * n)
        torch.testing.assert_close(out["q1_grad"], WORLD * q1.grad[part], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(out["q2_grad"], WORLD * q2.grad[part], rtol=1e-9, atol=1e-12)
