"""Contrastive pre-training methods: SimCLR, MoCo-v2 (per-descriptor queues), MoCo-v3, and the
baselines LooC / LooC++ and AugSelf (on SimCLR or MoCo-v2).

Usage::

    from core.methods import MethodConfig, build_method
    method = build_method(encoder, MethodConfig(name="moco_v2", temperature=0.2), seed=0)
    loss, logs = method(view1, view2, descriptor, step)
"""
from core.methods.augself import AugSelfMoCoV2, AugSelfSimCLR, build_augself
from core.methods.base import Method, MethodConfig, build_projector
from core.methods.looc import LooC
from core.methods.moco import MomentumMethod, cosine_momentum, shuffle_permutation
from core.methods.moco_v2 import MoCoV2
from core.methods.moco_v3 import MoCoV3
from core.methods.registry import METHODS, build_method
from core.methods.simclr import SimCLR

__all__ = [
    "AugSelfMoCoV2",
    "AugSelfSimCLR",
    "LooC",
    "METHODS",
    "Method",
    "MethodConfig",
    "MoCoV2",
    "MoCoV3",
    "MomentumMethod",
    "SimCLR",
    "build_augself",
    "build_method",
    "build_projector",
    "cosine_momentum",
    "shuffle_permutation",
]
