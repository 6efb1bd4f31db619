"""Few-shot readouts: pure functions from support features to query scores.

Every readout has the form ``readout(support (n, D), labels (n,), query (m, D), ways) -> (m, ways)``
scores (higher = more likely). By default the features are first L2-normalised per row
(``x / max(||x||, 1e-8)``; an all-zero row stays zero), the usual preprocessing for few-shot
evaluation of frozen features.

Ridge regression (the paper's readout) fits one-hot targets with an *unpenalised* bias: the
support features and targets are centred on their support means, the weights solve the
centred ridge problem, and the bias restores the means. That is exactly
``min_{W,b} ||Y - X W - 1 b||^2 + lambda ||W||^2``. The solution is differentiable with respect to
the features, so a descriptor can be learned through it (:func:`ridge_loo_predictions`,
:func:`ridge_fit_residuals`).
"""
from __future__ import annotations

from typing import Callable, Literal

import torch
from torch import Tensor
from torch.nn import functional as F


def l2_normalise(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Rows of ``x`` ``(n, D)`` divided by their L2 norm (rows of norm < eps are left as they are)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def one_hot(labels: Tensor, ways: int) -> Tensor:
    """``(n, ways)`` float one-hot targets of int labels ``(n,)`` in ``[0, ways)``."""
    if labels.dim() != 1 or labels.is_floating_point():
        raise ValueError(f"readout labels must be int64 of shape (n,), got {labels.dtype} {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= ways):
        raise ValueError(f"readout labels must lie in [0, {ways}), got values {sorted(set(labels.tolist()))}")
    return F.one_hot(labels.long(), ways).float()


def _check(support: Tensor, labels: Tensor, query: Tensor | None = None) -> None:
    if support.dim() != 2 or support.shape[0] < 1:
        raise ValueError(f"support features must be (n >= 1, D), got {tuple(support.shape)}")
    if labels.shape != (support.shape[0],):
        raise ValueError(f"{support.shape[0]} support features but labels of shape {tuple(labels.shape)}")
    if query is not None and (query.dim() != 2 or query.shape[1] != support.shape[1]):
        raise ValueError(f"query features {tuple(query.shape)} do not match support features {tuple(support.shape)}")


def _prepare(x: Tensor, normalise: bool) -> Tensor:
    return l2_normalise(x) if normalise else x


# ------------------------------------------------------------------------------------ ridge
def ridge_fit(support: Tensor, labels: Tensor, ways: int, lam: float = 1.0) -> tuple[Tensor, Tensor]:
    """Closed-form ridge regression on one-hot targets with an unpenalised bias.

    Uses the primal solve ``(Xc^T Xc + lam I)^-1 Xc^T Y`` when ``n >= D`` and the dual
    ``Xc^T (Xc Xc^T + lam I)^-1 Y`` when ``n < D`` (the cheaper one); both are differentiable.
    Computed in float64 and returned in the features' dtype.

    Args:
        support: ``(n, D)`` features (used as given: normalise before if wanted).
        labels: ``(n,)`` int64 in ``[0, ways)``.
        ways: number of classes.
        lam: ridge penalty ``> 0``.

    Returns:
        ``W`` ``(D, ways)`` and ``b`` ``(ways,)``; scores are ``x @ W + b``.
    """
    _check(support, labels)
    if not lam > 0:
        raise ValueError(f"ridge lambda must be > 0, got {lam}")
    x = support.double()
    y = one_hot(labels, ways).to(x)
    mean_x, mean_y = x.mean(0, keepdim=True), y.mean(0, keepdim=True)
    xc, yc = x - mean_x, y - mean_y
    n, d = xc.shape
    if n < d:
        alpha = torch.linalg.solve(xc @ xc.T + lam * torch.eye(n, dtype=x.dtype, device=x.device), yc)
        w = xc.T @ alpha
    else:
        w = torch.linalg.solve(xc.T @ xc + lam * torch.eye(d, dtype=x.dtype, device=x.device), xc.T @ yc)
    b = (mean_y - mean_x @ w).squeeze(0)
    return w.to(support.dtype), b.to(support.dtype)


def ridge_scores(support: Tensor, labels: Tensor, query: Tensor, ways: int, lam: float = 1.0,
                 normalise: bool = True) -> Tensor:
    """Ridge readout: ``(m, ways)`` regression scores of ``query`` ``(m, D)``."""
    _check(support, labels, query)
    w, b = ridge_fit(_prepare(support, normalise), labels, ways, lam)
    return _prepare(query, normalise) @ w + b


def _hat_matrix(x: Tensor, lam: float) -> Tensor:
    """``(n, n)`` hat matrix of ridge with unpenalised bias: ``11^T/n + Kc (Kc + lam I)^-1``."""
    n = x.shape[0]
    xc = x - x.mean(0, keepdim=True)
    k = xc @ xc.T
    eye = torch.eye(n, dtype=x.dtype, device=x.device)
    # Kc (Kc + lam I)^-1 = I - lam (Kc + lam I)^-1, symmetric
    smoother = eye - lam * torch.linalg.inv(k + lam * eye)
    return torch.full((n, n), 1.0 / n, dtype=x.dtype, device=x.device) + smoother


def ridge_fit_residuals(feats: Tensor, labels: Tensor, ways: int, lam: float) -> Tensor:
    """Training residuals ``Y - H Y`` ``(n, ways)`` of the ridge fit on ``feats`` (used as given)."""
    _check(feats, labels)
    x = feats.double()
    y = one_hot(labels, ways).to(x)
    return (y - _hat_matrix(x, lam) @ y).to(feats.dtype)


def ridge_loo_predictions(feats: Tensor, labels: Tensor, ways: int, lam: float,
                          groups: Tensor | None = None) -> Tensor:
    """Leave-one-group-out ridge predictions ``(n, ways)``, exactly and without refitting.

    For a linear smoother ``Yhat = H Y`` from penalised least squares, the prediction for
    group ``g`` by the fit without ``g`` is ``Y_g - (I - H_gg)^-1 (Y_g - Yhat_g)``.

    Args:
        feats: ``(n, D)`` features (used as given).
        labels: ``(n,)`` int64 in ``[0, ways)``.
        ways: number of classes.
        lam: ridge penalty.
        groups: ``(n,)`` int64 group of each row (e.g. the clip of each piece); ``None`` leaves
            out one row at a time. Needs at least two groups.
    """
    _check(feats, labels)
    n = feats.shape[0]
    groups = torch.arange(n) if groups is None else groups.cpu()
    if groups.shape != (n,):
        raise ValueError(f"groups must have shape ({n},), got {tuple(groups.shape)}")
    ids = torch.unique(groups)
    if ids.numel() < 2:
        raise ValueError("leave-one-group-out needs at least two groups")
    x = feats.double()
    y = one_hot(labels, ways).to(x)
    hat = _hat_matrix(x, lam)
    residual = y - hat @ y
    members = [(groups == g).nonzero().squeeze(1) for g in ids.tolist()]
    pieces, order = [], []
    for size in sorted({m.numel() for m in members}):  # one batched solve per group size
        idx = torch.stack([m for m in members if m.numel() == size]).to(x.device)  # (G, size)
        block = torch.eye(size, dtype=x.dtype, device=x.device) - hat[idx.unsqueeze(2), idx.unsqueeze(1)]
        pieces.append((y[idx] - torch.linalg.solve(block, residual[idx])).reshape(-1, ways))
        order.append(idx.reshape(-1))
    loo = torch.cat(pieces)[torch.argsort(torch.cat(order))]  # back to the rows' original order
    return loo.to(feats.dtype)


# -------------------------------------------------------------------------------- logistic
def logistic_scores(support: Tensor, labels: Tensor, query: Tensor, ways: int, l2: float = 1e-3,
                    steps: int = 100, normalise: bool = True) -> Tensor:
    """Multinomial logistic regression fitted by L-BFGS (strong Wolfe line search).

    Minimises ``mean cross-entropy + l2/2 * ||W||^2`` (bias not penalised) from a zero start,
    so the fit is deterministic. Not differentiated through (features are detached).

    Returns:
        ``(m, ways)`` class probabilities (softmax) of ``query``, so that averaging them over
        a clip's pieces is a vote.
    """
    _check(support, labels, query)
    if steps < 1 or l2 < 0:
        raise ValueError(f"logistic readout needs steps >= 1 and l2 >= 0, got steps={steps}, l2={l2}")
    x = _prepare(support.detach(), normalise)
    q = _prepare(query.detach(), normalise)
    target = labels.to(x.device).long()
    one_hot(target, ways)  # validates the labels
    w = torch.zeros(x.shape[1], ways, dtype=x.dtype, device=x.device, requires_grad=True)
    b = torch.zeros(ways, dtype=x.dtype, device=x.device, requires_grad=True)
    optimiser = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(x @ w + b, target) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    return torch.softmax(q @ w + b, dim=1).detach()


# ------------------------------------------------------------------------------ prototypes
def prototype_scores(support: Tensor, labels: Tensor, query: Tensor, ways: int,
                     metric: Literal["cosine", "euclidean"] = "cosine", normalise: bool = True) -> Tensor:
    """Nearest class mean: cosine similarity, or minus the squared euclidean distance.

    Every class must have at least one support example.
    """
    _check(support, labels, query)
    x, q = _prepare(support, normalise), _prepare(query, normalise)
    y = one_hot(labels, ways).to(x)
    counts = y.sum(0)
    if bool((counts == 0).any()):
        raise ValueError(f"prototype readout: classes {(counts == 0).nonzero().squeeze(1).tolist()} have no support")
    protos = (y.T @ x) / counts.unsqueeze(1)
    if metric == "cosine":
        return l2_normalise(q) @ l2_normalise(protos).T
    if metric == "euclidean":
        return -torch.cdist(q, protos).pow(2)
    raise ValueError(f"prototype metric must be 'cosine' or 'euclidean', got {metric!r}")


Readout = Callable[..., Tensor]
READOUTS: dict[str, Readout] = {
    "ridge": ridge_scores,
    "logistic": logistic_scores,
    "prototype": prototype_scores,
}


def readout_scores(name: str, support: Tensor, labels: Tensor, query: Tensor, ways: int,
                   ridge_lambda: float = 1.0) -> Tensor:
    """Scores ``(m, ways)`` of the readout ``name`` (one of :data:`READOUTS`), features L2-normalised."""
    if name not in READOUTS:
        raise ValueError(f"unknown readout {name!r}; choose one of {sorted(READOUTS)}")
    if name == "ridge":
        return ridge_scores(support, labels, query, ways, lam=ridge_lambda)
    return READOUTS[name](support, labels, query, ways)
