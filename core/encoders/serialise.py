"""One-file encoder export: architecture, invariance space and weights together."""
from __future__ import annotations

import os
from pathlib import Path

from core.encoders.base import InvarianceEncoder
from core.encoders.registry import ENCODERS, build_encoder
from core.fileio import atomic_save, safe_load
from core.invariance import InvarianceSpace

ENCODER_FORMAT = "amortised-invariance-encoder"
ENCODER_VERSION = 1


def save_encoder(encoder: InvarianceEncoder, path: str | os.PathLike) -> Path:
    """Write ``encoder`` to one file loadable by :func:`load_encoder` (atomically).

    The file is a dict of plain data and tensors, so ``torch.load(path, weights_only=True)``
    reads it: ``format``, ``version``, ``encoder`` (registry name), ``config`` (constructor
    keyword arguments), ``space`` (names and min_active) and ``state_dict``.
    """
    if not isinstance(encoder, InvarianceEncoder):
        raise TypeError(f"save_encoder needs an InvarianceEncoder, got {type(encoder).__name__}")
    payload = {
        "format": ENCODER_FORMAT,
        "version": ENCODER_VERSION,
        "encoder": encoder.name,
        "config": dict(encoder.config),
        "space": encoder.space.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
    }
    return atomic_save(payload, path)


def load_encoder(
    path: str | os.PathLike, space: InvarianceSpace | None = None, map_location: str = "cpu"
) -> InvarianceEncoder:
    """Rebuild an encoder written by :func:`save_encoder`, in eval mode.

    Args:
        path: the encoder file.
        space: if given, the file's space must equal it (same names in the same order and
            the same ``min_active``).
        map_location: device for the weights.

    Raises:
        FileNotFoundError, ValueError: missing, corrupt or foreign file, other space,
            unknown architecture or weights that do not fit it; messages name the file.
    """
    data = safe_load(path, "encoder file", map_location)
    if not isinstance(data, dict) or data.get("format") != ENCODER_FORMAT:
        raise ValueError(
            f"{path} is not an encoder file (expected format {ENCODER_FORMAT!r}); a training "
            f"checkpoint is turned into one by the `export` command"
        )
    if data.get("version") != ENCODER_VERSION:
        raise ValueError(f"encoder file {path} has version {data.get('version')}, this code reads {ENCODER_VERSION}")
    missing = {"encoder", "config", "space", "state_dict"} - set(data)
    if missing:
        raise ValueError(f"encoder file {path} lacks keys {sorted(missing)}")
    stored = InvarianceSpace.from_dict(data["space"])
    if space is not None and space != stored:
        raise ValueError(
            f"encoder file {path} was trained for the space {list(stored.names)} "
            f"(min_active={stored.min_active}), not {list(space.names)} (min_active={space.min_active})"
        )
    if data["encoder"] not in ENCODERS:
        raise ValueError(f"encoder file {path} names unknown architecture {data['encoder']!r}; known: {sorted(ENCODERS)}")
    encoder = build_encoder(data["encoder"], stored, **data["config"])
    try:
        encoder.load_state_dict(data["state_dict"], strict=True)
    except RuntimeError as err:
        raise ValueError(f"weights in encoder file {path} do not fit {data['encoder']}: {err}") from err
    return encoder.to(map_location).eval()
