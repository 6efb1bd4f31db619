"""Encoder registry: one explicit dict from name to constructor."""
from __future__ import annotations

import importlib
from typing import Any, Callable

from core.encoders.base import InvarianceEncoder
from core.encoders.hyper_resnet import hyper_resnet18, hyper_resnet50
from core.encoders.looc_resnet import looc_resnet18, looc_resnet50
from core.encoders.resnet import resnet18, resnet50
from core.invariance import InvarianceSpace


def _lazy(module: str, name: str) -> Callable[..., InvarianceEncoder]:
    """A constructor that imports ``module`` on first call (timm costs seconds to import,
    and audio runs never need the ViTs)."""

    def build(space: InvarianceSpace, **kwargs: Any) -> InvarianceEncoder:
        return getattr(importlib.import_module(module), name)(space, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"``{module}.{name}``, imported on first use."
    return build


ENCODERS: dict[str, Callable[..., InvarianceEncoder]] = {
    "hyper_resnet18": hyper_resnet18,
    "hyper_resnet50": hyper_resnet50,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "looc_resnet18": looc_resnet18,
    "looc_resnet50": looc_resnet50,
    "prompt_vit_small": _lazy("core.encoders.prompt_vit", "prompt_vit_small"),
    "prompt_vit_base": _lazy("core.encoders.prompt_vit", "prompt_vit_base"),
}


def list_encoders() -> list[str]:
    """Names accepted by :func:`build_encoder`."""
    return sorted(ENCODERS)


def build_encoder(name: str, space: InvarianceSpace, **kwargs: Any) -> InvarianceEncoder:
    """Build a registered encoder.

    Args:
        name: one of :func:`list_encoders`.
        space: the invariance space the descriptors live in.
        **kwargs: architecture options of that encoder (e.g. ``in_chans``, ``width``).
    """
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; registered encoders: {list_encoders()}")
    if not isinstance(space, InvarianceSpace):
        raise TypeError(f"build_encoder needs an InvarianceSpace, got {type(space).__name__}")
    return ENCODERS[name](space, **kwargs)


__all__ = ["ENCODERS", "build_encoder", "list_encoders"]
