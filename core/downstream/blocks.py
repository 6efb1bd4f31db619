"""The encoder's top-level blocks (stem, then residual or transformer blocks), for freezing
all but the last k of them in fine-tuning."""
from __future__ import annotations

from typing import Mapping

from torch import nn

from core.encoders.base import InvarianceEncoder
from core.encoders.hyper_resnet import HyperResNet
from core.encoders.looc_resnet import LooCResNetEncoder
from core.encoders.prompt_vit import PromptViT
from core.encoders.resnet import ResNetEncoder


class BlockGroup(nn.Module):
    """Several modules and parameters of an encoder handled as one block.

    It shares (never copies) what it holds, so ``requires_grad_`` and ``train()``/``eval()``
    on the group act on the encoder itself.
    """

    def __init__(self, modules: Mapping[str, nn.Module], params: Mapping[str, nn.Parameter | None] = {}) -> None:
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)
        for name, param in params.items():
            if param is not None:
                self.register_parameter(name, param)


def encoder_blocks(encoder: InvarianceEncoder) -> list[nn.Module]:
    """The encoder's top-level blocks in forward order: stem first, then each residual or
    transformer block.

    * ``hyper_resnet*``: stem (``conv1``, ``bn1``), then every :class:`HyperBlock` (each with
      its own descriptor embedding and kernel generators).
    * ``resnet*``: stem (``net.conv1``, ``net.bn1``), then every residual block.
    * ``looc_resnet*``: as ``resnet*``; block i of the last stage groups block i of every branch.
    * ``prompt_vit_*``: stem (patch embedding, class token, position embedding, the prompt
      MLPs that make the invariance token), then every transformer block; the final
      LayerNorm belongs to the last block.

    Every parameter of the encoder belongs to exactly one block.

    Raises:
        TypeError: for an encoder type without a known block structure.
    """
    if isinstance(encoder, HyperResNet):
        blocks = [BlockGroup({"conv1": encoder.conv1, "bn1": encoder.bn1})]
        blocks += [block for _, block in encoder.blocks()]
    elif isinstance(encoder, ResNetEncoder):
        net = encoder.net
        blocks = [BlockGroup({"conv1": net.conv1, "bn1": net.bn1})]
        blocks += [block for stage in range(1, 5) for block in getattr(net, f"layer{stage}")]
    elif isinstance(encoder, LooCResNetEncoder):
        net = encoder.net.net
        blocks = [BlockGroup({"conv1": net.conv1, "bn1": net.bn1})]
        blocks += [block for stage in range(1, 4) for block in getattr(net, f"layer{stage}")]
        stages = [net.layer4, *encoder.net.extra_stages]
        blocks += [BlockGroup({f"branch{b}": stage[i] for b, stage in enumerate(stages)})
                   for i in range(len(net.layer4))]
    elif isinstance(encoder, PromptViT):
        vit = encoder.vit
        stem_modules = {"patch_embed": vit.patch_embed, "norm_pre": vit.norm_pre, "prompt": encoder.prompt}
        stem_params = {"cls_token": vit.cls_token, "pos_embed": vit.pos_embed,
                       "reg_token": getattr(vit, "reg_token", None)}
        blocks = [BlockGroup(stem_modules, stem_params)] + list(vit.blocks)[:-1]
        tail = {"fc_norm": vit.fc_norm, "head": vit.head} if hasattr(vit, "fc_norm") else {}
        blocks.append(BlockGroup({"block": vit.blocks[-1], "norm": vit.norm, **tail}))
    else:
        raise TypeError(
            f"encoder_blocks: no block structure known for {type(encoder).__name__} "
            f"(name {getattr(encoder, 'name', '?')!r}); supported: HyperResNet (hyper_resnet*), "
            f"ResNetEncoder (resnet*), LooCResNetEncoder (looc_resnet*), PromptViT (prompt_vit_*)"
        )
    covered = [id(p) for b in blocks for p in b.parameters()]
    missing = [n for n, p in encoder.named_parameters() if id(p) not in set(covered)]
    if missing or len(covered) != len(set(covered)):
        raise RuntimeError(f"encoder_blocks: {type(encoder).__name__} blocks do not partition its "
                           f"parameters (unassigned: {missing[:5]})")
    return blocks


def parse_blocks(spec: str, num_blocks: int) -> int:
    """Number of trainable blocks for ``"all"`` or ``"last:<k>"`` (1 <= k <= num_blocks)."""
    if spec == "all":
        return num_blocks
    head, _, k = spec.partition(":")
    if head != "last" or not k.isdigit() or not 1 <= int(k) <= num_blocks:
        raise ValueError(f"FinetuneConfig.blocks: expected 'all' or 'last:<k>' with 1 <= k <= "
                         f"{num_blocks} (the encoder's blocks), got {spec!r}")
    return int(k)


__all__ = ["BlockGroup", "encoder_blocks", "parse_blocks"]
