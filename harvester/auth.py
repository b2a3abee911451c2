"""The one shared token: client_credentials with single-flight refresh and a generation check.

Every worker asks `current()` for the token before each request. One token request is in flight
at most, however many workers need a token at once, and a burst of 401s caused by one expired
token leads to one refresh, not one per worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from yarl import URL

from harvester.body import BodyRefused, read_body
from harvester.budget import Issued, TokenSource
from harvester.client_auth import ClientAuth
from harvester.config import AuthConfig, ConcurrencyConfig
from harvester.discovery import discovered_token_url
from harvester.errors import AuthError, excerpt, redact_url
from harvester.mtls import CERT_WANTED, client_credential_keys, wants_client_cert
from harvester.proxies import Proxies, proxy_errors, proxy_failure, refused_by
from harvester.ratelimit import Throttle
from harvester.retry import (
    REDIRECT_STATUSES,
    InvalidBody,
    RetryableStatus,
    RetryPolicy,
    answered_status,
    certificate_failure,
    failure_detail,
    refused,
    retry_cause,
)
from harvester.secrets import Secrets
from harvester.stats import Stats
from harvester.token_response import read_token_response

# A refresh_margin longer than half the token's lifetime was meant for longer-lived tokens: kept,
# it would refresh on nearly every request. Such a margin shrinks to this share of the lifetime.
_SHORT_TOKEN_MARGIN_SHARE = 0.1
# The DEBUG line of each token request; harvester init shows these as they come.
TOKEN_ASKED = "token request to %s"
log = logging.getLogger("harvester")


@dataclass(frozen=True)
class Token:
    """An access token and its generation (1 for the first token of the run, then 2, ...)."""

    value: str = field(repr=False)
    generation: int
    # Monotonic time after which the token counts as stale; None: until the API says 401.
    refresh_at: float | None = None
    # How the API wants it: auth.header, and the scheme (auth.scheme or the token_type).
    name: str = "Authorization"
    scheme: str = "Bearer"

    def header(self) -> dict[str, str]:
        return {self.name: f"{self.scheme} {self.value}" if self.scheme else self.value}


# A token response is a few hundred bytes: a megabyte, or inflating a hundredfold, is not one.
_LIMITS = ("the token response limit", "the token response compression limit")


class TokenManager:
    """Hands out the current token, refreshing it proactively and after a 401."""

    def __init__(
        self,
        config: AuthConfig,
        session: aiohttp.ClientSession,
        policy: RetryPolicy,
        stats: Stats,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
        clock: Callable[[], float] = time.monotonic,
        secrets: Secrets | None = None,
        throttle: Throttle | None = None,
        wall_clock: Callable[[], float] = time.time,
        source: TokenSource | None = None,
    ) -> None:
        """`secrets`, the run's registry, learns every secret value this manager makes (tokens,
        the Basic credential) as soon as it exists, so that every output can mask it.

        With `source` (budget.py), a refresh takes its token from there rather than asking the
        token endpoint: one token shared by the shards of a run in several processes."""
        self._source = source
        self._config = config
        self._session = session
        self._policy = policy
        self._stats = stats
        self._timeout = timeout
        self._clock = clock
        self._wall_clock = wall_clock  # for an absolute expiry (auth.expires_at_field)
        self._secrets = secrets if secrets is not None else Secrets()
        for key, secret in (("client_secret", config.client_secret), ("token", config.token)):
            if secret is not None:
                self._secrets.add_configured({f"auth.{key}": secret.reveal()})
        # Token requests count against the rate and wait out cool-downs like data requests.
        self._throttle = throttle or Throttle(ConcurrencyConfig(), stats)
        self._proxies = Proxies(config.proxy, key="auth.proxy")
        # Guards _token and the token request: whoever holds it re-checks staleness before
        # refreshing, because the previous holder has most likely just refreshed.
        self._lock = asyncio.Lock()
        self._token: Token | None = None
        self._token_url: str | None = None  # auth.issuer's token endpoint, once discovered
        self._generation = 0
        self._accepted = 0  # the newest generation the API has answered with a success
        if config.type == "bearer" and config.token is not None:
            name, scheme = self._sent_as("Bearer")
            self._token = Token(config.token.reveal(), generation=1, name=name, scheme=scheme)
            self._secrets.add(config.token.reveal(), token=True)
        # A manager served by a source asks no token endpoint: it may hold no credentials at all.
        asks = self.refreshable and source is None
        self._client_auth = ClientAuth(config, self._secrets) if asks else None

    @property
    def refreshable(self) -> bool:
        return self._config.type == "client_credentials"

    async def current(self) -> Token | None:
        """The token to send now; None when auth.type is none."""
        if self._config.type == "none":
            return None
        token = self._token
        if token is not None and not self._stale(token):
            return token
        async with self._lock:
            token = self._token
            if token is None or self._stale(token):
                token = await self._refresh()
            return token

    async def after_unauthorized(self, rejected: Token | None, *, url: str) -> Token:
        """The token to retry with after the API answered 401 to `rejected`."""
        if not self.refreshable or rejected is None:
            what = (
                "the configured bearer token"
                if rejected is not None
                else "a request without a token"
            )
            raise AuthError(f"the API refused {what}", url=url, status=401)
        async with self._lock:
            current = self._token
            # Only the first 401 from a given token refreshes; the others find a newer token.
            if current is None or current.generation == rejected.generation:
                current = await self._refresh()
            return current

    async def newer_than(self, stale: int) -> Token:
        """A token of a generation above `stale`, not stale: the current one if it is such,
        else a new one (a TokenSource's answer to the shards it serves)."""
        async with self._lock:
            token = self._token
            # Re-checked under the lock: whoever held it last has most likely just refreshed.
            if token is None or token.generation <= stale or self._stale(token):
                token = await self._refresh()
            return token

    def accepted(self, token: Token) -> None:
        """Note that the API answered a request made with `token` with a success."""
        self._accepted = max(self._accepted, token.generation)

    def was_accepted(self, token: Token) -> bool:
        return self._accepted >= token.generation

    @property
    def secrets(self) -> Secrets:
        """The run's secret registry, which knows every token this manager was issued."""
        return self._secrets

    def scrub(self, body: bytes) -> bytes:
        """`body` with every secret of the run (old tokens too) replaced by ***: masked before
        an excerpt could cut a secret in two."""
        return self._secrets.mask_bytes(body)

    def _stale(self, token: Token) -> bool:
        return token.refresh_at is not None and self._clock() >= token.refresh_at

    async def _refresh(self) -> Token:
        if self._source is not None:
            current = self._token
            return self._adopt(await self._source.fetch(current.generation if current else 0))
        url = self._config.token_url or await self._discovered_token_url()

        def count_retry(exc: BaseException, wait: float) -> None:
            self._stats.count_retry(f"token_{retry_cause(exc)}")

        try:
            async for attempt in self._policy.retrying(on_retry=count_retry):
                with attempt:
                    payload = await self._request_token(url)
        except (aiohttp.ClientError, TimeoutError, RetryableStatus, InvalidBody) as exc:
            unverified = certificate_failure(exc, url)
            if unverified is not None:
                raise unverified from exc
            attempts = self._policy.config.max_attempts if self._policy.is_retryable(exc) else 1
            unreachable = proxy_failure(exc, attempts)
            if unreachable is not None:
                raise unreachable from None
            raise AuthError(
                f"{_failure(exc)} after {attempts} attempt(s): {_describe(exc)}",
                url=url,
                status=answered_status(exc),
            ) from exc
        return self._accept(payload, url)

    async def _discovered_token_url(self) -> str:
        """auth.issuer's token endpoint, asked once (under the lock, as every refresh is)."""
        if self._token_url is None:
            assert self._config.issuer is not None
            self._token_url = await discovered_token_url(
                self._config, self._session, self._policy, self._stats, proxies=self._proxies
            )
        return self._token_url

    async def _request_token(self, url: str) -> dict[str, Any]:
        form, headers = self._token_request(url)
        self._stats.token_requests += 1
        log.debug(TOKEN_ASKED, redact_url(url))
        proxy, args = self._proxies.route(URL(url), headers)
        async with (
            self._throttle.request(counted=False) as ticket,
            proxy_errors(proxy),
            self._session.post(
                url, data=form, timeout=self._timeout, allow_redirects=False, **args
            ) as response,
        ):
            ticket.observe(response.status, response.headers)
            refusal = refused_by(proxy, response.status)
            if refusal is not None:
                raise refusal
            if response.status in REDIRECT_STATUSES:
                # Not followed: a 307 or 308 would take the client secret along, to wherever the
                # Location says. The secret goes to auth.token_url and nowhere else.
                location = response.headers.get("Location", "(no Location)")
                raise AuthError(
                    f"the token endpoint redirects to {redact_url(location)}; redirects are not "
                    "followed for token requests, so that the client secret goes nowhere else: "
                    "set auth.token_url to the new address if it is right",
                    url=url,
                    status=response.status,
                )
            try:
                body = await read_body(response, max_bytes=1 << 20, max_ratio=100, limits=_LIMITS)
            except BodyRefused as exc:
                raise AuthError(str(exc), url=url, status=response.status) from None
            if response.status != 200:  # an error body has no token of ours, but may echo one
                body = self.scrub(body)
            if response.status in self._policy.config.statuses or response.status >= 500:
                raise refused(response.status, response.headers, body)
            payload = _json_object(body)
            if response.status != 200:
                error = _text(payload.get("error")) if payload else None
                description = _text(payload.get("error_description")) if payload else None
                raise AuthError(
                    self._refusal(response.status, error, description),
                    url=url,
                    status=response.status,
                    error=error,
                    error_description=description if payload else excerpt(body),
                )
            if payload is None:
                # No excerpt: a token response cut short holds the start of a token.
                raise InvalidBody("token response is not a JSON object", body="", status=200)
            return payload

    def _refusal(self, status: int, error: str | None, description: str | None) -> str:
        """Why the token endpoint refused us, naming the config keys to look at."""
        scope = self._config.scope
        if wants_client_cert(status, error, description):
            return f"token request refused: {CERT_WANTED}"
        if error == "invalid_client" or (status == 401 and error is None):
            if self._config.auth_method in ("private_key_jwt", "client_secret_jwt"):
                return f"token request refused: {_proof(self._config.auth_method)} not accepted"
            credential = client_credential_keys(self._config)
            return f"token request refused: auth.client_id or {credential} not accepted"
        if scope and (error == "invalid_scope" or status == 403):
            return f"token request refused: auth.scope {scope!r} not granted"
        return "token request refused"

    def _token_request(self, url: str) -> tuple[dict[str, str], dict[str, str]]:
        config = self._config
        assert config.client_id is not None
        form = {"grant_type": "client_credentials", **config.extra_params}
        if config.scope:
            form["scope"] = config.scope
        headers = {"Accept": "application/json"}
        if config.auth_method == "tls_client_auth":  # RFC 8705 2: the certificate authenticates
            form["client_id"] = config.client_id
            return form, headers
        assert self._client_auth is not None
        # Made anew for each attempt: a JWT assertion is good for one request only.
        credentials, more = self._client_auth.credentials(token_url=url)
        return {**form, **credentials}, {**headers, **more}

    def _accept(self, payload: dict[str, Any], url: str) -> Token:
        answer = read_token_response(
            payload,
            self._config,
            now=self._wall_clock(),
            url=url,
            register=lambda value: self._secrets.add(value, token=True),
        )
        lifetime = answer.lifetime
        refresh_at = None
        if lifetime is not None:
            margin = self._config.refresh_margin
            if margin > lifetime / 2:
                margin = lifetime * _SHORT_TOKEN_MARGIN_SHARE
            refresh_at = self._clock() + lifetime - margin
        self._generation += 1
        name, scheme = self._sent_as(answer.scheme)
        self._token = Token(
            answer.value,
            generation=self._generation,
            refresh_at=refresh_at,
            name=name,
            scheme=scheme,
        )
        return self._token

    def _adopt(self, issued: Issued) -> Token:
        """A token from the source, now this manager's current one."""
        self._secrets.add(issued.value, token=True)
        self._generation = max(self._generation, issued.generation)
        refresh_at = None if issued.refresh_in is None else self._clock() + issued.refresh_in
        self._token = Token(
            issued.value,
            generation=issued.generation,
            refresh_at=refresh_at,
            name=issued.name,
            scheme=issued.scheme,
        )
        return self._token

    def _sent_as(self, scheme: str) -> tuple[str, str]:
        """(the header the token goes in, its scheme): auth.header, auth.scheme over `scheme`."""
        config = self._config
        return config.header, config.scheme if config.scheme is not None else scheme


def _proof(method: str) -> str:
    """The config keys that prove the client under auth.auth_method `method`."""
    if method == "private_key_jwt":
        return "the client assertion (auth.client_id, auth.private_key, auth.key_id, its aud)"
    if method == "client_secret_jwt":
        return "the client assertion (auth.client_id, auth.client_secret, its aud)"
    return "auth.client_id or auth.client_secret"


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _failure(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "could not connect to the token endpoint"
    return "token endpoint failed"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):  # what the OS said, without the wrapping
        error = exc.os_error
        # "Connection refused" rather than asyncio's "Connect call failed ('127.0.0.1', 8765)"
        if isinstance(error, ConnectionError) and error.errno:
            return os.strerror(error.errno)
        return error.strerror or str(error) or str(exc)
    cause = retry_cause(exc) or type(exc).__name__
    detail = failure_detail(exc)
    return f"{cause} ({detail})" if detail and detail != cause else cause
