"""Projector/predictor heads and the per-descriptor MoCo queues."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from core.heads import MLPHead, predictor, projector
from core.invariance import InvarianceSpace
from core.queues import DescriptorQueues


def _count(module: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


# ------------------------------------------------------------------------ heads
def test_projector_and_predictor_shapes_and_layers() -> None:
    proj = projector(12, hidden_dim=16, out_dim=8)
    pred = predictor(8, hidden_dim=16, out_dim=8)
    x = torch.randn(5, 12)
    assert proj(x).shape == (5, 8)
    assert pred(proj(x)).shape == (5, 8)
    assert (_count(proj, nn.Linear), _count(proj, nn.BatchNorm1d), _count(proj, nn.ReLU)) == (3, 3, 2)
    assert (_count(pred, nn.Linear), _count(pred, nn.BatchNorm1d), _count(pred, nn.ReLU)) == (2, 1, 1)
    widths = [(m.in_features, m.out_features) for m in proj.modules() if isinstance(m, nn.Linear)]
    assert widths == [(12, 16), (16, 16), (16, 8)]


def test_paper_defaults() -> None:
    proj, pred = projector(2048), predictor()
    assert [m.out_features for m in proj.modules() if isinstance(m, nn.Linear)] == [4096, 4096, 256]
    assert [m.out_features for m in pred.modules() if isinstance(m, nn.Linear)] == [4096, 256]
    assert isinstance(proj.layers[-1], nn.BatchNorm1d) and not isinstance(pred.layers[-1], nn.BatchNorm1d)


def test_last_bn_has_no_affine_parameters_and_normalises() -> None:
    head = MLPHead(4, 6, 3, num_layers=2, last_bn=True)
    last = head.layers[-1]
    assert isinstance(last, nn.BatchNorm1d) and not last.affine
    assert last.weight is None and last.bias is None
    out = head.train()(torch.randn(64, 4) * 3 + 1)
    torch.testing.assert_close(out.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(0, unbiased=False), torch.ones(3), atol=1e-3, rtol=0)
    # Linears followed by BatchNorm carry no bias.
    assert all(m.bias is None for m in head.modules() if isinstance(m, nn.Linear))


def test_single_layer_and_no_batch_norm() -> None:
    single = MLPHead(4, 99, 3, num_layers=1)
    assert [type(m) for m in single.layers] == [nn.Linear]
    assert single(torch.randn(2, 4)).shape == (2, 3)
    plain = MLPHead(4, 6, 3, num_layers=3, batch_norm=False)
    assert _count(plain, nn.BatchNorm1d) == 0 and _count(plain, nn.Linear) == 3
    assert all(m.bias is not None for m in plain.modules() if isinstance(m, nn.Linear))
    # Without BatchNorm the head is per-sample: row 0 does not depend on row 1.
    x = torch.randn(2, 4)
    torch.testing.assert_close(plain(x)[:1], plain(x[:1]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(in_dim=0, hidden_dim=4, out_dim=4), "in_dim"),
        (dict(in_dim=4, hidden_dim=-1, out_dim=4), "hidden_dim"),
        (dict(in_dim=4, hidden_dim=4, out_dim=2.5), "out_dim"),
        (dict(in_dim=4, hidden_dim=4, out_dim=4, num_layers=0), "num_layers"),
        (dict(in_dim=4, hidden_dim=4, out_dim=4, last_bn="yes"), "last_bn"),
    ],
)
def test_head_argument_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MLPHead(**kwargs)


def test_head_rejects_wrong_input_width() -> None:
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        MLPHead(4, 6, 3)(torch.randn(2, 5))


# ----------------------------------------------------------------------- queues
@pytest.fixture
def space() -> InvarianceSpace:
    return InvarianceSpace(["a", "b", "c"], min_active=1)  # 7 descriptors


def test_queues_are_allocated_lazily_and_unit_norm(space: InvarianceSpace) -> None:
    queues = DescriptorQueues(space, dim=4, size=10)
    assert len(queues) == 0
    d = space.from_active(["a", "c"])
    q = queues.get(d)
    assert q.shape == (10, 4) and len(queues) == 1
    torch.testing.assert_close(q.norm(dim=1), torch.ones(10))
    assert torch.equal(queues.get(d), q) and len(queues) == 1
    queues.get(space.from_active(["b"]))
    assert len(queues) == 2
    # get returns a snapshot: editing it does not touch the queue.
    q.zero_()
    assert queues.get(d).norm(dim=1).min() > 0.99


def test_queue_initialisation_is_deterministic(space: InvarianceSpace) -> None:
    d1, d2 = space.from_active(["a"]), space.from_active(["b", "c"])
    first = DescriptorQueues(space, dim=3, size=5, seed=1)
    a1, a2 = first.get(d1), first.get(d2)
    second = DescriptorQueues(space, dim=3, size=5, seed=1)
    b2, b1 = second.get(d2), second.get(d1)  # opposite allocation order
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, a2)
    other_seed = DescriptorQueues(space, dim=3, size=5, seed=2)
    assert not torch.equal(other_seed.get(d1), a1)


def _sequential_fifo(initial: torch.Tensor, batches: list[torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Reference: write keys one at a time into a ring buffer."""
    queue, ptr = initial.clone(), 0
    for batch in batches:
        for key in batch:
            queue[ptr] = key
            ptr = (ptr + 1) % queue.shape[0]
    return queue, ptr


