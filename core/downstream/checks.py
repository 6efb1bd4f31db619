"""Named stops of the downstream fits: non-finite features, a diverged loss, too few classes.

* :class:`NonFiniteFeaturesError` (a ``UserError``, exit status 2): the frozen encoder gave
  NaN or infinite features for some inputs; the message names their clips (file or index).
* :class:`NonFiniteLossError` (a ``RunError``, exit status 1): a fit's loss became NaN or
  infinite although its inputs were finite (e.g. a learning rate too high).
* :class:`TooFewClassesError` (a ``UserError``): a classifier asked to learn fewer than two
  classes, which would report a meaningless 100 %.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from core.errors import RunError, UserError

PieceNames = Callable[[int], str]
"""Row of a piece batch -> a name for its clip (file path or index), for error messages."""
MAX_NAMED = 5  # clips named in a non-finite features message


class NonFiniteFeaturesError(UserError, ValueError):
    """The encoder gave NaN or infinite features for some inputs; the message names their clips."""


class NonFiniteLossError(RunError):
    """A downstream fit's loss became NaN or infinite; the message names the fit and its settings."""


class TooFewClassesError(UserError, ValueError):
    """A classifier's training data holds fewer than two classes."""


def check_finite_features(feats: Tensor, names: PieceNames | None = None, context: str = "") -> Tensor:
    """``feats`` ``(P, D)`` unchanged when every value is finite.

    Args:
        names: row -> its clip's name (default ``"piece <row>"``).
        context: appended to the message (e.g. ``" after transform 'noise' at strength 3"``).

    Raises:
        NonFiniteFeaturesError: names up to :data:`MAX_NAMED` clips whose features hold NaN or
            infinite values, and how many pieces are affected.
    """
    finite = torch.isfinite(feats.detach())
    if bool(finite.all()):
        return feats
    rows = (~finite.reshape(feats.shape[0], -1).all(dim=1)).nonzero().flatten().tolist()
    describe = names or (lambda row: f"piece {row}")
    named = list(dict.fromkeys(describe(r) for r in rows))
    shown = ", ".join(named[:MAX_NAMED]) + (f" and {len(named) - MAX_NAMED} more" if len(named) > MAX_NAMED else "")
    raise NonFiniteFeaturesError(
        f"the encoder's features are NaN or infinite for {len(rows)} of {feats.shape[0]} input piece(s)"
        f"{context}: {shown}; check these inputs (corrupt, silent or extreme values?) and the encoder file, "
        f"or leave them out")


def check_finite_loss(loss: Tensor, what: str) -> Tensor:
    """``loss`` (a scalar) unchanged when finite.

    Raises:
        NonFiniteLossError: ``what`` names the fit, its settings and where it stopped.
    """
    if not bool(torch.isfinite(loss.detach()).all()):
        raise NonFiniteLossError(f"{what}: the training loss became {float(loss.detach())}; the fit diverged "
                                 f"(try a smaller learning rate); nothing was written")
    return loss


def check_classes(labels: Tensor, class_names: Sequence[str] | None, where: str) -> None:
    """Refuse classification training data with fewer than two classes.

    Args:
        labels: ``(N,)`` class ids of the training clips.
        class_names: names of the class ids (for the message), or None.
        where: names the data (e.g. ``"--dataset folder:/data/x, training split"``).

    Raises:
        TooFewClassesError: names ``where`` and the class found.
    """
    found = sorted({int(v) for v in labels.reshape(-1).tolist()})
    if len(found) >= 2:
        return
    if not found:
        raise TooFewClassesError(f"{where}: no training clips; a classifier needs at least 2 classes")
    name = class_names[found[0]] if class_names is not None and 0 <= found[0] < len(class_names) else found[0]
    raise TooFewClassesError(
        f"{where} holds only one class ({name!r}); a classifier needs at least 2 classes in its training "
        f"data (its accuracy would be a meaningless 100 %): choose a dataset or split with more classes")


__all__ = ["MAX_NAMED", "NonFiniteFeaturesError", "NonFiniteLossError", "PieceNames", "TooFewClassesError",
           "check_classes", "check_finite_features", "check_finite_loss"]
