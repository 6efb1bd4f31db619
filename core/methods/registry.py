"""The explicit registry of pre-training methods."""
from __future__ import annotations

from typing import Callable, Mapping

from core.encoders.base import InvarianceEncoder
from core.methods.augself import build_augself
from core.methods.base import Method, MethodConfig
from core.methods.looc import LooC
from core.methods.moco_v2 import MoCoV2
from core.methods.moco_v3 import MoCoV3
from core.methods.simclr import SimCLR

METHODS: dict[str, Callable[..., Method]] = {
    "simclr": SimCLR, "moco_v2": MoCoV2, "moco_v3": MoCoV3, "looc": LooC, "augself": build_augself,
}


def build_method(encoder: InvarianceEncoder, config: MethodConfig, seed: int = 0,
                 target_dims: Mapping[str, int] | None = None) -> Method:
    """Build the method ``config.name`` around ``encoder``.

    Args:
        target_dims: AugSelf only: augmentation name -> width of its parameter target
            (``Modality.target_dims()``).

    Raises:
        ValueError: unknown method name (the message lists the known ones) or bad arguments.
    """
    if not isinstance(config, MethodConfig):
        raise ValueError(f"build_method needs a MethodConfig, got {type(config).__name__}")
    if config.name not in METHODS:
        raise ValueError(f"unknown method {config.name!r}; known methods: {', '.join(sorted(METHODS))}")
    if config.name == "augself":
        return METHODS["augself"](encoder, config, seed=seed, target_dims=target_dims)
    return METHODS[config.name](encoder, config, seed=seed)
