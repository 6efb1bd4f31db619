"""One-file encoder export: architecture, invariance space, weights and pipeline extras.

Two kinds of file hold an encoder: encoder files written by :func:`save_encoder`
(format ``amortised-invariance-encoder``) and training checkpoints written by the engine
(format ``amortised-invariance-checkpoint``, encoder weights under ``model["encoder.*"]``
and the architecture under ``encoder_meta``). :func:`load_encoder` and
:func:`read_encoder_file` read both.

Reading checks a file before trusting it. It is unpickled with ``weights_only=True`` (plain
data and tensors only); its architecture is first built on the ``meta`` device (shapes, no
memory) and compared, name by name and shape by shape, with the stored weights, so a config
asking for a huge model is refused before anything is allocated; every weight must be
finite. Any fault is an :class:`EncoderFileError` (a ``UserError``) naming the file and
what is wrong.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from core.encoders.base import InvarianceEncoder
from core.encoders.registry import ENCODERS, build_encoder
from core.errors import UserError
from core.fileio import atomic_save, safe_load
from core.invariance import InvarianceSpace

ENCODER_FORMAT = "amortised-invariance-encoder"
ENCODER_VERSION = 1
CHECKPOINT_FORMAT = "amortised-invariance-checkpoint"
CHECKPOINT_VERSION = 1
_PLAIN = (str, int, float, bool, type(None), torch.Tensor)
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


def check_plain(value: Any, where: str = "extra") -> None:
    """Raise TypeError unless ``value`` is plain data that ``torch.load(weights_only=True)``
    reads back: dicts with string keys, lists, tuples, str, numbers, bools, None, tensors."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: keys must be strings, got {key!r}")
            check_plain(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise TypeError(f"{where} holds a {type(value).__name__}; only plain data and tensors can be stored")


def save_encoder(encoder: InvarianceEncoder, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``encoder`` to one file loadable by :func:`load_encoder` (atomically).

    The file is a dict of plain data and tensors, so ``torch.load(path, weights_only=True)``
    reads it: ``format``, ``version``, ``encoder`` (registry name), ``config`` (constructor
    keyword arguments), ``space`` (names and min_active), ``state_dict`` and ``extra``.

    Args:
        encoder: the encoder to store.
        path: destination file.
        extra: plain data that travels with the encoder (e.g. the audio front end's
            ``{"frontend": ...}``), returned by :func:`read_encoder_file`.

    Raises:
        TypeError: not an encoder, or ``extra`` is not plain data.
    """
    if not isinstance(encoder, InvarianceEncoder):
        raise TypeError(f"save_encoder needs an InvarianceEncoder, got {type(encoder).__name__}")
    extra = {} if extra is None else extra
    if not isinstance(extra, dict):
        raise TypeError(f"save_encoder: extra must be a dict, got {type(extra).__name__}")
    check_plain(extra)
    payload = {
        "format": ENCODER_FORMAT,
        "version": ENCODER_VERSION,
        "encoder": encoder.name,
        "config": dict(encoder.config),
        "space": encoder.space.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        "extra": extra,
    }
    return atomic_save(payload, path)


def _encoder_payload(data: Any, path: str | os.PathLike) -> dict[str, Any]:
    """Normalise an encoder file or a training checkpoint to the encoder-file fields.

    Raises:
        EncoderFileError: foreign format, other version, missing keys or fields of the wrong
            type (names the file and the key).
    """
    fmt = data.get("format") if isinstance(data, dict) else None
    if fmt == ENCODER_FORMAT:
        if data.get("version") != ENCODER_VERSION:
            raise EncoderFileError(f"encoder file {path} has version {data.get('version')}, this code reads "
                                   f"{ENCODER_VERSION}")
        missing = {"encoder", "config", "space", "state_dict"} - set(data)
        if missing:
            raise EncoderFileError(f"encoder file {path} lacks keys {sorted(missing)}; the file is damaged "
                                   f"or was not written by save_encoder (export it again)")
        payload = {**data, "extra": data.get("extra") or {}}
    elif fmt == CHECKPOINT_FORMAT:
        if data.get("version") != CHECKPOINT_VERSION:
            raise EncoderFileError(f"checkpoint {path} has version {data.get('version')}, this code reads "
                                   f"{CHECKPOINT_VERSION}")
        meta, model = data.get("encoder_meta"), data.get("model")
        if not isinstance(meta, dict) or not isinstance(model, dict):
            raise EncoderFileError(f"checkpoint {path} lacks encoder_meta or model; the file is damaged or "
                                   f"not a training checkpoint")
        missing = {"encoder", "config", "space"} - set(meta)
        if missing:
            raise EncoderFileError(f"checkpoint {path}: encoder_meta lacks keys {sorted(missing)}")
        prefix = "encoder."
        state = {k[len(prefix):]: v for k, v in model.items() if isinstance(k, str) and k.startswith(prefix)}
        if not state:
            raise EncoderFileError(f"checkpoint {path} holds no encoder weights (no model keys starting with "
                                   f"'encoder.')")
        payload = {"encoder": meta["encoder"], "config": meta["config"], "space": meta["space"],
                   "state_dict": state, "extra": meta.get("extra") or {}}
    else:
        raise EncoderFileError(
            f"{path} is not an encoder file (expected format {ENCODER_FORMAT!r}) nor a training "
            f"checkpoint (format {CHECKPOINT_FORMAT!r}); give the encoder.pt written by export or a "
            f"checkpoint of a pre-training run"
        )
    _check_fields(payload, path)
    return payload


def _check_fields(payload: dict[str, Any], path: str | os.PathLike) -> None:
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


def _read(path: Path) -> Any:
    """The unpickled file (plain data and tensors, on the CPU)."""
    if path.is_dir():
        raise EncoderFileError(f"{path} is a directory, not an encoder file; give the encoder.pt (or a "
                               f"training checkpoint such as last.pt) inside it")
    if not path.exists():
        raise EncoderFileMissing(f"encoder file {path} does not exist")
    try:
        return safe_load(path, "encoder file", "cpu")
    except (EncoderFileError, EncoderFileMissing):
        raise
    except FileNotFoundError as err:
        raise EncoderFileMissing(f"encoder file {path} does not exist") from err
    except (ValueError, UserError) as err:
        raise EncoderFileError(f"encoder file {path} is corrupt or not a torch file ({_reason(err)}); it is "
                               f"truncated, damaged or of another kind: export or copy it again") from err


def _reason(err: BaseException) -> str:
    """One short line from the loader's error (torch's own messages run over many lines)."""
    cause = err.__cause__ or err
    text = str(cause)
    if "WeightsUnpickler error:" in text:  # a pickle holding more than plain data and tensors
        text = text.split("WeightsUnpickler error:", 1)[1]
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = line if len(line) <= 160 else line[:157] + "..."
    return f"{type(cause).__name__}: {line}" if line else type(cause).__name__


def read_encoder_file(
    path: str | os.PathLike, space: InvarianceSpace | None = None, map_location: str = "cpu"
) -> tuple[InvarianceEncoder, dict[str, Any]]:
    """Rebuild the encoder of an encoder file or a training checkpoint, with its extras.

    The architecture is built for real only after :func:`check_weights` found the stored
    weights to be exactly those its config describes, and finite.

    Args:
        path: an encoder file or a training checkpoint.
        space: if given, the file's space must equal it (same names in the same order and
            the same ``min_active``).
        map_location: device for the weights.

    Returns:
        ``(encoder in eval mode, extra)``; ``extra`` is ``{}`` for files written without one.

    Raises:
        EncoderFileMissing: no such file.
        EncoderFileError: a directory, a truncated, corrupt or foreign file, another space,
            an unknown architecture, a config that does not match the weights or NaN/inf
            weights; messages name the file (and the key or tensor).
    """
    path = Path(path)
    data = _encoder_payload(_read(path), path)
    try:
        stored = InvarianceSpace.from_dict(data["space"])
    except (ValueError, TypeError, KeyError) as err:
        raise EncoderFileError(f"encoder file {path}: its invariance space record is malformed ({err})") from None
    if space is not None and space != stored:
        raise EncoderFileError(
            f"encoder file {path} was trained for the space {list(stored.names)} "
            f"(min_active={stored.min_active}), not {list(space.names)} (min_active={space.min_active})"
        )
    if data["encoder"] not in ENCODERS:
        raise EncoderFileError(f"encoder file {path} names unknown architecture {data['encoder']!r}; known: "
                               f"{sorted(ENCODERS)}")
    check_weights(data["encoder"], stored, data["config"], data["state_dict"], path)
    encoder = build_encoder(data["encoder"], stored, **data["config"])
    try:
        encoder.load_state_dict(data["state_dict"], strict=True)
    except RuntimeError as err:
        raise EncoderFileError(f"weights in encoder file {path} do not fit {data['encoder']}: {err}") from err
    return encoder.to(map_location).eval(), dict(data["extra"])


def load_encoder(
    path: str | os.PathLike, space: InvarianceSpace | None = None, map_location: str = "cpu"
) -> InvarianceEncoder:
    """Rebuild an encoder from an encoder file or a training checkpoint, in eval mode.

    See :func:`read_encoder_file` (this drops the extras).
    """
    return read_encoder_file(path, space, map_location)[0]
