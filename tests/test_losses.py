"""Single-process checks of the contrastive losses against loop-based references."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.losses import info_nce, mocov3_loss, nt_xent


def _unit_rows(x: torch.Tensor) -> np.ndarray:
    a = x.detach().double().numpy()
    return a / np.sqrt((a * a).sum(axis=1, keepdims=True))


def _log_softmax_at(logits: list[float], target: int) -> float:
    top = max(logits)
    return logits[target] - (top + math.log(sum(math.exp(v - top) for v in logits)))


def reference_nt_xent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    """NT-Xent written out anchor by anchor (2N anchors, 2N - 1 candidates each)."""
    z = np.concatenate([_unit_rows(z1), _unit_rows(z2)])
    n = z1.shape[0]
    total = 0.0
    for a in range(2 * n):
        positive = a + n if a < n else a - n
        candidates = [j for j in range(2 * n) if j != a]
        logits = [float(np.dot(z[a], z[j])) / t for j in candidates]
        total -= _log_softmax_at(logits, candidates.index(positive))
    return total / (2 * n)


def reference_info_nce(q, k, queue, t: float) -> float:
    qn, kn = _unit_rows(q), _unit_rows(k)
    neg = _unit_rows(queue) if queue.shape[0] else np.zeros((0, q.shape[1]))
    total = 0.0
    for i in range(q.shape[0]):
        logits = [float(np.dot(qn[i], kn[i])) / t] + [float(np.dot(qn[i], m)) / t for m in neg]
        total -= _log_softmax_at(logits, 0)
    return total / q.shape[0]


def reference_mocov3(q1, q2, k1, k2, t: float) -> float:
    def ctr(q, k):
        qn, kn = _unit_rows(q), _unit_rows(k)
        loss = 0.0
        for i in range(q.shape[0]):
            logits = [float(np.dot(qn[i], kn[j])) / t for j in range(k.shape[0])]
            loss -= _log_softmax_at(logits, i)
        return loss / q.shape[0] * 2 * t

    return ctr(q1, k2) + ctr(q2, k1)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def test_nt_xent_matches_hand_computed_tiny_case() -> None:
    # Two samples on orthogonal axes with perfectly aligned views: every anchor sees its
    # positive at cosine 1 and two negatives at cosine 0.
    z1 = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    z2 = torch.tensor([[1.0, 0.0], [0.0, 0.5]])
    t = 0.5
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * math.exp(0.0)))
    # float32 logsumexp of logits ~2 minus the positive (cancellation): errors ~eps x 2, 4e-8
    # observed; abs 1e-5 leaves ~200x across CPUs' exp/log kernels (a wrong loss is off by ~0.1).
    assert nt_xent(z1, z2, temperature=t).item() == pytest.approx(expected, abs=1e-5)


def test_nt_xent_matches_loop_reference(gen: torch.Generator) -> None:
    z1, z2 = torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
    for t in (0.1, 0.5, 1.0):
        got = nt_xent(z1, z2, temperature=t).item()
        assert got == pytest.approx(reference_nt_xent(z1, z2, t), rel=1e-5)
    # gather=True without torch.distributed is the plain full-batch loss.
    assert nt_xent(z1, z2, gather=False).item() == pytest.approx(nt_xent(z1, z2).item(), rel=1e-6)


def test_nt_xent_single_pair_has_only_the_positive() -> None:
    z = torch.tensor([[0.3, -0.7, 1.1]])
    assert nt_xent(z, -z).item() == pytest.approx(0.0, abs=1e-6)


def test_nt_xent_is_invariant_to_a_consistent_batch_permutation(gen: torch.Generator) -> None:
    z1, z2 = torch.randn(7, 5, generator=gen), torch.randn(7, 5, generator=gen)
    perm = torch.randperm(7, generator=gen)
    assert not torch.equal(perm, torch.arange(7))
    # Reordered rows change float32 matmul blocking and the order of the mean: a few eps x the
    # logit scale (1 / t = 2) apart; abs 1e-5 (~40 eps x 2) vs a mispaired loss off by ~0.1.
    assert nt_xent(z1[perm], z2[perm]).item() == pytest.approx(nt_xent(z1, z2).item(), abs=1e-5)
    # Swapping the roles of the views changes nothing either.
    assert nt_xent(z2, z1).item() == pytest.approx(nt_xent(z1, z2).item(), abs=1e-5)


def test_nt_xent_prefers_aligned_distinct_samples(gen: torch.Generator) -> None:
    aligned = torch.eye(6)
    random1, random2 = torch.randn(6, 6, generator=gen), torch.randn(6, 6, generator=gen)
    assert nt_xent(aligned, aligned.clone()).item() < nt_xent(random1, random2).item()


def test_nt_xent_is_scale_invariant_and_differentiable(gen: torch.Generator) -> None:
    z1 = torch.randn(4, 3, generator=gen, requires_grad=True)
    z2 = torch.randn(4, 3, generator=gen)
    loss = nt_xent(z1, z2)
    # float32 normalise of rescaled rows: a few eps x the logits (<= 2) apart; unnormalised, off by ~1
    assert nt_xent(z1 * 10, z2 * 0.1).item() == pytest.approx(loss.item(), abs=1e-4)
    loss.backward()
    assert z1.grad is not None and torch.isfinite(z1.grad).all() and z1.grad.abs().sum() > 0


def test_info_nce_matches_loop_reference(gen: torch.Generator) -> None:
    q, k = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    queue = torch.randn(6, 3, generator=gen) * 5  # normalised inside
    for t in (0.07, 0.2):
        # float32 vs a float64 loop: errors scale with the logits (|logit| <= 1 / t, 14 at
        # t = 0.07; 1.3e-6 observed); 2e-5 / t leaves ~200x.
        assert info_nce(q, k, queue, temperature=t).item() == pytest.approx(
            reference_info_nce(q, k, queue, t), abs=2e-5 / t
        )


def test_info_nce_hand_value_and_empty_queue() -> None:
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[3.0, 0.0]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    t = 0.5
    expected = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.0) + math.exp(-2.0)))
    # 0.143 = logsumexp (~2.1) - 2 in float32: errors ~eps x 2 (7e-8 observed, half of the old
    # rel=1e-6 bound); abs 1e-5 leaves ~140x, a wrong loss is off by ~0.1.
    assert info_nce(q, k, queue, temperature=t).item() == pytest.approx(expected, abs=1e-5)
    assert info_nce(q, k, torch.empty(0, 2), temperature=t).item() == pytest.approx(0.0, abs=1e-7)


def test_info_nce_gradient_reaches_queries_only(gen: torch.Generator) -> None:
    q = torch.randn(3, 4, generator=gen, requires_grad=True)
    k = torch.randn(3, 4, generator=gen, requires_grad=True)
    queue = torch.randn(5, 4, generator=gen, requires_grad=True)
    info_nce(q, k, queue).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert k.grad is None and queue.grad is None


def test_mocov3_matches_loop_reference(gen: torch.Generator) -> None:
    q1, q2, k1, k2 = (torch.randn(5, 3, generator=gen) for _ in range(4))
    for t in (0.1, 0.2, 1.0):
        # float32 vs a float64 loop, logits up to 1 / t = 10: 2e-7 observed; abs 1e-4 (~500x).
        assert mocov3_loss(q1, q2, k1, k2, temperature=t).item() == pytest.approx(
            reference_mocov3(q1, q2, k1, k2, t), abs=1e-4
        )


def test_mocov3_hand_value_and_normalisation() -> None:
    # n = 1: a single key is always the positive, so the loss is exactly 0.
    one = torch.tensor([[1.0, 2.0]])
    assert mocov3_loss(one, one, -one, one).item() == pytest.approx(0.0, abs=1e-7)
    # n = 2, orthogonal aligned keys: each CE is log(1 + e^{-1/t}), scaled by 2t, twice.
    q = torch.tensor([[5.0, 0.0], [0.0, 0.1]])  # scale must not matter (L2-normalised)
    t = 0.2
    expected = 2 * (2 * t) * math.log(1 + math.exp(-1 / t))
    # 0.0054 = (logsumexp([5, 0]) - 5) x 2t in float32: absolute errors up to ~eps x 5, so a
    # relative bound (rel 1e-6 = 5e-9) only held by luck; abs 1e-5 is still 800x below a
    # missing 2t factor (off by 8e-3).
    assert mocov3_loss(q, q, q, q, temperature=t).item() == pytest.approx(expected, abs=1e-5)


def test_mocov3_keys_get_no_gradient(gen: torch.Generator) -> None:
    q1, q2 = (torch.randn(3, 4, generator=gen, requires_grad=True) for _ in range(2))
    k1, k2 = (torch.randn(3, 4, generator=gen, requires_grad=True) for _ in range(2))
    mocov3_loss(q1, q2, k1, k2).backward()
    assert q1.grad.abs().sum() > 0 and q2.grad.abs().sum() > 0
    assert k1.grad is None and k2.grad is None


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: nt_xent(torch.randn(3, 4), torch.randn(2, 4)), "same shape"),
        (lambda: nt_xent(torch.randn(3), torch.randn(3)), "shape"),
        (lambda: nt_xent(torch.randn(0, 4), torch.randn(0, 4)), "at least one row"),
        (lambda: nt_xent(torch.randn(3, 4), torch.randn(3, 4), temperature=0.0), "temperature"),
        (lambda: nt_xent(torch.randn(3, 4), torch.randn(3, 4), temperature=-1), "temperature"),
        (lambda: nt_xent(torch.randn(3, 4), torch.randn(3, 4), temperature=float("nan")), "temperature"),
        (lambda: nt_xent(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long)), "floating"),
        (lambda: info_nce(torch.randn(3, 4), torch.randn(3, 5), torch.randn(6, 4)), "same shape"),
        (lambda: info_nce(torch.randn(3, 4), torch.randn(3, 4), torch.randn(6, 5)), "queue"),
        (lambda: info_nce(torch.randn(3, 4), torch.randn(3, 4), torch.randn(6)), "queue"),
        (lambda: info_nce(torch.randn(3, 4), torch.randn(3, 4), torch.randn(6, 4), temperature=0), "temperature"),
        (lambda: mocov3_loss(*(torch.randn(3, 4) for _ in range(3)), torch.randn(3, 2)), "same shape"),
        (lambda: mocov3_loss(*(torch.randn(3, 4) for _ in range(4)), temperature=True), "temperature"),
    ],
)
def test_argument_errors(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
