"""The checks of where a token response holds the token and how the token is sent."""

from __future__ import annotations

import re

from harvester.config.schema import AuthConfig
from harvester.errors import ConfigError

# RFC 9110 section 5.6.2: a header name, and an auth scheme, are tokens.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def is_http_token(text: str) -> bool:
    """Whether `text` can be a header name or an auth scheme as it is."""
    return _TOKEN.fullmatch(text) is not None


def check_token_shape(auth: AuthConfig) -> None:
    """ConfigError naming the key of a dotted path with an empty part, or a header or scheme
    that HTTP cannot carry."""
    for key, path in (
        ("token_field", auth.token_field),
        ("expires_at_field", auth.expires_at_field),
    ):
        if path is not None and not all(path.split(".")):
            raise ConfigError(
                f"must be a dotted path like data.access_token, got {path!r}", key=f"auth.{key}"
            )
    if not is_http_token(auth.header):
        raise ConfigError(f"is not a header name: {auth.header!r}", key="auth.header")
    if auth.scheme and not is_http_token(auth.scheme):
        raise ConfigError(
            f'is not an auth scheme (one word, or "" for none): {auth.scheme!r}', key="auth.scheme"
        )
