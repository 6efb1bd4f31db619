"""Calibration baselines: ``--encoder`` values that name an encoder without pre-training.

Wherever a downstream command takes an encoder file, it also takes

* ``band-stats`` (a modality may accept another name for it, e.g. audio's ``logmel-stats``):
  :class:`core.encoders.band_stats.BandStatsEncoder`, the mean and standard deviation of
  every input row (mel band) over time; no weights, no training;
* ``untrained:<arch>``: a registered architecture (:func:`core.list_encoders`) with fresh
  weights drawn from a seeded generator, e.g. ``untrained:hyper_resnet18?width=32&seed=0``.

Options follow a ``?``, as ``key=value`` pairs joined by ``&``:

* ``seed=N`` (``untrained`` only, default 0): the same seed gives the same weights; the
  global random state is left as it was;
* ``frontend=PATH``: use the input pipeline stored in another encoder file or training
  checkpoint (audio: its fitted log-mel front end; images: its image size and
  normalisation), so the baseline sees exactly the inputs of that trained encoder. Without
  it the command fits or chooses a pipeline on the data and warns, as for an encoder file
  that stores none;
* ``untrained`` only: any other key is an option of the architecture (``width=32``,
  ``stem=small``); numbers, ``true``/``false`` and ``none`` are converted.

The modality supplies the invariance space, the input channels and (for ``band-stats``)
the number of input rows; :func:`read_calibration` builds the encoder.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from core.dataspec import parse_value
from core.encoders.band_stats import BandStatsEncoder
from core.encoders.base import InvarianceEncoder
from core.encoders.file_checks import EncoderFileError, EncoderFileMissing
from core.encoders.registry import ENCODERS, build_encoder
from core.invariance import InvarianceSpace

BAND_STATS = "band-stats"
UNTRAINED = "untrained:"
_COMMON_OPTIONS = ("frontend",)
_UNTRAINED_OPTIONS = ("seed", "frontend")


@dataclass
class CalibrationSpec:
    """A parsed calibration value.

    Attributes:
        value: the ``--encoder`` text as given (for messages).
        kind: ``"band_stats"`` or ``"untrained"``.
        arch: the registered architecture (``untrained``), else None.
        options: architecture options (``untrained``).
        seed: weight seed (``untrained``).
        frontend: path of the encoder file whose input pipeline is borrowed, or None.
    """

    value: str
    kind: str
    arch: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    frontend: str | None = None


def encoder_help(band_name: str = BAND_STATS) -> str:
    """Help text of a downstream command's ``--encoder`` flag (``band_name``: the modality's
    name of the band-statistics baseline)."""
    return (f"encoder file (encoder.pt) or training checkpoint; or a calibration baseline: {band_name} (mean and "
            f"std of every input band over time, no training) or untrained:ARCH (a registered architecture, "
            f"seeded random weights), e.g. 'untrained:hyper_resnet18?width=16&seed=0'; add "
            f"'frontend=PATH' (after ? or &) to use the input pipeline stored in that encoder file")


def _options(value: str, query: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in query.split("&") if query else []:
        key, eq, text = item.partition("=")
        if not eq or not key or not text:
            raise EncoderFileError(f"--encoder {value}: option {item!r} is not key=value (options follow ? and are "
                                   f"joined by &, e.g. untrained:resnet18?width=32&seed=1)")
        if key in options:
            raise EncoderFileError(f"--encoder {value}: option {key!r} given twice")
        options[key] = text
    return options


def parse_calibration(value: str, band_names: Sequence[str] = (BAND_STATS,)) -> CalibrationSpec | None:
    """The calibration baseline ``value`` names, or None when it is not one (a file path).

    Raises:
        EncoderFileError: an unknown architecture or option, or a bad option value (names
            ``value`` and lists the accepted names).
    """
    text = str(value)
    head, _, query = text.partition("?")
    if head in band_names:
        options = _options(text, query)
        unknown = sorted(set(options) - set(_COMMON_OPTIONS))
        if unknown:
            raise EncoderFileError(f"--encoder {text}: unknown option {unknown[0]!r}; {head} takes "
                                   f"{', '.join(_COMMON_OPTIONS)}")
        return CalibrationSpec(text, "band_stats", frontend=options.get("frontend"))
    if not head.startswith(UNTRAINED):
        return None
    arch = head[len(UNTRAINED):]
    if arch not in ENCODERS:
        raise EncoderFileError(f"--encoder {text}: unknown architecture {arch!r}; known: "
                               f"{', '.join(sorted(ENCODERS))} (or give {', '.join(band_names)}, or an encoder "
                               f"file)")
    options = _options(text, query)
    seed_text = options.pop("seed", "0")
    try:
        seed = int(seed_text)
    except ValueError:
        seed = -1
    if seed < 0:
        raise EncoderFileError(f"--encoder {text}: seed={seed_text!r} must be a non-negative integer")
    frontend = options.pop("frontend", None)
    return CalibrationSpec(text, "untrained", arch, {k: parse_value(v) for k, v in options.items()}, seed, frontend)


def build_untrained(arch: str, space: InvarianceSpace, seed: int = 0, **kwargs: Any) -> InvarianceEncoder:
    """Registered architecture ``arch`` with weights drawn after ``torch.manual_seed(seed)``
    inside :func:`torch.random.fork_rng`: the same seed gives the same weights, and the
    caller's random state is untouched. In eval mode, on the CPU.

    Raises:
        ValueError / TypeError: an unknown architecture or options it does not take.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_encoder(arch, space, **kwargs).eval()


