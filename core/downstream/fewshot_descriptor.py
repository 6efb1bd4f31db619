"""Choosing the descriptor of a few-shot evaluation: per episode, per dataset, or best corner.

The descriptor is always learned through the differentiable ridge readout (on L2-normalised
features, with the run's ``ridge_lambda``), whatever readout is then used for scoring. It
starts at 0.5 per entry and is updated by Adam, then clamped to [0, 1] after every step
(projected gradient descent).

Per-episode criterion on the support set alone (no augmentation, no query labels):

* every class has >= 2 support clips (shots > 1): mean squared error of the exact
  leave-one-clip-out ridge predictions (all pieces of a clip are held out together);
* otherwise, every class has >= 2 support pieces (1-shot with multi-piece clips): the same
  with one piece held out at a time;
* otherwise (1-shot, one piece per clip): mean squared training residual of a ridge fit with
  a strong penalty ``lambda_s = max(ridge_lambda, 10 n)`` (n = support pieces). For large
  ``lambda_s`` the residual is ``||Yc||^2 - (2 / lambda_s) tr(Yc^T Kc Yc) + O(lambda_s^-2)``:
  minimising it maximises the alignment of the centred feature kernel with the labels, i.e.
  spreads the support examples of different classes apart. With one example per class it
  cannot tell class variation from nuisance variation; it only favours descriptors that keep
  the examples distinguishable.

Per-dataset criterion: on training-class episodes, the mean squared error of the ridge
fitted on the support and evaluated (voting over pieces) on the query clips.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from core.downstream.checks import PieceNames, check_finite_features, check_finite_loss
from core.downstream.clips import ClipSource, pool_by_owner
from core.downstream.episodes import Episode
from core.downstream.fewshot_eval import FeatureCache, accuracy_of, clip_scores
from core.downstream.readouts import (l2_normalise, one_hot, ridge_fit_residuals, ridge_loo_predictions,
                                      ridge_scores)
from core.encoders.base import InvarianceEncoder

STRONG_LAMBDA_PER_EXAMPLE = 10.0


def features_with_grad(encoder: InvarianceEncoder, x: Tensor, descriptor: Tensor, batch_size: int,
                       device: str | torch.device, names: PieceNames | None = None) -> Tensor:
    """Features ``(P, D)`` of ``x`` ``(P, C, H, W)`` differentiable w.r.t. ``descriptor`` (eval mode).

    Raises:
        NonFiniteFeaturesError: NaN or infinite features; ``names`` (row -> clip) names the clips.
    """
    encoder.eval()
    chunks = [encoder(x[i:i + batch_size].to(device), descriptor) for i in range(0, x.shape[0], batch_size)]
    return check_finite_features(torch.cat(chunks).float(), names)


def support_criterion(feats: Tensor, labels: Tensor, clip: Tensor, ways: int, lam: float) -> Tensor:
    """Scalar loss of a support set (see the module docstring for the three cases).

    Args:
        feats: ``(P, D)`` support piece features (L2-normalised here).
        labels: ``(P,)`` episode label of each piece.
        clip: ``(P,)`` clip of each piece.
        ways: number of classes.
        lam: the readout's ridge penalty.
    """
    x = l2_normalise(feats)
    labels = labels.to(x.device)
    target = one_hot(labels, ways).to(x)
    clips_per_class = [torch.unique(clip[labels.cpu() == c]).numel() for c in range(ways)]
    pieces_per_class = torch.bincount(labels.cpu(), minlength=ways)
    if min(clips_per_class) >= 2:
        return (ridge_loo_predictions(x, labels, ways, lam, groups=clip) - target).pow(2).mean()
    if int(pieces_per_class.min()) >= 2:
        return (ridge_loo_predictions(x, labels, ways, lam) - target).pow(2).mean()
    strong = max(lam, STRONG_LAMBDA_PER_EXAMPLE * x.shape[0])
    return ridge_fit_residuals(x, labels, ways, strong).pow(2).mean()


def query_criterion(support: Tensor, support_labels: Tensor, query: Tensor, query_owner: Tensor,
                    query_labels: Tensor, ways: int, lam: float) -> Tensor:
    """Mean squared error of the support-fitted ridge's clip scores (voted) on labelled queries.

    Args:
        support: ``(P_s, D)`` piece features; ``support_labels`` ``(P_s,)`` their labels.
        query: ``(P_q, D)`` piece features; ``query_owner`` ``(P_q,)`` their clip position;
            ``query_labels`` ``(n_q,)`` the clips' labels.
    """
    scores = ridge_scores(support, support_labels.to(support.device), query, ways, lam)
    voted = pool_by_owner(scores, query_owner, query_labels.shape[0])
    return (voted - one_hot(query_labels, ways).to(voted)).pow(2).mean()


def _adam_projected(k: int, lr: float, device: str | torch.device, init: float = 0.5
                    ) -> tuple[Tensor, torch.optim.Adam]:
    d = torch.full((k,), float(init), device=device, requires_grad=True)
    return d, torch.optim.Adam([d], lr=lr)


def _step(d: Tensor, optimiser: torch.optim.Adam, grad: Tensor) -> None:
    d.grad = grad
    optimiser.step()
    with torch.no_grad():
        d.clamp_(0.0, 1.0)


def learn_episode_descriptor(encoder: InvarianceEncoder, x: Tensor, owner: Tensor, clip_labels: Tensor,
                             ways: int, lam: float, steps: int, lr: float, batch_size: int = 256,
                             device: str | torch.device = "cpu", names: PieceNames | None = None,
                             init: float = 0.5) -> Tensor:
    """Descriptor ``(K,)`` (CPU) learned on one episode's support pieces, starting from ``init``
    in every entry.

    Args:
        x: ``(P, C, H, W)`` support pieces; ``owner`` ``(P,)`` their clip position;
            ``clip_labels`` the support clips' episode labels.
        steps: Adam steps (0 keeps the start).
        names: row of ``x`` -> its clip's name, for a non-finite features error.

    Raises:
        NonFiniteFeaturesError: NaN or infinite features (names the clips).
        NonFiniteLossError: the support criterion became NaN or infinite.
    """
    d, optimiser = _adam_projected(encoder.space.dim, lr, device, init)
    labels = clip_labels[owner]
    with torch.enable_grad():
        for step in range(steps):
            feats = features_with_grad(encoder, x, d, batch_size, device, names)
            loss = check_finite_loss(support_criterion(feats, labels, owner, ways, lam),
                                     f"few-shot descriptor of an episode (step {step + 1} of {steps})")
            (grad,) = torch.autograd.grad(loss, d)
            _step(d, optimiser, grad)
    return d.detach().cpu()


def learn_dataset_descriptor(encoder: InvarianceEncoder, train: ClipSource, episodes: Sequence[Episode],
                             lam: float, steps: int, lr: float, batch_size: int = 256,
                             device: str | torch.device = "cpu", progress: bool = False, init: float = 0.5
                             ) -> tuple[Tensor, list[float]]:
    """Descriptor ``(K,)`` learned once on training-class episodes (:func:`query_criterion`),
    starting from ``init`` in every entry (0.5: undecided; 1: the all-invariant corner).

    Adam step ``s`` averages the loss over episodes ``[s c, (s + 1) c)`` (modulo ``E``) with
    ``c = ceil(E / steps)``, so every training episode is used about once overall; gradients are
    accumulated episode by episode to bound memory.

    Returns:
        The descriptor (CPU) and the mean loss of every step.
    """
    if not episodes:
        raise ValueError("learn_dataset_descriptor needs at least one training episode")
    d, optimiser = _adam_projected(encoder.space.dim, lr, device, init)
    per_step = math.ceil(len(episodes) / max(steps, 1))
    losses = []
    with torch.enable_grad():
        for step in tqdm(range(steps), desc="descriptor (dataset)", disable=not progress):
            chosen = [episodes[(step * per_step + j) % len(episodes)] for j in range(per_step)]
            grad, total = torch.zeros_like(d), 0.0
            for ep in chosen:
                xs, os_ = train.pieces(ep.support)
                xq, oq = train.pieces(ep.query)
                support_names, query_names = train.piece_names(ep.support, os_), train.piece_names(ep.query, oq)
                n_s = xs.shape[0]
                feats = features_with_grad(encoder, torch.cat([xs, xq]), d, batch_size, device,
                                           lambda r: support_names(r) if r < n_s else query_names(r - n_s))
                loss = query_criterion(feats[:n_s], ep.support_labels[os_], feats[n_s:],
                                       oq.to(feats.device), ep.query_labels, ep.ways, lam) / len(chosen)
                check_finite_loss(loss, f"few-shot dataset descriptor (step {step + 1} of {steps})")
                grad += torch.autograd.grad(loss, d)[0]
                total += float(loss.detach())
            _step(d, optimiser, grad)
            losses.append(total)
    return d.detach().cpu(), losses


def choose_corner(encoder: InvarianceEncoder, train: ClipSource, episodes: Sequence[Episode], readout: str,
                  lam: float, batch_size: int = 256, device: str | torch.device = "cpu",
                  progress: bool = False) -> tuple[Tensor, list[dict]]:
    """The binary descriptor of ``encoder.space.descriptors`` with the best mean accuracy on ``episodes``.

    Features are computed once per (clip, corner) and dropped after each corner. Ties go to
    the corner listed first.

    Returns:
        The chosen corner ``(K,)`` and one row ``{"descriptor", "accuracy"}`` per corner.
    """
    if not episodes:
        raise ValueError("choose_corner needs at least one training episode")
    cache = FeatureCache(encoder, train, batch_size, device)
    clips = sorted({i for ep in episodes for i in ep.support + ep.query})
    rows, best, best_acc = [], None, -1.0
    for corner in tqdm(encoder.space.descriptors, desc="corners", disable=not progress):
        cache.prefetch(clips, corner)
        accs = []
        for ep in episodes:
            s, so = cache.features(ep.support, corner)
            q, qo = cache.features(ep.query, corner)
            scores = clip_scores(s, so, ep.support_labels, q, qo, len(ep.query), ep.ways, readout, lam)
            accs.append(accuracy_of(scores, ep.query_labels))
        cache.drop(corner)
        acc = sum(accs) / len(accs)
        rows.append({"descriptor": corner.tolist(), "accuracy": acc})
        if acc > best_acc:
            best, best_acc = corner, acc
    return best, rows
