"""Plain ResNets: the baselines, and the target of :meth:`HyperResNet.specialise`.

Module and parameter names follow torchvision's ResNet (``conv1``, ``layer1.0.bn2``,
``layer2.0.downsample.0``...), minus the ``fc`` classifier, so with the default width of 64 a
state dict from here loads into ``torchvision.models.resnet18/50`` whose ``conv1`` is
adapted to ``in_chans`` and whose ``fc`` is ``nn.Identity()``.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from core.encoders.base import InvarianceEncoder
from core.encoders.descriptor_norm import NORMS
from core.invariance import InvarianceSpace

STAGE_DEPTHS = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}
# "standard": 7x7 stride-2 convolution + 3x3 stride-2 max-pool (ImageNet-sized inputs, /4);
# "small": 3x3 stride-1 convolution, no pooling (32-64 px images, as CIFAR ResNets do).
STEMS = ("standard", "small")


def make_stem(in_chans: int, width: int, stem: str = "standard") -> tuple[nn.Conv2d, nn.Module]:
    """``(conv1, maxpool)`` of a ResNet stem (see ``STEMS``).

    Raises:
        ValueError: an unknown stem (lists the known ones).
    """
    if stem == "standard":
        return nn.Conv2d(in_chans, width, 7, stride=2, padding=3, bias=False), nn.MaxPool2d(3, stride=2, padding=1)
    if stem == "small":
        return nn.Conv2d(in_chans, width, 3, stride=1, padding=1, bias=False), nn.Identity()
    raise ValueError(f"stem must be one of {list(STEMS)}, got {stem!r}")


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample(inplanes, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 with expansion 4 (ResNet50, torchvision's v1.5)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample(inplanes, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def downsample(inplanes: int, outplanes: int, stride: int) -> nn.Sequential | None:
    """The projection shortcut, or None when the identity fits."""
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(conv1x1(inplanes, outplanes, stride), nn.BatchNorm2d(outplanes))


def stage_plan(depth: int, width: int, expansion: int) -> list[tuple[int, int, int]]:
    """(inplanes, planes, stride) of every block, stage by stage, flattened in order."""
    if depth not in STAGE_DEPTHS:
        raise ValueError(f"ResNet depth must be one of {sorted(STAGE_DEPTHS)}, got {depth}")
    if width < 1:
        raise ValueError(f"width must be positive, got {width}")
    plan, inplanes = [], width
    for stage, blocks in enumerate(STAGE_DEPTHS[depth]):
        planes = width * 2**stage
        for b in range(blocks):
            plan.append((inplanes, planes, 2 if stage > 0 and b == 0 else 1))
            inplanes = planes * expansion
    return plan


class ResNet(nn.Module):
    """A plain ResNet feature extractor: ``(B, in_chans, H, W) -> (B, num_features)``.

    Args:
        depth: 18 (BasicBlock) or 50 (Bottleneck).
        in_chans: input channels (1 for log-mel spectrograms, 3 for images).
        width: channels of the first stage (64 in the standard network).
        stem: ``"standard"`` or ``"small"`` (see ``STEMS``).
        bands: rows kept by the final pooling (see :func:`make_pool`): 1 = global average
            pooling; more keeps coarse frequency (audio) or height position, times more features.
    """

    def __init__(self, depth: int = 18, in_chans: int = 3, width: int = 64, stem: str = "standard",
                 bands: int = 1) -> None:
        super().__init__()
        block = BasicBlock if depth == 18 else Bottleneck
        plan = stage_plan(depth, width, block.expansion)
        self.conv1, self.maxpool = make_stem(in_chans, width, stem)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        blocks = iter(plan)
        for stage, count in enumerate(STAGE_DEPTHS[depth]):
            layer = nn.Sequential(*(block(*next(blocks)) for _ in range(count)))
            setattr(self, f"layer{stage + 1}", layer)
        self.avgpool = make_pool(bands)
        self.num_features = width * 8 * block.expansion * bands
        init_resnet_(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def make_pool(bands: int) -> nn.AdaptiveAvgPool2d:
    """The final pooling: average over time (width) and over ``bands`` equal groups of rows
    (frequency, for log-mels), ``(B, C, H, W) -> (B, C, bands, 1)``; ``bands=1`` is global
    average pooling. Global pooling over frequency discards where in the spectrum a pattern
    lies, which absolute pitch needs; a few bands keep it coarsely.

    Raises:
        ValueError: ``bands`` is not an integer >= 1.
    """
    if isinstance(bands, bool) or not isinstance(bands, int) or bands < 1:
        raise ValueError(f"bands={bands!r} must be an integer >= 1")
    return nn.AdaptiveAvgPool2d((bands, 1))


def init_resnet_(model: nn.Module) -> None:
    """He initialisation of ordinary convolutions and unit BatchNorm (torchvision's choice)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResNetEncoder(InvarianceEncoder):
    """Baseline: an ordinary ResNet that validates and then ignores the descriptor."""

    conditioned = False

    def __init__(self, space: InvarianceSpace, depth: int = 18, in_chans: int = 3, width: int = 64,
                 stem: str = "standard", bands: int = 1, norm: str = "batch") -> None:
        """``norm`` is accepted so that one config serves a Hyper-ResNet and its plain baseline:
        features that ignore the descriptor have one set of statistics, so ``"descriptor"`` is
        ordinary BatchNorm here (see :mod:`core.encoders.descriptor_norm`)."""
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.space = space
        self.name = f"resnet{depth}"
        self.config = {"in_chans": in_chans, "width": width, "stem": stem, "bands": bands, "norm": norm}
        self.net = ResNet(depth, in_chans, width, stem, bands)
        self.num_features = self.net.num_features

    def forward(self, x: Tensor, inv: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, num_features)``; ``inv`` is checked but has no effect."""
        self.check_descriptor(inv, x)
        return self.net(x)

    def specialise(self, inv: Tensor) -> ResNet:
        """A copy of the plain network (every descriptor gives the same one)."""
        self._single_descriptor(inv)
        return copy.deepcopy(self.net)


def resnet18(space: InvarianceSpace, **kwargs) -> ResNetEncoder:
    """Plain ResNet18 baseline (kwargs: ``in_chans``, ``width``, ``stem``, ``bands``)."""
    return ResNetEncoder(space, depth=18, **kwargs)


def resnet50(space: InvarianceSpace, **kwargs) -> ResNetEncoder:
    """Plain ResNet50 baseline (kwargs: ``in_chans``, ``width``, ``stem``, ``bands``)."""
    return ResNetEncoder(space, depth=50, **kwargs)