def borrowed_extra(spec: CalibrationSpec, space: InvarianceSpace) -> dict[str, Any]:
    """The ``extra`` (input pipeline) of the encoder file named by ``frontend=PATH``, which
    must have been trained on a space with the same entries; ``{}`` without the option.

    Raises:
        EncoderFileMissing / EncoderFileError: no such file, a directory, a damaged or
            foreign file, or another space (names the value and the file).
    """
    from core.encoders.serialise import _encoder_payload, _read, existing_encoder_file

    if spec.frontend is None:
        return {}
    path = existing_encoder_file(spec.frontend, f"--encoder {spec.value}: frontend={spec.frontend}",
                                 "whose input pipeline to use")
    payload = _encoder_payload(_read(path), path)
    try:
        stored = InvarianceSpace.from_dict(payload["space"])
    except (ValueError, TypeError, KeyError) as err:
        raise EncoderFileError(f"encoder file {path}: its invariance space record is malformed ({err})") from None
    if tuple(stored.names) != tuple(space.names):
        raise EncoderFileError(f"--encoder {spec.value}: frontend={spec.frontend} holds an encoder for the space "
                               f"{list(stored.names)}, not {list(space.names)}; give an encoder of this modality")
    return dict(payload["extra"])


def read_calibration(spec: CalibrationSpec, device: str | torch.device, space: InvarianceSpace,
                     in_chans: int | None = None,
                     band_rows: Callable[[dict[str, Any]], int] | int | None = None
                     ) -> tuple[InvarianceEncoder, dict[str, Any]]:
    """``(encoder in eval mode on device, extra)`` of a calibration baseline.

    Args:
        spec: from :func:`parse_calibration`.
        device: where the encoder goes.
        space: the modality's invariance space.
        in_chans: the modality's input channels (default of ``untrained``'s ``in_chans``;
            the channels of ``band-stats``).
        band_rows: input rows of ``band-stats`` (audio: mel bands), or a function of the
            (borrowed) ``extra`` giving them.

    Raises:
        EncoderFileError: options the architecture does not take, or a borrowed file that
            does not fit (names the value).
    """
    extra = borrowed_extra(spec, space)
    if spec.kind == "band_stats":
        if band_rows is None or in_chans is None:
            raise ValueError(f"--encoder {spec.value}: this modality does not say how many input rows and "
                             f"channels its inputs have")
        rows = band_rows(extra) if callable(band_rows) else band_rows
        encoder: InvarianceEncoder = BandStatsEncoder(space, in_chans=in_chans, bands=int(rows))
    else:
        kwargs = {**({"in_chans": in_chans} if in_chans is not None else {}), **spec.options}
        try:
            with torch.device("meta"):  # options checked before any weight is allocated
                build_encoder(spec.arch, space, **kwargs)
        except Exception as err:  # noqa: BLE001 - any constructor failure is a bad option
            options = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            raise EncoderFileError(f"--encoder {spec.value}: cannot build {spec.arch}({options}): "
                                   f"{type(err).__name__}: {err}") from None
        encoder = build_untrained(spec.arch, space, spec.seed, **kwargs)
    return encoder.to(device).eval(), extra


def check_weights_to_train(encoder: InvarianceEncoder, value: str | os.PathLike, command: str) -> None:
    """EncoderFileError unless ``encoder`` has weights (``command`` trains them, e.g. finetune)."""
    if not any(True for _ in encoder.parameters()):
        raise EncoderFileError(f"--encoder {value}: {command} trains the encoder's weights and this one has "
                               f"none; use probe or fewshot for it")
