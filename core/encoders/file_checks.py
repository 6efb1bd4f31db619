"""Checks an encoder file must pass before its model is built: field types, the config
against the stored weights (built on the ``meta`` device, so a config asking for a huge
model is refused before anything is allocated) and finite weights.

Every fault is an :class:`EncoderFileError` (a ``UserError``) naming the file and what is wrong.
"""
from __future__ import annotations

import os
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from core.encoders.registry import build_encoder
from core.errors import UserError
from core.invariance import InvarianceSpace

_CONFIG_SCALARS = (str, int, float, bool, type(None))
# Torch calls a meta build may make per stored tensor (the registered encoders make 5-9),
# plus a fixed allowance: a config asking for many more layers than the file holds stops early.
META_CALLS_PER_TENSOR = 64
META_CALLS_BASE = 4096


class EncoderFileError(UserError, ValueError):
    """An encoder file or training checkpoint that cannot be used; the message names the file
    and what is wrong. (Also a ``ValueError``, as these faults were before.)"""


class EncoderFileMissing(UserError, FileNotFoundError):
    """The encoder file does not exist (also a ``FileNotFoundError``)."""


def check_fields(payload: dict[str, Any], path: str | os.PathLike) -> None:
    """Types of the payload's fields: encoder name, plain config, space record, tensors, extra dict."""
    if not isinstance(payload["encoder"], str):
        raise EncoderFileError(f"encoder file {path}: 'encoder' must be an architecture name, got "
                               f"{type(payload['encoder']).__name__}")
    config = payload["config"]
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise EncoderFileError(f"encoder file {path}: 'config' must be a dict of constructor options, got "
                               f"{type(config).__name__}")
    for key, value in config.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        if not all(isinstance(v, _CONFIG_SCALARS) for v in items):
            raise EncoderFileError(f"encoder file {path}: config option {key!r} holds a "
                                   f"{type(value).__name__}; options are numbers, strings or lists of them")
    if "pretrained" in config:
        raise EncoderFileError(f"encoder file {path}: config option 'pretrained' names another file; an "
                               f"encoder file carries its own weights (export it again)")
    if not isinstance(payload["space"], dict):
        raise EncoderFileError(f"encoder file {path}: 'space' must be a record of names and min_active, got "
                               f"{type(payload['space']).__name__}")
    state = payload["state_dict"]
    if not isinstance(state, dict) or not state:
        raise EncoderFileError(f"encoder file {path}: 'state_dict' must be a non-empty dict of tensors")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise EncoderFileError(f"encoder file {path}: state_dict entry {key!r} is a "
                                   f"{type(value).__name__}, not a tensor")
    if not isinstance(payload["extra"], dict):
        raise EncoderFileError(f"encoder file {path}: 'extra' must be a dict, got {type(payload['extra']).__name__}")


class _CallBudget(TorchFunctionMode):
    """Counts torch calls and stops a build that makes more than ``limit`` of them."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.calls = limit, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        self.calls += 1
        if self.calls > self.limit:
            raise _TooManyCalls
        return func(*args, **(kwargs or {}))


class _TooManyCalls(Exception):
    """Raised inside a meta build that exceeds its call budget."""


def _describe_config(name: str, config: dict[str, Any]) -> str:
    options = ", ".join(f"{k}={v!r}" for k, v in config.items())
    return f"{name}({options})"


def expected_shapes(name: str, space: InvarianceSpace, config: dict[str, Any], path: str | os.PathLike,
                    num_tensors: int) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every state-dict entry of ``name(space, **config)``, built on the
    ``meta`` device (no memory for weights).

    Args:
        num_tensors: tensors the file stores; the build may make at most
            ``META_CALLS_PER_TENSOR`` torch calls per tensor (plus ``META_CALLS_BASE``), so a
            config asking for far more layers than the file holds is refused quickly.

    Raises:
        EncoderFileError: the config does not build, or builds a much larger model than stored.
    """
    budget = _CallBudget(META_CALLS_BASE + META_CALLS_PER_TENSOR * num_tensors)
    try:
        with torch.device("meta"), budget:
            module = build_encoder(name, space, **config)
    except _TooManyCalls:
        raise EncoderFileError(
            f"encoder file {path}: its config {_describe_config(name, config)} describes a model far larger "
            f"than the {num_tensors} tensors the file stores; the file is damaged or edited (export it again)"
        ) from None
    except Exception as err:  # noqa: BLE001 - any constructor failure means the stored config is unusable
        raise EncoderFileError(
            f"encoder file {path}: its config {_describe_config(name, config)} does not build: "
            f"{type(err).__name__}: {err}"
        ) from None
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def check_weights(name: str, space: InvarianceSpace, config: dict[str, Any], state: dict[str, torch.Tensor],
                  path: str | os.PathLike) -> None:
    """Check stored weights against the architecture their config describes, before building it.

    No integer option may exceed the number of stored values (every size or count option
    gives a model at least that many weights; this keeps a damaged config from allocating
    even on the CPU); then the same names in the same shapes as :func:`expected_shapes`, and
    every floating-point tensor finite.

    Raises:
        EncoderFileError: names the file and the first disagreeing tensor (expected against
            stored shape), or the first tensor with NaN or infinite values.
    """
    what = _describe_config(name, config)
    total = sum(v.numel() for v in state.values())
    for key, value in config.items():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            # every size or count option of an architecture gives it at least that many weights
            if isinstance(v, int) and not isinstance(v, bool) and v > total:
                raise EncoderFileError(
                    f"encoder file {path}: config option {key!r} = {v} describes a model larger than the "
                    f"{total} values the file stores, so the config does not match the weights; the file is "
                    f"damaged or edited (export it again)")
    expected = expected_shapes(name, space, config, path, len(state))
    for key, shape in expected.items():
        if key not in state:
            raise EncoderFileError(f"encoder file {path}: weights do not fit {what}: tensor {key!r} "
                                   f"(shape {list(shape)}) is missing from the file")
        stored = tuple(state[key].shape)
        if stored != shape:
            raise EncoderFileError(f"encoder file {path}: weights do not fit {what}: tensor {key!r} should have "
                                   f"shape {list(shape)} but the file stores {list(stored)}")
    extra = [key for key in state if key not in expected]
    if extra:
        raise EncoderFileError(f"encoder file {path}: weights do not fit {what}: the file stores tensor "
                               f"{extra[0]!r}, which that architecture does not have")
    for key, value in state.items():
        if value.is_floating_point() or value.is_complex():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise EncoderFileError(
                    f"encoder file {path}: tensor {key!r} holds {bad} NaN or infinite value(s) of "
                    f"{value.numel()}; the weights are corrupt or come from a diverged run (use an earlier "
                    f"checkpoint)")
