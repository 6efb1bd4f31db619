"""Prompt-ViT: a timm VisionTransformer steered by one appended invariance token.

The descriptor ``i`` (shape ``(K,)``) is embedded by P two-layer MLPs whose outputs are
averaged into a single token, appended after the position-embedded tokens:
``features = norm(blocks([CLS + pos_0, E(x) + pos_1..N, l_prompt(i)]))[:, 0]``.
The token gets no position embedding and is computed once per distinct descriptor.

Pretrained MoCo-v3 ViT weights load into the wrapped ViT unchanged (patch embedding
included, unlike the paper's code). Note that MoCo-v3's ViT-Small uses 12 heads, not
DeiT's 6: build ``prompt_vit_small(space, num_heads=12, pretrained=...)`` for its weights.
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from core.encoders.base import InvarianceEncoder, group_descriptors
from core.fileio import safe_load
from core.invariance import InvarianceSpace

# Per-MLP hidden width. The mean of P MLPs is one MLP of width P*h (see AveragedPromptMLPs),
# so the total width P*h is what matters: 256 * 16 = 4096, the paper's projector width,
# costs ~(4096 + P)*D parameters (3.4M for ViT-B, 1.7M for ViT-S, vs 86M/22M in the ViT).
# The paper's h = D costs P*D*D: 151M for ViT-B (1.8x the ViT itself), 38M for ViT-S.
DEFAULT_PROMPT_HIDDEN = 16
_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


class AveragedPromptMLPs(nn.Module):
    """The mean of P two-layer MLPs ``K -> h -> D``, computed as one wide MLP.

    For MLP p with ``(W1_p, b1_p, W2_p, b2_p)``:
    ``mean_p [W2_p act(W1_p i + b1_p) + b2_p] = (1/P) [W2_1 .. W2_P] act(W1 i + b1) + mean_p b2_p``
    where ``W1 = [W1_1; ..; W1_P]`` stacks the first layers (rows ``p*h:(p+1)*h`` are MLP p).
    So one ``Linear(K -> P*h)``, an activation and one ``(D, P*h)`` matmul scaled by 1/P give
    exactly the average. The second-layer biases stay separate (``bias2`` is ``(P, D)``) so
    parameters, initialisation and gradients are exactly those of P separate ``nn.Linear``
    MLPs, as in the paper.

    Args:
        in_dim: K. out_dim: D. num_prompts: P. hidden: h. act: "relu" (paper) or "gelu".
    """

    def __init__(
        self, in_dim: int, out_dim: int, num_prompts: int, hidden: int, act: str = "relu"
    ) -> None:
        super().__init__()
        if act not in _ACTIVATIONS:
            raise ValueError(f"prompt_act must be one of {sorted(_ACTIVATIONS)}, got {act!r}")
        for name, value in (("num_prompts", num_prompts), ("prompt_hidden", hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.num_prompts, self.hidden = num_prompts, hidden
        self.fc1 = nn.Linear(in_dim, num_prompts * hidden)  # fan-in K, as each Linear(K, h)
        self.act = _ACTIVATIONS[act]()
        self.weight2 = nn.Parameter(torch.empty(out_dim, num_prompts * hidden))
        self.bias2 = nn.Parameter(torch.empty(num_prompts, out_dim))
        bound = hidden**-0.5  # nn.Linear(h, D)'s default init bound, fan-in h
        nn.init.uniform_(self.weight2, -bound, bound)
        nn.init.uniform_(self.bias2, -bound, bound)

    def forward(self, inv: Tensor) -> Tensor:
        """``(U, K)`` descriptors -> ``(U, D)`` averaged tokens."""
        hidden = self.act(self.fc1(inv))
        return F.linear(hidden, self.weight2) / self.num_prompts + self.bias2.mean(0)


def _encode(vit: VisionTransformer, x: Tensor, token: Tensor) -> Tensor:
    """CLS features of ``x`` ``(B, C, H, W)`` with invariance ``token`` ``(B or 1, 1, D)``."""
    tokens = vit.patch_drop(vit._pos_embed(vit.patch_embed(x)))  # [CLS, patches] + pos_embed
    token = token.to(tokens.dtype).expand(tokens.shape[0], -1, -1)
    tokens = vit.norm_pre(torch.cat([tokens, token], dim=1))  # invariance token: no pos_embed
    if vit.grad_checkpointing and torch.is_grad_enabled():
        for block in vit.blocks:
            tokens = checkpoint(block, tokens, use_reentrant=False)
    else:
        tokens = vit.blocks(tokens)
    return vit.norm(tokens)[:, 0]


class SpecialisedPromptViT(nn.Module):
    """A Prompt-ViT with its invariance token fixed: an ordinary ``x -> (B, D)`` module.

    It holds its own copy of the encoder's ViT (training one leaves the other alone) and
    the token as a detached buffer ``(1, 1, D)``.
    """

    def __init__(self, vit: VisionTransformer, token: Tensor) -> None:
        super().__init__()
        self.vit = vit
        self.num_features = vit.embed_dim
        self.register_buffer("inv_token", token.detach().clone().reshape(1, 1, -1))

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, D)``."""
        return _encode(self.vit, x, self.inv_token)


