"""SimCLR with an invariance encoder: NT-Xent between the projections of two views."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from core.encoders.base import InvarianceEncoder
from core.losses import nt_xent
from core.methods.base import Method, MethodConfig, build_projector


class SimCLR(Method):
    """SimCLR: ``z = projector(encoder(view, d))``, loss ``nt_xent(z1, z2)``.

    Both views go through the encoder in one forward pass (kernels are generated once for
    the step's descriptor and BatchNorm statistics cover both views, as in SimCLR). The
    negatives of NT-Xent are gathered across ranks with gradient by the loss itself.

    Args:
        encoder: the invariance encoder (``self.encoder``).
        config: uses ``temperature`` and the ``proj_*`` widths.
        seed: unused (SimCLR has no randomness of its own); kept for a uniform interface.
    """

    def __init__(self, encoder: InvarianceEncoder, config: MethodConfig, seed: int = 0) -> None:
        super().__init__(encoder, config, seed)
        self.projector = build_projector(encoder, config)

    def forward(self, view1: Tensor, view2: Tensor, descriptor: Tensor, step: int
                ) -> tuple[Tensor, dict[str, Tensor]]:
        """NT-Xent loss of one step.

        Args:
            view1, view2: ``(B, C, H, W)`` paired views.
            descriptor: ``(K,)`` descriptor of the step.
            step: global step (unused by SimCLR, validated).

        Returns:
            ``(loss, {"loss", "pos_cos"})``; ``pos_cos`` is the mean cosine similarity of
            the local positive pairs ``(z1[i], z2[i])``.
        """
        d = self.check_inputs(view1, view2, descriptor, step)
        return self.contrastive_loss(self.encoder(torch.cat([view1, view2], dim=0), d))

    def contrastive_loss(self, features: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """NT-Xent of encoder features ``(2B, num_features)`` (rows ``i`` and ``B + i`` pair).

        Returns:
            ``(loss, {"loss", "pos_cos"})`` as :meth:`forward`.
        """
        batch = features.shape[0] // 2
        z = self.projector(features)  # (2B, proj_out)
        z1, z2 = z[:batch], z[batch:]
        loss = nt_xent(z1, z2, temperature=self.config.temperature, gather=True)
        with torch.no_grad():
            pos_cos = F.cosine_similarity(z1.float(), z2.float(), dim=1).mean()
        return loss, {"loss": loss.detach().float(), "pos_cos": pos_cos}
