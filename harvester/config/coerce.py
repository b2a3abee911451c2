"""Raw YAML values into the config dataclasses: types checked, text from ${VAR} converted."""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import math
import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from harvester.config.masking import Secret
from harvester.errors import ConfigError


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _build(cls: type[Any], data: Any, key: str, expanded: set[str]) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"must be a mapping, got {_kind(data)}", key=key or None)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in data:
        if name not in fields:
            nearest = difflib.get_close_matches(str(name), list(fields), n=1, cutoff=0.6)
            hint = f" (did you mean {nearest[0]!r}?)" if nearest else ""
            raise ConfigError(f"unknown key{hint}", key=_join(key, str(name)))
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, f in fields.items():
        path = _join(key, name)
        if name in data:
            values[name] = _coerce(data[name], hints[name], path, expanded)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError("is required", key=path)
    return cls(**values)


def _coerce(value: Any, tp: Any, key: str, expanded: set[str]) -> Any:  # noqa: C901
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        inner = [t for t in options if t is not type(None)]
        for candidate in inner[:-1]:  # e.g. int | str: the first type that fits wins
            try:
                return _coerce(value, candidate, key, expanded)
            except ConfigError:
                continue
        return _coerce(value, inner[-1], key, expanded)
    if dataclasses.is_dataclass(tp):
        return _build(tp, {} if value is None else value, key, expanded)  # type: ignore[arg-type]
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"must be one of {', '.join(choices)}; got {value!r}", key=key)
        return value
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"must be a mapping, got {_kind(value)}", key=key)
        return {str(k): _scalar_text(v, _join(key, str(k))) for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"must be a list, got {_kind(value)}", key=key)
        (inner, _) = get_args(tp)
        return tuple(_coerce(v, inner, f"{key}[{i}]", expanded) for i, v in enumerate(value))
    if tp is Secret:
        return Secret(_scalar_text(value, key))
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, datetime.date):  # YAML reads unquoted timestamps as datetimes
            return value.isoformat().replace("+00:00", "Z")
        raise ConfigError(f"must be a string, got {_kind(value)}", key=key)
    if tp is bool:
        if isinstance(value, str) and key in expanded and value.lower() in _BOOLS:
            return _BOOLS[value.lower()]
        if isinstance(value, bool):
            return value
        raise ConfigError(f"must be true or false, got {_kind(value)}", key=key)
    if tp in (int, float):
        return _number(value, tp, key, key in expanded)
    raise TypeError(f"no coercion for {tp!r}")  # a bug in this module, not in the config


_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


_LARGEST = 2**63 - 1  # what an int setting may hold; far beyond any sensible value


def _number(value: Any, tp: type[Any], key: str, from_env: bool) -> Any:
    if from_env and isinstance(value, str):
        try:
            value = int(value) if tp is int else float(value)
        except ValueError:
            raise ConfigError(f"must be a number, got {value!r}", key=key) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"must be a number, got {_kind(value)}", key=key)
    if isinstance(value, int) and abs(value) > _LARGEST:  # YAML's ints have no bound
        raise ConfigError("is too large: must be within ±(2**63 - 1)", key=key)
    if tp is int and not isinstance(value, int):
        if not float(value).is_integer():
            raise ConfigError(f"must be a whole number, got {value!r}", key=key)
        value = int(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"must be a finite number, got {value!r}", key=key)
    return tp(value)


def _scalar_text(value: Any, key: str) -> str:
    # Query parameters and headers are text on the wire; YAML's numbers and booleans become the
    # text a user would have typed.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ConfigError(f"must be a string or number, got {_kind(value)}", key=key)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    walked: list[str] = []
    for part in parents:
        walked.append(part)
        child = node.get(part)
        if child is None:  # an empty section in YAML is null
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"must be a mapping, got {_kind(child)}", key=".".join(walked))
        node = child
    node[last] = value