def test_enqueue_wraps_around_in_fifo_order(space: InvarianceSpace) -> None:
    queues = DescriptorQueues(space, dim=2, size=5)
    d = space.ones()
    initial = queues.get(d)
    keys = torch.arange(26.0).view(13, 2)
    batches = [keys[0:3], keys[3:6], keys[6:6], keys[6:13]]  # 3, 3 (wraps), 0, 7 (> size)
    expected_ptrs = [3, 1, 1, 3]
    for batch, expected_ptr in zip(batches, expected_ptrs):
        queues.enqueue(d, batch)
        assert queues.pointer(d) == expected_ptr
    reference, ptr = _sequential_fifo(initial, batches)
    assert ptr == 3
    assert torch.equal(queues.get(d), reference)
    # Concretely: the newest five keys 8..12, rows 3, 4, 0, 1, 2 hold keys 8, 9, 10, 11, 12.
    assert queues.get(d)[:, 0].tolist() == [20.0, 22.0, 24.0, 16.0, 18.0]
    # Other descriptors are untouched.
    assert queues.pointer(space.from_active(["a"])) == 0


def test_enqueue_detaches_and_leaves_earlier_snapshots_valid(space: InvarianceSpace) -> None:
    queues = DescriptorQueues(space, dim=3, size=4)
    d = space.from_active(["b"])
    q = torch.randn(2, 3, requires_grad=True)
    snapshot = queues.get(d)
    logits = q @ snapshot.T
    queues.enqueue(d, q * 2)  # a key that carries a graph
    assert not queues.get(d).requires_grad
    logits.sum().backward()  # the snapshot was not modified in place
    torch.testing.assert_close(q.grad, snapshot.sum(0).expand(2, 3))


def test_state_dict_round_trip_through_a_file(space: InvarianceSpace, tmp_path) -> None:
    queues = DescriptorQueues(space, dim=3, size=6, seed=4)
    d1, d2 = space.from_active(["a", "b"]), space.from_active(["c"])
    queues.enqueue(d1, torch.randn(4, 3))
    queues.enqueue(d2, torch.randn(9, 3))
    torch.save(queues.state_dict(), tmp_path / "queues.pt")
    restored = DescriptorQueues(space, dim=3, size=6, seed=4)
    restored.get(space.ones())  # existing state is replaced, not merged
    restored.load_state_dict(torch.load(tmp_path / "queues.pt", weights_only=True))
    assert len(restored) == 2
    for d in (d1, d2):
        assert torch.equal(restored.get(d), queues.get(d))
        assert restored.pointer(d) == queues.pointer(d)
    assert (restored.pointer(d1), restored.pointer(d2)) == (4, 3)
    # Both continue identically.
    new = torch.randn(5, 3)
    queues.enqueue(d1, new)
    restored.enqueue(d1, new)
    assert torch.equal(restored.get(d1), queues.get(d1))


def test_load_state_dict_rejects_mismatches(space: InvarianceSpace) -> None:
    queues = DescriptorQueues(space, dim=3, size=6)
    queues.get(space.ones())
    state = queues.state_dict()
    with pytest.raises(ValueError, match="dim=3"):
        DescriptorQueues(space, dim=4, size=6).load_state_dict(state)
    with pytest.raises(ValueError, match="size=6"):
        DescriptorQueues(space, dim=3, size=7).load_state_dict(state)
    with pytest.raises(ValueError, match="seed"):
        DescriptorQueues(space, dim=3, size=6, seed=1).load_state_dict(state)
    other = InvarianceSpace(["a", "b", "x"], min_active=1)
    with pytest.raises(ValueError, match="space"):
        DescriptorQueues(other, dim=3, size=6).load_state_dict(state)
    broken = dict(state, pointers={k: 6 for k in state["pointers"]})
    with pytest.raises(ValueError, match="pointer"):
        DescriptorQueues(space, dim=3, size=6).load_state_dict(broken)
    with pytest.raises(ValueError, match="keys"):
        DescriptorQueues(space, dim=3, size=6).load_state_dict({"dim": 3})


def test_queue_descriptor_and_key_errors(space: InvarianceSpace) -> None:
    queues = DescriptorQueues(space, dim=3, size=6)
    with pytest.raises(ValueError, match="binary.*a=0.50"):
        queues.get(torch.tensor([0.5, 1.0, 0.0]))
    with pytest.raises(ValueError, match="a=0.00 b=0.00 c=0.00"):
        queues.get(torch.zeros(3))  # binary, but not one of the space's descriptors
    with pytest.raises(ValueError, match="shape"):
        queues.get(torch.ones(2))
    with pytest.raises(ValueError, match="shape"):
        queues.get(torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        queues.enqueue(space.ones(), torch.randn(2, 4))
    assert len(queues) == 0
    for kwargs in (dict(dim=0), dict(dim=3, size=0), dict(dim=3, seed=-1)):
        with pytest.raises(ValueError, match="DescriptorQueues"):
            DescriptorQueues(space, **kwargs)


def test_to_moves_queues(space: InvarianceSpace) -> None:
    queues = DescriptorQueues(space, dim=2, size=3)
    queues.get(space.ones())
    assert queues.to("cpu") is queues
    assert queues.get(space.ones()).device.type == "cpu"
    assert queues.state_dict()["queues"]["6"].device.type == "cpu"
