"""Few-shot readouts against hand computations: ridge (primal, dual, leave-out), logistic, prototypes."""
import numpy as np
import pytest
import torch

from core.downstream.readouts import (READOUTS, l2_normalise, logistic_scores, one_hot, prototype_scores,
                                      readout_scores, ridge_fit, ridge_fit_residuals, ridge_loo_predictions,
                                      ridge_scores)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread per module


def _numpy_ridge(x: np.ndarray, labels: np.ndarray, ways: int, lam: float, query: np.ndarray) -> np.ndarray:
    """Ridge with an unpenalised bias as one augmented least-squares problem."""
    n, d = x.shape
    y = np.eye(ways)[labels]
    z = np.hstack([np.ones((n, 1)), x])
    penalty = np.hstack([np.zeros((d, 1)), np.sqrt(lam) * np.eye(d)])
    a = np.vstack([z, penalty])
    t = np.vstack([y, np.zeros((d, ways))])
    coef = np.linalg.lstsq(a, t, rcond=None)[0]
    return np.hstack([np.ones((query.shape[0], 1)), query]) @ coef


@pytest.mark.parametrize("n, d", [(30, 6), (6, 40)])  # primal (n >= D) and dual (n < D) branches
def test_ridge_equals_numpy_lstsq(n, d):
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    labels = torch.arange(n) % 3
    query = torch.randn(5, d, generator=g, dtype=torch.float64)
    got = ridge_scores(x, labels, query, 3, lam=0.7, normalise=False)
    want = _numpy_ridge(x.numpy(), labels.numpy(), 3, 0.7, query.numpy())
    np.testing.assert_allclose(got.numpy(), want, atol=1e-9)
    # normalise=True is the same computation on L2-normalised rows
    got_n = ridge_scores(x, labels, query, 3, lam=0.7)
    want_n = _numpy_ridge(l2_normalise(x).numpy(), labels.numpy(), 3, 0.7, l2_normalise(query).numpy())
    np.testing.assert_allclose(got_n.numpy(), want_n, atol=1e-9)
    w, b = ridge_fit(x.float(), labels, 3, 0.7)
    assert w.shape == (d, 3) and b.shape == (3,) and w.dtype == torch.float32


def test_ridge_is_differentiable_in_the_features():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 9, generator=g, dtype=torch.float64, requires_grad=True)
    q = torch.randn(3, 9, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert torch.autograd.gradcheck(lambda s: ridge_scores(s, labels, q, 3, lam=0.5), (x,))
    groups = torch.tensor([0, 0, 1, 2, 3, 3])
    assert torch.autograd.gradcheck(lambda s: ridge_loo_predictions(s, labels, 3, 0.5, groups), (x,))


def test_leave_group_out_equals_explicit_refits_and_residuals_match_fit():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(9, 5, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    groups = torch.tensor([0, 0, 1, 2, 3, 3, 4, 5, 5])  # groups of size 1 and 2
    loo = ridge_loo_predictions(x, labels, 3, 0.3, groups)
    for gid in groups.unique().tolist():
        held = groups == gid
        refit = ridge_scores(x[~held], labels[~held], x[held], 3, lam=0.3, normalise=False)
        torch.testing.assert_close(loo[held], refit)
    single = ridge_loo_predictions(x, labels, 3, 0.3)
    refit0 = ridge_scores(x[1:], labels[1:], x[:1], 3, lam=0.3, normalise=False)
    torch.testing.assert_close(single[:1], refit0)
    residual = ridge_fit_residuals(x, labels, 3, 0.3)
    fitted = ridge_scores(x, labels, x, 3, lam=0.3, normalise=False)
    torch.testing.assert_close(residual, one_hot(labels, 3).double() - fitted)
    with pytest.raises(ValueError, match="at least two groups"):
        ridge_loo_predictions(x, labels, 3, 0.3, torch.zeros(9, dtype=torch.long))


def _separable(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = 4.0 * torch.eye(4, 10)
    labels = torch.arange(4).repeat(6)
    x = centres[labels] + 0.3 * torch.randn(24, 10, generator=g)
    query_labels = torch.arange(4).repeat(5)
    q = centres[query_labels] + 0.3 * torch.randn(20, 10, generator=g)
    return x, labels, q, query_labels


@pytest.mark.parametrize("name", sorted(READOUTS))
def test_every_readout_classifies_separable_data_perfectly(name):
    x, labels, q, query_labels = _separable()
    scores = readout_scores(name, x, labels, q, 4, ridge_lambda=1.0)
    assert scores.shape == (20, 4)
    assert torch.equal(scores.argmax(1), query_labels)


def test_prototypes_by_hand_and_metrics():
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0, 1])
    q = torch.tensor([[2.0, 1.0]])
    euclid = prototype_scores(x, labels, q, 2, metric="euclidean", normalise=False)
    torch.testing.assert_close(euclid, torch.tensor([[-1.0, -5.0]]))
    cos = prototype_scores(x, labels, q, 2, metric="cosine", normalise=False)
    torch.testing.assert_close(cos, torch.tensor([[2 / 5**0.5, 1 / 5**0.5]]))
    with pytest.raises(ValueError, match="classes \\[2\\] have no support"):
        prototype_scores(x, labels, q, 3)
    with pytest.raises(ValueError, match="metric"):
        prototype_scores(x, labels, q, 2, metric="manhattan")


def test_logistic_returns_probabilities_and_is_deterministic():
    x, labels, q, _ = _separable(1)
    a = logistic_scores(x, labels, q, 4)
    b = logistic_scores(x, labels, q, 4)
    assert torch.equal(a, b)
    torch.testing.assert_close(a.sum(1), torch.ones(20))
    assert bool((a >= 0).all())
    # stronger L2 gives less confident predictions
    assert float(logistic_scores(x, labels, q, 4, l2=1.0).max()) < float(a.max())


def test_l2_normalise_and_argument_errors():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    torch.testing.assert_close(l2_normalise(x), torch.tensor([[0.6, 0.8], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="labels must lie in \\[0, 2\\)"):
        ridge_scores(x, torch.tensor([0, 2]), x, 2)
    with pytest.raises(ValueError, match="2 support features but labels"):
        ridge_scores(x, torch.tensor([0, 1, 1]), x, 2)
    with pytest.raises(ValueError, match="do not match"):
        ridge_scores(x, torch.tensor([0, 1]), torch.ones(1, 3), 2)
    with pytest.raises(ValueError, match="lambda must be > 0"):
        ridge_fit(x, torch.tensor([0, 1]), 2, 0.0)
    with pytest.raises(ValueError, match="unknown readout 'svm'"):
        readout_scores("svm", x, torch.tensor([0, 1]), x, 2)