class PromptViT(InvarianceEncoder):
    """ViT whose features depend on an invariance descriptor through one prompt token.

    Args:
        space: the invariance space (K = ``space.dim``).
        img_size, patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio,
            drop_path_rate: options of the wrapped timm ``VisionTransformer`` (class token,
            learned position embedding, no head). Defaults are ViT-B/16.
        num_prompts: P, the number of averaged prompt MLPs (paper: 256).
        prompt_hidden: h, the hidden width of each prompt MLP (default 16; ``None`` means
            ``embed_dim``, the paper's choice, which costs P*D*D parameters).
        prompt_act: the prompt MLPs' activation, "relu" (paper) or "gelu".
        pretrained: path of a local MoCo-v3 (or plain timm) ViT checkpoint to start from.
    """

    def __init__(
        self,
        space: InvarianceSpace,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        num_prompts: int = 256,
        prompt_hidden: int | None = DEFAULT_PROMPT_HIDDEN,
        prompt_act: str = "relu",
        drop_path_rate: float = 0.0,
        pretrained: str | Path | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(space, InvarianceSpace):
            raise TypeError(f"PromptViT needs an InvarianceSpace, got {type(space).__name__}")
        prompt_hidden = embed_dim if prompt_hidden is None else prompt_hidden
        self.space = space
        self.name = "prompt_vit_base"  # the registered constructor that rebuilds it from config
        self.config: dict[str, Any] = dict(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
            depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, num_prompts=num_prompts,
            prompt_hidden=prompt_hidden, prompt_act=prompt_act, drop_path_rate=drop_path_rate,
        )
        self.vit = VisionTransformer(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, num_classes=0,
            global_pool="token", embed_dim=embed_dim, depth=depth, num_heads=num_heads,
            mlp_ratio=mlp_ratio, class_token=True, drop_path_rate=drop_path_rate,
        )
        self.num_features = embed_dim
        self.prompt = AveragedPromptMLPs(
            space.dim, embed_dim, num_prompts, prompt_hidden, prompt_act)
        self.load_report: dict[str, Any] | None = None
        if pretrained is not None:
            self.load_report = load_mocov3_checkpoint(self, pretrained)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations in the backward pass to save memory."""
        self.vit.set_grad_checkpointing(enable)

    def invariance_tokens(self, inv: Tensor) -> Tensor:
        """Descriptors ``(U, K)`` -> invariance tokens ``(U, D)`` (no validation)."""
        return self.prompt(inv)

    def forward(self, x: Tensor, inv: Tensor) -> Tensor:
        """Features ``(B, D)`` of ``x`` ``(B, C, H, W)`` under ``inv`` ``(K,)`` or ``(B, K)``."""
        inv = self.check_descriptor(inv, x)
        groups = group_descriptors(inv, x.shape[0])
        tokens = self.invariance_tokens(groups.descriptors)  # once per distinct descriptor
        if groups.counts is None:
            token = tokens[:1].unsqueeze(1)  # (1, 1, D), broadcast over the batch
        else:
            counts = torch.as_tensor(groups.counts, device=tokens.device)
            token = groups.unsort(tokens.repeat_interleave(counts, dim=0)).unsqueeze(1)
        return _encode(self.vit, x, token)

    def specialise(self, inv: Tensor) -> SpecialisedPromptViT:
        """An independent module ``x -> self(x, inv)``: a copy of this ViT with the token cached."""
        inv = self._single_descriptor(inv)
        with torch.no_grad():
            token = self.invariance_tokens(inv.unsqueeze(0))
        return SpecialisedPromptViT(copy.deepcopy(self.vit), token).train(self.training)


def prompt_vit_small(space: InvarianceSpace, **kwargs: Any) -> PromptViT:
    """ViT-S/16 (384 wide, 12 deep, 6 heads) Prompt-ViT; ``kwargs`` override any option."""
    model = PromptViT(space, **{"embed_dim": 384, "depth": 12, "num_heads": 6, **kwargs})
    model.name = "prompt_vit_small"
    return model


def prompt_vit_base(space: InvarianceSpace, **kwargs: Any) -> PromptViT:
    """ViT-B/16 (768 wide, 12 deep, 12 heads) Prompt-ViT; ``kwargs`` override any option."""
    model = PromptViT(space, **{"embed_dim": 768, "depth": 12, "num_heads": 12, **kwargs})
    model.name = "prompt_vit_base"
    return model


_PREFIXES = ("module.base_encoder.", "base_encoder.", "module.", "")
_IGNORED = ("head.", "fc_norm.")  # MoCo-v3 projector / a timm classifier head


def load_mocov3_checkpoint(model: PromptViT, path: str | Path) -> dict[str, Any]:
    """Initialise ``model.vit`` from a local MoCo-v3 or timm ViT checkpoint.

    Accepts ``{"state_dict": {"module.base_encoder.<key>": ...}}`` (also prefixes
    ``base_encoder.``, ``module.`` or none, and a top-level ``"model"`` dict) or a plain
    timm state dict. Momentum encoder, predictor and ``head.*`` keys are ignored; every
    other key must match the ViT's keys and shapes exactly. The prompt MLPs keep their
    fresh initialisation.

    Returns:
        ``{"path", "prefix", "loaded", "ignored"}`` (``loaded`` = number of tensors loaded).

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable file, or missing,
        unexpected or wrongly shaped keys (all named with the file).
    """
    path = Path(path)
    ckpt = safe_load(path, "pretrained ViT checkpoint")
    state = ckpt.get("state_dict", ckpt.get("model", ckpt)) if isinstance(ckpt, Mapping) else ckpt
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(v, Tensor) for v in state.values()):
        raise ValueError(
            f"{str(path)!r} holds no state dict of tensors (MoCo-v3 or timm ViT expected)")
    prefix = next(p for p in _PREFIXES if any(k.startswith(p) for k in state))
    picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    ignored = [k for k in picked if k.startswith(_IGNORED)]
    picked = {k: v for k, v in picked.items() if k not in ignored}
    own = model.vit.state_dict()
    missing = sorted(set(own) - set(picked))
    unexpected = sorted(set(picked) - set(own))
    wrong = [f"{k}: {tuple(picked[k].shape)} vs {tuple(own[k].shape)}"
             for k in own if k in picked and picked[k].shape != own[k].shape]
    problems = [f"{label} {keys}" for label, keys in (
        ("missing keys", missing), ("unexpected keys", unexpected),
        ("shape mismatches (checkpoint vs model)", wrong)) if keys]
    if problems:
        raise ValueError(
            f"pretrained ViT checkpoint {str(path)!r} (key prefix {prefix!r}) does not fit "
            f"the model {model.config}: " + "; ".join(problems))
    arch = ckpt.get("arch") if isinstance(ckpt, Mapping) else None
    if arch == "vit_small" and model.config["num_heads"] != 12:
        warnings.warn(f"{str(path)!r} is a MoCo-v3 vit_small, which uses 12 heads; the model has "
                      f"{model.config['num_heads']} (shapes fit, attention differs)", stacklevel=2)
    model.vit.load_state_dict(picked, strict=True)
    return {"path": str(path), "prefix": prefix, "loaded": len(picked), "ignored": len(ignored)}


__all__ = ["AveragedPromptMLPs", "PromptViT", "SpecialisedPromptViT", "load_mocov3_checkpoint",
           "prompt_vit_base", "prompt_vit_small"]
