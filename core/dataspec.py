"""Dataset spec strings, shared by every modality: ``name:path?key=value&key=value``.

The name ends at the first ``:`` (so Windows drive letters and later colons stay in the
path) and the options start at the first ``?`` (paths containing ``?`` are not supported).
Option values are parsed by ``parse_value``. A modality keeps its own registry of reader
functions (``name -> reader(path, ..., *, option=...)``) and uses ``parse_spec`` and
``check_options`` to turn a spec into a checked call of the right reader, and
``call_reader`` to make it.

Errors: a wrong spec or dataset layout raises ``DatasetError`` (a ``UserError``: CLIs exit 2
with its one-line message); a missing folder or file of a layout ``DatasetNotFoundError``.
Both keep their built-in bases (``ValueError``; also ``FileNotFoundError``), so callers
catching those still work.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable

from core.errors import UserError


class DatasetError(UserError, ValueError):
    """A dataset spec or on-disk layout is wrong (unknown name or option, malformed metadata,
    no data); the message names the spec, file or folder and what was expected."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A folder or file a dataset layout needs is missing (or holds nothing usable); the
    message names it and the expected layout."""


def parse_value(text: str) -> Any:
    """An option value: bool (true/false/yes/no), None (none/null), int, float, a list when it
    contains commas (items parsed the same way), else the string itself."""
    if "," in text:
        return [parse_value(item) for item in text.split(",") if item != ""]
    lowered = text.strip().lower()
    if lowered in ("true", "yes"):
        return True
    if lowered in ("false", "no"):
        return False
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_spec(spec: str, names: Iterable[str], example: str) -> tuple[str, str | None, dict[str, Any]]:
    """Split ``name:path?key=value&...`` into ``(name, path or None, options)``.

    Args:
        spec: the spec string.
        names: the registered dataset names (a reader registry works: its keys are used).
        example: a valid spec shown in the unknown-name message (e.g. ``"esc50:/data/ESC-50"``).

    Raises:
        DatasetError: empty or unknown name (lists the available ones) or a malformed option.
    """
    known = list(names)
    body, _, query = spec.partition("?")
    name, _, path = body.partition(":")
    name = name.strip().lower()
    if name not in known:
        raise DatasetError(f"unknown dataset {name!r} in spec {spec!r}; available: {', '.join(known)} "
                         f"(write name:path, e.g. {example})")
    options: dict[str, Any] = {}
    for pair in filter(None, query.split("&")):
        key, eq, value = pair.partition("=")
        key = key.strip()
        if not eq or not key:
            raise DatasetError(f"option {pair!r} in spec {spec!r} is not key=value")
        if key in options:
            raise DatasetError(f"option {key!r} given twice in spec {spec!r}")
        options[key] = parse_value(value)
    return name, (path.strip() or None), options


def check_options(name: str, reader: Callable[..., Any], options: dict[str, Any]) -> None:
    """Check that every option is a keyword-only parameter of ``reader``.

    A reader taking ``**options`` accepts anything (it checks them itself).

    Raises:
        DatasetError: an unknown option (names it and lists the reader's options).
    """
    parameters = inspect.signature(reader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    allowed = [p.name for p in parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = [key for key in options if key not in allowed]
    if unknown:
        raise DatasetError(f"dataset {name!r} has no option {unknown[0]!r}; its options: {allowed or 'none'}")


def call_reader(reader: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``reader(*args, **kwargs)``, with the reader's layout errors as dataset errors.

    Readers report a wrong layout with plain ``FileNotFoundError`` / ``NotADirectoryError`` /
    ``ValueError`` whose messages already name the file and the expected layout; those become
    ``DatasetNotFoundError`` / ``DatasetError`` with the same message, so the command line
    reports them as user errors. Errors that already are ``UserError`` pass unchanged.

    Raises:
        DatasetError: the reader rejected the layout or an option value.
        DatasetNotFoundError: a folder or file of the layout is missing.
    """
    try:
        return reader(*args, **kwargs)
    except UserError:
        raise
    except (FileNotFoundError, NotADirectoryError) as err:
        raise DatasetNotFoundError(_one_line(err)) from err
    except ValueError as err:
        raise DatasetError(_one_line(err)) from err


def _one_line(err: BaseException) -> str:
    """The reader's message on one line."""
    return " ".join(str(err).splitlines()) or type(err).__name__
