"""Hyper-ResNet: a ResNet whose block kernels are generated from the invariance descriptor.

The stem convolution and every BatchNorm are ordinary parameters (``norm="descriptor"``:
BatchNorm with running statistics per descriptor, :mod:`core.encoders.descriptor_norm`). Each residual block has
an embedding ``Linear(K -> E)`` and one :class:`~core.hyper.KernelGenerator` per
convolution (including the projection shortcut). Kernels are generated once per distinct
descriptor in the batch; :meth:`HyperResNet.specialise` bakes them into a plain
:class:`~core.encoders.resnet.ResNet` with torchvision's parameter names.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor, nn

from core.encoders.base import DescriptorGroups, InvarianceEncoder, group_descriptors
from core.encoders.descriptor_norm import DescriptorBatchNorm2d, make_norm, normalise
from core.encoders.resnet import STAGE_DEPTHS, ResNet, init_resnet_, make_pool, make_stem, stage_plan
from core.hyper import HyperConv2d, centre_embedding
from core.invariance import InvarianceSpace

BLOCK_KINDS = {18: "basic", 50: "bottleneck"}
EXPANSION = {"basic": 1, "bottleneck": 4}


class HyperBlock(nn.Module):
    """A residual block (basic or bottleneck) with generated kernels.

    Args:
        kind: ``"basic"`` (two 3x3) or ``"bottleneck"`` (1x1, strided 3x3, 1x1; expansion 4).
        inplanes, planes, stride: as in torchvision's blocks.
        space_dim: K, the descriptor length.
        embed_dim: E, size of this block's descriptor embedding.
        norm: ``"batch"`` or ``"descriptor"`` (see :func:`~core.encoders.descriptor_norm.make_norm`).
        **generator: ``hidden_dim``, ``form``, ``base_fraction`` for every generator.
    """

    def __init__(
        self, kind: str, inplanes: int, planes: int, stride: int, space_dim: int, embed_dim: int,
        norm: str = "batch", **generator
    ) -> None:
        super().__init__()
        outplanes = planes * EXPANSION[kind]
        if kind == "basic":
            specs = [(inplanes, planes, 3, stride), (planes, planes, 3, 1)]
        else:
            specs = [(inplanes, planes, 1, 1), (planes, planes, 3, stride), (planes, outplanes, 1, 1)]
        self.embed = nn.Linear(space_dim, embed_dim)
        self.num_convs = len(specs)
        for j, (cin, cout, k, s) in enumerate(specs, start=1):
            conv = HyperConv2d(cin, cout, k, s, k // 2, embed_dim=embed_dim, **generator)
            setattr(self, f"conv{j}", conv)
            setattr(self, f"bn{j}", make_norm(norm, cout, space_dim))
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.ModuleList | None = None
        if stride != 1 or inplanes != outplanes:
            shortcut = HyperConv2d(inplanes, outplanes, 1, stride, 0, embed_dim=embed_dim, **generator)
            self.downsample = nn.ModuleList([shortcut, make_norm(norm, outplanes, space_dim)])

    def forward(self, x: Tensor, groups: DescriptorGroups) -> Tensor:
        """``(B, inplanes, H, W)`` sorted by group -> ``(B, planes*expansion, H', W')``."""
        e = self.embed(groups.descriptors)
        out = x
        for j in range(1, self.num_convs + 1):
            out = normalise(getattr(self, f"bn{j}"), getattr(self, f"conv{j}")(out, e, groups), groups)
            if j < self.num_convs:
                out = self.relu(out)
        identity = x
        if self.downsample is not None:
            conv, bn = self.downsample
            identity = normalise(bn, conv(x, e, groups), groups)
        return self.relu(out + identity)

    def hyper_convs(self) -> Iterator[tuple[str, HyperConv2d]]:
        """(name inside the block, layer) of every generated convolution."""
        for name, module in self.named_modules():
            if isinstance(module, HyperConv2d):
                yield name, module


class HyperResNet(InvarianceEncoder):
    """ResNet18/50 with descriptor-generated kernels: ``(x, inv) -> (B, num_features)``.

    Args:
        space: the invariance space (K = ``space.dim``).
        depth: 18 (basic blocks) or 50 (bottlenecks).
        in_chans: input channels (1 for log-mel, 3 for images).
        width: channels of the first stage (64 standard; smaller for tests and quickstarts).
        embed_dim: E, per-block descriptor embedding size (paper: 16).
        hidden_dim: H, generator hidden width (paper: 32).
        generator: ``"lowrank"`` (default, ~1.4x a plain ResNet's parameters) or ``"full"``
            (the paper's ``Linear(H -> out*in*k*k)``, ~33x); see :mod:`core.hyper`.
        base_fraction: low-rank form, share of initial kernel variance in the fixed base.
        stem: ``"standard"`` (7x7 stride 2 + max-pool) or ``"small"`` (3x3 stride 1, for 32-64
            px images); see ``core.encoders.resnet.STEMS``.
        bands: rows kept by the final pooling (``core.encoders.resnet.make_pool``; 1 = global
            average pooling, the paper's).
        norm: ``"batch"`` (ordinary BatchNorm, the paper's) or ``"descriptor"`` (running
            statistics per descriptor, :class:`~core.encoders.descriptor_norm.DescriptorBatchNorm2d`).
    """

    def __init__(
        self,
        space: InvarianceSpace,
        depth: int = 18,
        in_chans: int = 3,
        width: int = 64,
        embed_dim: int = 16,
        hidden_dim: int = 32,
        generator: str = "lowrank",
        base_fraction: float = 0.5,
        stem: str = "standard",
        bands: int = 1,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if depth not in BLOCK_KINDS:
            raise ValueError(f"HyperResNet depth must be one of {sorted(BLOCK_KINDS)}, got {depth}")
        self.space = space
        self.depth = depth
        self.name = f"hyper_resnet{depth}"
        self.config = {
            "in_chans": in_chans,
            "width": width,
            "embed_dim": embed_dim,
            "hidden_dim": hidden_dim,
            "generator": generator,
            "base_fraction": base_fraction,
            "stem": stem,
            "bands": bands,
            "norm": norm,
        }
        kind = BLOCK_KINDS[depth]
        self.conv1, self.maxpool = make_stem(in_chans, width, stem)
        self.bn1 = make_norm(norm, width, space.dim)
        self.relu = nn.ReLU(inplace=True)
        gen = {"hidden_dim": hidden_dim, "form": generator, "base_fraction": base_fraction}
        plan = iter(stage_plan(depth, width, EXPANSION[kind]))
        for stage, count in enumerate(STAGE_DEPTHS[depth]):
            blocks = [HyperBlock(kind, *next(plan), space.dim, embed_dim, norm, **gen) for _ in range(count)]
            setattr(self, f"layer{stage + 1}", nn.ModuleList(blocks))
        self.avgpool = make_pool(bands)
        self.num_features = width * 8 * EXPANSION[kind] * bands
        init_resnet_(self)
        if not self.conv1.weight.is_meta:  # a meta build (shapes only, core.encoders.serialise) has no values
            self._calibrate(space.descriptors.to(self.conv1.weight.device))

    @torch.no_grad()
    def _calibrate(self, descriptors: Tensor) -> None:
        """Scale every generator so kernels start with He variance over these descriptors."""
        for _, block in self.blocks():
            e = centre_embedding(block.embed, descriptors)
            for _, conv in block.hyper_convs():
                conv.generator.calibrate(e)

    def blocks(self) -> Iterator[tuple[str, HyperBlock]]:
        """(``"layerS.I"``, block) for every residual block, in order."""
        for stage in range(1, 5):
            for i, block in enumerate(getattr(self, f"layer{stage}")):
                yield f"layer{stage}.{i}", block

    def forward(self, x: Tensor, inv: Tensor) -> Tensor:
        """Features ``(B, num_features)`` of ``x`` ``(B, C, H, W)`` under ``inv`` ``(K,)`` or ``(B, K)``."""
        inv = self.check_descriptor(inv, x)
        groups = group_descriptors(inv, x.shape[0])
        x = groups.sort(x)
        x = self.maxpool(self.relu(normalise(self.bn1, self.conv1(x), groups)))
        for _, block in self.blocks():
            x = block(x, groups)
        return groups.unsort(torch.flatten(self.avgpool(x), 1))

    def generate_kernels(self, inv: Tensor) -> dict[str, Tensor]:
        """Every generated kernel for one descriptor ``(K,)``, keyed by torchvision-style
        module path (e.g. ``"layer2.0.downsample.0"``), each ``(out, in, k, k)``."""
        inv = self._single_descriptor(inv).unsqueeze(0)
        kernels = {}
        with torch.no_grad():
            for path, block in self.blocks():
                e = block.embed(inv)
                for name, conv in block.hyper_convs():
                    kernels[f"{path}.{name}"] = conv.generator(e)[0]
        return kernels

    def specialise(self, inv: Tensor) -> ResNet:
        """A plain :class:`ResNet` with the kernels for ``inv`` ``(K,)`` baked in.

        Stem and BatchNorm parameters and running statistics are copied (descriptor BatchNorm:
        its statistics for ``inv``); the result has the
        same device, dtype and train/eval mode as this encoder, and in eval mode
        ``specialise(d)(x)`` equals ``self(x, d)``.
        """
        state = {
            key: value
            for key, value in self.state_dict().items()
            if ".generator." not in key and ".embed." not in key and ".corner_" not in key
        }
        state.update({f"{path}.weight": k for path, k in self.generate_kernels(inv).items()})
        single = self._single_descriptor(inv)
        with torch.no_grad():
            for path, module in self.named_modules():
                if isinstance(module, DescriptorBatchNorm2d):
                    mean, var = module.statistics(single)
                    state[f"{path}.running_mean"], state[f"{path}.running_var"] = mean, var
        plain = ResNet(self.depth, self.config["in_chans"], self.config["width"], self.config["stem"],
                       self.config["bands"])
        plain = plain.to(self.conv1.weight)
        plain.load_state_dict(state, strict=True)  # after .to(): no rounding through float32
        return plain.train(self.training)

    def export_torchvision(self, inv: Tensor) -> dict[str, Tensor]:
        """State dict for ``torchvision.models.resnet18/50`` with ``conv1`` adapted to
        ``in_chans`` and ``fc = nn.Identity()``; needs the standard width of 64."""
        if self.config["width"] != 64 or self.config["stem"] != "standard" or self.config["bands"] != 1:
            raise ValueError(
                f"torchvision's ResNet has a fixed first-stage width of 64, the standard stem and global "
                f"pooling; this encoder has width={self.config['width']}, stem={self.config['stem']!r}, "
                f"bands={self.config['bands']} (use specialise() "
                f"for a plain module instead)"
            )
        return {k: v.detach().clone() for k, v in self.specialise(inv).state_dict().items()}


def hyper_resnet18(space: InvarianceSpace, **kwargs) -> HyperResNet:
    """Hyper-ResNet18 (audio default). kwargs: in_chans, width, embed_dim, hidden_dim,
    generator, base_fraction, stem, bands, norm."""
    return HyperResNet(space, depth=18, **kwargs)


def hyper_resnet50(space: InvarianceSpace, **kwargs) -> HyperResNet:
    """Hyper-ResNet50 (vision default). kwargs as :func:`hyper_resnet18`."""
    return HyperResNet(space, depth=50, **kwargs)
