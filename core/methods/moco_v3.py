"""MoCo-v3: symmetrised loss with a predictor, no queue, cosine momentum schedule."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from core.encoders.base import InvarianceEncoder
from core.heads import predictor
from core.losses import mocov3_loss
from core.methods.base import MethodConfig, check_step
from core.methods.moco import MomentumMethod, cosine_momentum


class MoCoV3(MomentumMethod):
    """MoCo-v3: ``q = predictor(projector(encoder(view, d)))``, keys from the momentum
    encoder + projector, loss ``mocov3_loss(q1, q2, k1, k2)`` = ``ctr(q1, k2) + ctr(q2, k1)``.

    Queries and keys are L2-normalised inside the loss (the paper's public code skipped
    this; here it is always done). Each view goes through the encoders separately, as in
    MoCo-v3, so BatchNorm statistics are per view. The momentum rises from
    ``config.momentum`` at step 0 to 1 at ``total_steps`` on a half cosine
    (:meth:`momentum_at`). Keys' BatchNorm follows ``config.batch_norm``
    (see :class:`core.methods.moco.MomentumMethod`).

    Args:
        encoder: the invariance encoder (``self.encoder``).
        config: uses ``temperature``, ``proj_*``, ``pred_hidden``, ``momentum``, ``batch_norm``.
        seed: seeds the shuffle-BN permutations.
    """

    def __init__(self, encoder: InvarianceEncoder, config: MethodConfig, seed: int = 0) -> None:
        super().__init__(encoder, config, seed)
        self.predictor = predictor(config.proj_out, hidden_dim=config.pred_hidden, out_dim=config.proj_out,
                                   num_layers=2)

    def momentum_at(self, step: int, total_steps: int) -> float:
        """``1 - (1 - momentum) * (1 + cos(pi * step / total_steps)) / 2`` (step clamped)."""
        check_step(step, total_steps)
        return cosine_momentum(self.config.momentum, step, total_steps)

    def forward(self, view1: Tensor, view2: Tensor, descriptor: Tensor, step: int
                ) -> tuple[Tensor, dict[str, Tensor]]:
        """Symmetrised MoCo-v3 loss of one step.

        Args:
            view1, view2: ``(B, C, H, W)`` paired views.
            descriptor: ``(K,)`` descriptor of the step.
            step: global step (seeds shuffle-BN).

        Returns:
            ``(loss, {"loss", "pos_cos"})``; ``pos_cos`` is the mean cosine between each
            query and the key of the other view of the same sample.
        """
        d = self.check_inputs(view1, view2, descriptor, step)
        q1 = self.predictor(self.projector(self.encoder(view1, d)))
        q2 = self.predictor(self.projector(self.encoder(view2, d)))
        k1, _ = self.momentum_keys(view1, d, step)
        k2, _ = self.momentum_keys(view2, d, step)
        loss = mocov3_loss(q1, q2, k1, k2, temperature=self.config.temperature)
        with torch.no_grad():
            cos = torch.cat([F.cosine_similarity(q1.float(), k2.float(), dim=1),
                             F.cosine_similarity(q2.float(), k1.float(), dim=1)])
        return loss, {"loss": loss.detach().float(), "pos_cos": cos.mean()}

    def on_step_end(self, step: int, total_steps: int) -> None:
        """EMA update of the key branch with :meth:`momentum_at` ``(step, total_steps)``."""
        self.momentum_update(self.momentum_at(step, total_steps))
