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
from typing import Any, Callable, Sequence

import torch

from core.encoders.base import InvarianceEncoder
from core.encoders.file_checks import EncoderFileError, EncoderFileMissing, check_fields, check_weights
from core.encoders.registry import ENCODERS, build_encoder
from core.errors import UserError
from core.fileio import atomic_save, safe_load
from core.invariance import InvarianceSpace

ENCODER_FORMAT = "amortised-invariance-encoder"
ENCODER_VERSION = 1
CHECKPOINT_FORMAT = "amortised-invariance-checkpoint"
CHECKPOINT_VERSION = 1
_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


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
    check_fields(payload, path)
    return payload


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


def read_encoder_option(path: str | os.PathLike, device: str, space: InvarianceSpace | None = None,
                        in_chans: int | None = None,
                        band_rows: Callable[[dict[str, Any]], int] | int | None = None,
                        band_names: Sequence[str] = ("band-stats",)) -> tuple[InvarianceEncoder, dict[str, Any]]:
    """``(encoder, extra)`` for a command's ``--encoder`` option: an encoder file or training
    checkpoint, or a calibration baseline (``band-stats`` or ``untrained:<arch>``, see
    :mod:`core.encoders.calibration`). A directory or a missing file is named with the option.
    The modality checks the space and channels of a file's encoder itself
    (:func:`check_input_channels`).

    Args:
        path: the option's value.
        device: where the encoder goes.
        space: the modality's invariance space (needed by the calibration baselines).
        in_chans: the modality's input channels (calibration baselines).
        band_rows: input rows for ``band-stats``, or a function of the (borrowed) extra
            giving them (see :func:`core.encoders.calibration.read_calibration`).
        band_names: the names the modality accepts for ``band-stats`` (audio: ``logmel-stats``).

    Raises:
        EncoderFileMissing / EncoderFileError: as above, or a damaged or foreign file, or an
            unknown calibration architecture or option.
    """
    from core.encoders.calibration import parse_calibration, read_calibration

    spec = parse_calibration(str(path), band_names)
    if spec is not None:
        if space is None:
            raise EncoderFileError(f"--encoder {path}: calibration baselines need the modality's invariance space")
        return read_calibration(spec, device, space, in_chans, band_rows)
    file = existing_encoder_file(path, f"--encoder {path}", f"(or a calibration baseline: {', '.join(band_names)} "
                                 f"or untrained:<arch>)")
    return read_encoder_file(file, map_location=device)


def existing_encoder_file(path: str | os.PathLike, named: str, hint: str) -> Path:
    """``path`` as a ``Path`` when it is a file; else an error starting with ``named`` that
    asks for an encoder file (``hint`` ends the message).

    Raises:
        EncoderFileError: ``path`` is a directory.
        EncoderFileMissing: nothing is there.
    """
    file = Path(path).expanduser()
    if file.is_dir():
        raise EncoderFileError(f"{named} is a directory; give the encoder.pt (or a training checkpoint such as "
                               f"last.pt) inside it {hint}")
    if not file.is_file():
        raise EncoderFileMissing(f"{named}: no such file (give an encoder.pt or a training checkpoint {hint})")
    return file


def check_input_channels(encoder: InvarianceEncoder, path: str | os.PathLike, in_chans: int, inputs: str) -> None:
    """EncoderFileError naming ``path`` unless the encoder takes ``in_chans`` input channels
    (``inputs`` names them, e.g. ``"audio log-mels"``); encoders without the option pass."""
    chans = encoder.config.get("in_chans") if isinstance(getattr(encoder, "config", None), dict) else None
    if chans is not None and chans != in_chans:
        raise EncoderFileError(f"{path}: the encoder takes {chans} input channel(s); {inputs} have {in_chans}")
