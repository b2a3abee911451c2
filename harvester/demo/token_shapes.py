"""Token responses in the shapes real providers use, and the token where their APIs want it.

`token_field` puts the token at a dotted path (data.access_token), with token_type and
expires_in beside it; `expires_at` adds an absolute expiry there (epoch seconds or ISO 8601);
`token_type` is sent as given. Data requests then carry the token in `token_header`, after
`token_scheme` (None: the token_type; "": the token alone).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from typing import Any

from .settings import DemoSettings


def shaped_token_body(body: dict[str, Any], settings: DemoSettings) -> dict[str, Any]:
    """`body` (access_token, token_type, expires_in at the top) as `settings` shape it."""
    inner = dict(body)
    inner["access_token"] = inner.pop("access_token")
    inner["token_type"] = settings.token_type
    if settings.expires_at != "none":
        end = time.time() + settings.token_lifetime
        inner["expires_at"] = (
            int(end)
            if settings.expires_at == "epoch"
            else datetime.datetime.fromtimestamp(end, datetime.UTC).isoformat()
        )
    *parents, last = settings.token_field.split(".")
    inner[last] = inner.pop("access_token")
    for part in reversed(parents):
        inner = {part: inner}
    return inner


def presented_token(headers: Mapping[str, str], settings: DemoSettings) -> str | None:
    """The token a data request carries where `settings` expect it, or None."""
    value = headers.get(settings.token_header)
    if value is None:
        return None
    scheme = settings.token_type if settings.token_scheme is None else settings.token_scheme
    if not scheme:
        return value.strip() or None
    given, _, token = value.partition(" ")
    if given.lower() != scheme.lower():
        return None
    return token.strip() or None
