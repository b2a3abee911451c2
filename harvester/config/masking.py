"""How config values keep secrets hidden: Secret, and config objects as masked data and reprs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from harvester.errors import carries_secret, looks_secret, redact_url


class Secret:
    """A string that never shows itself in a repr, a log line or an error message."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _masked(value: Any, mask: Callable[[str], str]) -> Any:
    """`value` as plain data (mappings, lists, scalars) with every secret replaced by ***."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: "***" if _holds_secret(f, value) else _masked(getattr(value, f.name), mask)
            for f in dataclasses.fields(value)
        }
    if isinstance(value, Secret):
        return "***"
    if isinstance(value, dict):
        return {k: "***" if carries_secret(k) else _masked(v, mask) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_masked(v, mask) for v in value]
    if isinstance(value, str):
        if urlsplit(value).scheme in ("http", "https") and _url_has_secret(value):
            value = redact_url(value)
        value = mask(value)  # a secret repeated elsewhere (in a URL, a scope) is a secret
    return value


def _holds_secret(field: dataclasses.Field[Any], section: Any) -> bool:
    """Whether `field` of `section` is a secret that is set: declared a Secret, whatever it
    holds (a Config built in Python may hold plain text there until it is validated)."""
    return "Secret" in str(field.type) and getattr(section, field.name) is not None


def _url_has_secret(url: str) -> bool:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    return "@" in parts.netloc or any(looks_secret(name) for name, _ in query)


def _masked_repr(section: Any) -> str:
    # The default repr would show the values of secret headers and parameters (Authorization,
    # api_key) and credentials in URLs; this one shows *** instead, and otherwise looks the same.
    shown = ", ".join(f"{name}={value!r}" for name, value in _masked(section, str).items())
    return f"{type(section).__name__}({shown})"
