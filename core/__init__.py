"""Modality-free core of the amortised-invariance toolkit.

Public API::

    from core import InvarianceSpace, InvarianceEncoder, build_encoder, load_encoder
"""
from core.encoders.base import InvarianceEncoder
from core.encoders.registry import ENCODERS, build_encoder, list_encoders
from core.encoders.serialise import load_encoder, save_encoder
from core.invariance import InvarianceSpace

__all__ = [
    "ENCODERS",
    "InvarianceEncoder",
    "InvarianceSpace",
    "build_encoder",
    "list_encoders",
    "load_encoder",
    "save_encoder",
]
