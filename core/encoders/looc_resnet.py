"""LooC++'s backbone: a ResNet whose last stage is repeated once per embedding space.

LooC++ (Xiao et al., 2021) keeps the trunk (stem and the first three stages) shared and
gives every embedding space its own last residual stage; the transferred feature is the
concatenation of all branches' pooled features. Plain LooC uses an ordinary ResNet
(``resnet18``/``resnet50``): one shared feature feeds every head.

The descriptor is validated and ignored, as in the plain ResNet baselines.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from core.encoders.base import InvarianceEncoder
from core.encoders.resnet import ResNet, init_resnet_
from core.invariance import InvarianceSpace


class BranchedResNet(nn.Module):
    """``(B, C, H, W)`` -> ``branches`` pooled features ``(B, F)``, concatenated ``(B, branches * F)``.

    Branch 0 is the plain ResNet's own ``layer4``; branches 1.. are independently initialised
    copies of it on the shared trunk.
    """

    def __init__(self, depth: int, in_chans: int, width: int, branches: int, stem: str = "standard") -> None:
        super().__init__()
        if isinstance(branches, bool) or not isinstance(branches, int) or branches < 1:
            raise ValueError(f"branches must be an int >= 1, got {branches!r}")
        self.net = ResNet(depth, in_chans, width, stem)
        extra = [copy.deepcopy(self.net.layer4) for _ in range(branches - 1)]
        for stage in extra:
            init_resnet_(stage)  # fresh He weights: the copies must not start identical
        self.extra_stages = nn.ModuleList(extra)
        self.branch_features = self.net.num_features
        self.num_features = branches * self.branch_features

    def forward_branches(self, x: Tensor) -> list[Tensor]:
        """One ``(B, F)`` feature per branch, branch 0 first."""
        net = self.net
        h = net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x)))))))
        stages = [net.layer4, *self.extra_stages]
        return [torch.flatten(net.avgpool(stage(h)), 1) for stage in stages]

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(self.forward_branches(x), dim=1)


class LooCResNetEncoder(InvarianceEncoder):
    """LooC++ encoder: ``forward`` gives the concatenated branch features, ``forward_branches``
    the per-branch ones (the LooC method feeds branch ``h`` to head ``h``).

    Args:
        space: the invariance space (its descriptor is ignored).
        depth: 18 or 50.
        in_chans: input channels.
        width: first-stage channels.
        branches: number of last stages; None = ``space.dim + 1`` (one per space entry plus
            the all-invariant space, LooC's default heads).
        stem: ``"standard"`` or ``"small"`` (``core.encoders.resnet.STEMS``).
    """

    conditioned = False

    def __init__(self, space: InvarianceSpace, depth: int = 18, in_chans: int = 3, width: int = 64,
                 branches: int | None = None, stem: str = "standard") -> None:
        super().__init__()
        self.space = space
        self.name = f"looc_resnet{depth}"
        branches = space.dim + 1 if branches is None else branches
        self.config = {"in_chans": in_chans, "width": width, "branches": branches, "stem": stem}
        self.net = BranchedResNet(depth, in_chans, width, branches, stem)
        self.branches = branches
        self.num_features = self.net.num_features

    def forward(self, x: Tensor, inv: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, branches * F)``; ``inv`` is checked but has no effect."""
        self.check_descriptor(inv, x)
        return self.net(x)

    def forward_branches(self, x: Tensor, inv: Tensor) -> list[Tensor]:
        """``branches`` features ``(B, F)``; ``inv`` is checked but has no effect."""
        self.check_descriptor(inv, x)
        return self.net.forward_branches(x)

    def specialise(self, inv: Tensor) -> BranchedResNet:
        """A copy of the plain branched network (every descriptor gives the same one)."""
        self._single_descriptor(inv)
        return copy.deepcopy(self.net)


def looc_resnet18(space: InvarianceSpace, **kwargs) -> LooCResNetEncoder:
    """LooC++ ResNet18 (kwargs: ``in_chans``, ``width``, ``branches``, ``stem``)."""
    return LooCResNetEncoder(space, depth=18, **kwargs)


def looc_resnet50(space: InvarianceSpace, **kwargs) -> LooCResNetEncoder:
    """LooC++ ResNet50 (kwargs: ``in_chans``, ``width``, ``branches``, ``stem``)."""
    return LooCResNetEncoder(space, depth=50, **kwargs)
