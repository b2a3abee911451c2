"""A token response as providers write it, into the token, its lifetime and how to send it.

RFC 6749 section 5.1 has access_token, token_type and expires_in at the top of the object.
Providers vary: the token under a wrapper (auth.token_field: data.access_token), expires_in as
a string ("3600"), an absolute expiry instead (auth.expires_at_field, epoch seconds or
ISO 8601), a token_type other than Bearer that the API expects as the scheme.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harvester.config import AuthConfig, parse_timestamp
from harvester.config.token_shape import is_http_token
from harvester.errors import AuthError, ConfigError


@dataclass(frozen=True)
class TokenAnswer:
    """What a token response says: the token, seconds it lives (None: unknown), its scheme."""

    value: str
    lifetime: float | None
    scheme: str


def read_token_response(
    payload: dict[str, Any],
    config: AuthConfig,
    *,
    now: float,
    url: str,
    register: Callable[[str], None],
) -> TokenAnswer:
    """The token in `payload` as `config` says where to find it; AuthError naming what is amiss.

    `now` is the wall clock (epoch seconds) for an absolute expiry; `register(value)` hears of
    the token before any check could fail with it in hand.
    """
    holder, value = _at(payload, config.token_field)
    if not isinstance(value, str) or not value:
        raise AuthError(f"token response has no {_named(config.token_field)}", url=url, status=200)
    register(value)
    # expires_in and token_type beside the token first: {"data": {"access_token", "expires_in"}}.
    nearby = {**payload, **holder}
    if config.expires_at_field is not None:
        lifetime: float | None = _expires_at(payload, config.expires_at_field, now, url)
    else:
        lifetime = _expires_in(nearby.get("expires_in"), url)
    return TokenAnswer(value, lifetime, _scheme(nearby.get("token_type"), config, url))


def _at(payload: dict[str, Any], path: str) -> tuple[dict[str, Any], Any]:
    """(the object that holds the last part of dotted `path`, the value there or None)."""
    *parents, last = path.split(".")
    node: Any = payload
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return {}, None
    return node, node.get(last)


def _named(path: str) -> str:
    return path if path == "access_token" else f"{path} (auth.token_field)"


def _expires_in(value: Any, url: str) -> float | None:
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        seconds = float(value)  # a number, or a numeric string as some providers send
    except (TypeError, ValueError):
        raise AuthError(f"expires_in is not a number: {value!r}", url=url, status=200) from None
    if not seconds > 0 or seconds == float("inf"):
        raise AuthError(f"expires_in must be positive, got {value!r}", url=url, status=200)
    return seconds


def _expires_at(payload: dict[str, Any], path: str, now: float, url: str) -> float:
    _, value = _at(payload, path)
    where = f"{path} (auth.expires_at_field)"
    if value is None:
        raise AuthError(f"token response has no {where}", url=url, status=200)
    at = _instant(value)
    if at is None:
        raise AuthError(
            f"{where} is neither epoch seconds nor an ISO 8601 time: {value!r}",
            url=url,
            status=200,
        )
    if at <= now:
        raise AuthError(
            f"{where} says the token expired already ({value!r}): is this machine's clock right?",
            url=url,
            status=200,
        )
    return at - now


def _instant(value: Any) -> float | None:
    """Epoch seconds from a number, a numeric string or an ISO 8601 time (UTC if no offset)."""
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    except (TypeError, ValueError):
        pass
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value, "auth.expires_at_field").timestamp()
    except ConfigError:  # said by the caller, with the value and where it came from
        return None


def _scheme(token_type: Any, config: AuthConfig, url: str) -> str:
    if config.scheme is not None:
        return config.scheme
    if token_type is None:
        return "Bearer"
    if not isinstance(token_type, str) or not is_http_token(token_type):
        raise AuthError(
            f"token_type {token_type!r} cannot be sent as a scheme: set auth.scheme",
            url=url,
            status=200,
        )
    # Case-insensitive by RFC 6750, but some APIs match "Bearer" exactly: sent as written there.
    return "Bearer" if token_type.lower() == "bearer" else token_type
