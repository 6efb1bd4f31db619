"""Validated configuration: nested dataclasses filled from YAML mappings.

Unknown or mistyped keys are errors that name the key, where it came from (a file or a
section) and the allowed keys, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from core.errors import UserError
from core.fileio import atomic_write

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``1e-3`` / ``5E+4`` as floats (YAML 1.1 wants a dot)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    """Build a mapping, refusing a key given twice (YAML would keep the last one silently)."""
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            first = seen[key]
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first given on line {first.line + 1}); "
                "remove one of them", key_node.start_mark)
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


class ConfigError(UserError, ValueError):
    """A configuration value or key is wrong; the message says which and where."""


def require(ok: bool, message: str) -> None:
    """Raise ``ConfigError(message)`` unless ``ok`` (the validation idiom of every config dataclass)."""
    if not ok:
        raise ConfigError(message)


def require_probability(name: str, p: float) -> None:
    """``name.p`` must lie in [0, 1]."""
    require(0.0 <= p <= 1.0, f"{name}.p must be in [0, 1], got {p}")


def _yaml_problem(err: yaml.YAMLError) -> str:
    """One line for a YAML error: ``line L, column C: problem`` where the parser knows them."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"not valid YAML: {where}{problem}"


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path`` (an empty file gives ``{}``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = _parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: {_yaml_problem(err)}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Build dataclass ``cls`` from mapping ``data``; missing keys keep their defaults.

    Raises:
        ConfigError: for an unknown key (naming ``where``, the key and the allowed keys) or
            a value of the wrong type.
    """
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(fields))})")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain nested dict of a dataclass instance (for saving the resolved config)."""
    return dataclasses.asdict(obj)


def to_plain(value: Any) -> Any:
    """Tuples to lists and keys to strings, recursively, so YAML and
    ``torch.load(weights_only=True)`` accept the result."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def save_yaml(data: dict[str, Any], path: str | Path) -> Path:
    """Write mapping ``data`` as YAML to ``path`` atomically (temp file, fsync, rename).

    Tuples are written as lists; key order is kept.
    """
    text = yaml.safe_dump(to_plain(data), sort_keys=False, default_flow_style=False)
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def _schema_fields(schema: Any) -> dict[str, Any] | None:
    """Field name -> type hint of a dataclass type (``Optional[dataclass]`` unwrapped), or
    None when ``schema`` is not a dataclass (free-form: any key allowed below it)."""
    if typing.get_origin(schema) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(schema) if dataclasses.is_dataclass(a)]
        schema = inner[0] if len(inner) == 1 else None
    if schema is None or not dataclasses.is_dataclass(schema):
        return None
    hints = typing.get_type_hints(schema)
    return {f.name: hints[f.name] for f in dataclasses.fields(schema) if f.init}


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], schema: Any = None) -> dict[str, Any]:
    """Apply ``"a.b=value"`` overrides to a nested mapping (the input is not modified).

    Each value is parsed as safe YAML (``3`` -> int, ``1e-3`` -> float, ``[1,0]``
    -> list, ``null`` -> None, other text -> str); missing intermediate mappings are created.

    Args:
        data: the mapping read from a config file.
        overrides: items like ``"train.steps=100"``.
        schema: optional dataclass type; every dotted key must then name a field (nested
            dataclass fields are followed; below a plain ``dict`` field any key is allowed).

    Raises:
        ConfigError: an item without ``=`` or with an empty key part, a value that is not
            valid YAML, a key that descends into a non-mapping value, or (with ``schema``) an
            unknown key; the message quotes the override, names the key and lists the allowed keys.
    """
    result = copy.deepcopy(data)
    for item in overrides:
        where = f"command line override {item}"
        key, eq, text = str(item).partition("=")
        parts = key.strip().split(".")
        if not eq or not key.strip() or any(not p.strip() for p in parts):
            raise ConfigError(f"{where}: expected key.sub=value (e.g. train.steps=100)")
        parts = [p.strip() for p in parts]
        try:
            value = _parse_yaml(text) if text.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"{where}: value {text!r} is {_yaml_problem(err)}") from err
        fields = _schema_fields(schema) if schema is not None else None
        node = result
        for depth, part in enumerate(parts):
            if fields is not None and part not in fields:
                section = ".".join(parts[:depth]) or "top level"
                raise ConfigError(
                    f"{where}: unknown key {part!r} in {section} (allowed: {', '.join(sorted(fields))})")
            hint = fields[part] if fields is not None else None
            if depth == len(parts) - 1:
                node[part] = value
                break
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{where}: {'.'.join(parts[:depth + 1])} is {child!r}, not a mapping")
            node = child
            fields = _schema_fields(hint) if hint is not None else None
    return result
