"""OAuth2 client_credentials for the demo API (RFC 6749 section 4.4): issue and check tokens."""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

import orjson
from aiohttp import web

from .assertions import AssertionRefused, check_assertion
from .mtls import certificate_missing, client_common_name
from .settings import DemoSettings
from .stats import DemoStats
from .token_shapes import shaped_token_body


class TokenStore:
    """Issued bearer tokens and when each expires, on the monotonic clock."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self.issued: list[str] = []  # every token ever issued, for tests that look for leaks
        self.used_jti: set[str] = set()  # every client assertion's jti spent (no replay)

    def issue(self, lifetime: float) -> str:
        now = time.monotonic()
        # Forget expired tokens here, not per request: issuing is rare, checking is not.
        self._expiry = {token: end for token, end in self._expiry.items() if end > now}
        token = secrets.token_urlsafe()
        self._expiry[token] = now + lifetime
        self.issued.append(token)
        return token

    def is_valid(self, token: str) -> bool:
        expiry = self._expiry.get(token)
        return expiry is not None and expiry > time.monotonic()

    def expire_all(self) -> None:
        self._expiry.clear()


def client_credentials(
    authorization: str | None, form: Mapping[str, str]
) -> tuple[str, str] | None:
    """(client_id, client_secret) from HTTP Basic or the form body; None if absent or garbled.

    In Basic, id and secret are each form-urlencoded before base64 (RFC 6749 section 2.3.1), so a
    secret may itself contain ':'; hence split on the first ':' and only then decode.
    """
    if authorization is not None:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, colon, secret = decoded.partition(":")
        return (unquote_plus(client_id), unquote_plus(secret)) if colon else None
    if "client_id" in form:
        return form["client_id"], form.get("client_secret", "")
    return None


_BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="demo"'}


def oauth_error(
    status: int, error: str, description: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    body = orjson.dumps({"error": error, "error_description": description})
    return web.Response(
        status=status,
        body=body,
        content_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


async def token_response(
    request: web.Request, settings: DemoSettings, stats: DemoStats, store: TokenStore
) -> web.Response:
    """The answer to one POST to the token endpoint."""
    stats.token_requests += 1
    if settings.token_latency:
        await asyncio.sleep(settings.token_latency)
    form = {key: value for key, value in (await request.post()).items() if isinstance(value, str)}
    if certificate_missing(request, settings.client_cert_required, "token"):
        return oauth_error(401, "invalid_client", "client certificate required")
    refusal = _authenticate(request, form, settings, store)
    if refusal is not None:
        return refusal
    if stats.token_requests <= settings.token_failures:
        return oauth_error(503, "temporarily_unavailable", "token_failures")
    if form.get("grant_type") != "client_credentials":
        return oauth_error(
            400, "unsupported_grant_type", "only grant_type=client_credentials is supported"
        )
    requested = form.get("scope", "").split()
    unknown = [scope for scope in requested if scope not in settings.scopes]
    if unknown:
        return oauth_error(
            settings.scope_refusal_status,
            "invalid_scope",
            f"scope not allowed: {' '.join(unknown)}",
        )
    body: dict[str, Any] = {
        "access_token": store.issue(settings.token_lifetime),
        "token_type": "Bearer",
        "scope": " ".join(requested or settings.scopes),
    }
    if not settings.omit_expires_in:
        # Whole seconds as an integer, as RFC 6749 has it; a lifetime under a second (in tests)
        # as the fraction it is, not truncated to a useless 0.
        lifetime = settings.token_lifetime
        expires_in = int(lifetime) if lifetime >= 1 or lifetime == 0 else lifetime
        body["expires_in"] = str(expires_in) if settings.expires_in_as_string else expires_in
    stats.tokens_issued += 1
    return web.Response(
        body=orjson.dumps(shaped_token_body(body, settings)),
        content_type="application/json",
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def _is_tls_client_auth(request: web.Request, form: Mapping[str, str]) -> bool:
    """tls_client_auth: a client_id in the form, no secret anywhere, a client certificate."""
    return (
        "client_id" in form
        and "client_secret" not in form
        and "Authorization" not in request.headers
        and client_common_name(request) is not None
    )


def _authenticate(
    request: web.Request, form: Mapping[str, str], settings: DemoSettings, store: TokenStore
) -> web.Response | None:
    """The refusal when the request does not prove the client, else None."""
    if _is_tls_client_auth(request, form):
        # RFC 8705 2: the certificate, verified in the handshake, authenticates the client.
        if client_common_name(request) != settings.client_id or form["client_id"] != (
            settings.client_id
        ):
            return oauth_error(401, "invalid_client", "client certificate does not match client_id")
        return None
    assertions = settings.assertion_jwks is not None or settings.secret_assertions
    if assertions and "client_assertion" in form:
        endpoint = str(request.url.with_query(None))
        try:
            check_assertion(form, endpoint, settings, store.used_jti)
        except AssertionRefused as exc:
            return oauth_error(401, "invalid_client", str(exc))
        return None
    credentials = client_credentials(request.headers.get("Authorization"), form)
    if credentials is None:
        return oauth_error(
            401, "invalid_client", "client authentication is missing", _BASIC_CHALLENGE
        )
    if not _is_known_client(credentials, settings):
        return oauth_error(
            401, "invalid_client", "unknown client or wrong secret", _BASIC_CHALLENGE
        )
    return None


def _is_known_client(credentials: tuple[str, str], settings: DemoSettings) -> bool:
    client_id, secret = credentials
    # compare_digest on both, always: the demo should not teach timing leaks.
    id_ok = secrets.compare_digest(client_id.encode(), settings.client_id.encode())
    secret_ok = secrets.compare_digest(secret.encode(), settings.client_secret.encode())
    return id_ok and secret_ok
