"""An issuer's token endpoint from its discovery document: OpenID Connect Discovery's
(issuer + /.well-known/openid-configuration), then RFC 8414's (the well-known path inserted
before the issuer's path). A run reads it once, before its first token request (auth.issuer);
`harvester init --issuer` reads it too (harvester/init/discovery.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from harvester.body import BodyRefused, read_body
from harvester.config import AuthConfig
from harvester.config.schema import _insecure
from harvester.errors import AuthError, ConfigError, redact_url
from harvester.proxies import Proxies
from harvester.read import NotJSON, decode_json
from harvester.retry import RetryableStatus, RetryPolicy, certificate_failure, refused
from harvester.stats import Stats

__all__ = [
    "WELL_KNOWN",
    "Answer",
    "ask_documents",
    "discovered_token_url",
    "discovery_urls",
    "token_endpoint",
]

WELL_KNOWN = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
# A discovery document is a few kilobytes; a megabyte, or inflating a hundredfold, is not one.
_MAX_BYTES, _MAX_RATIO = 1 << 20, 100
log = logging.getLogger("harvester")


def discovery_urls(issuer: str) -> list[URL]:
    """Where an issuer's metadata may be: OpenID's (issuer + path), then RFC 8414's (the
    well-known path inserted before the issuer's path, section 3.1)."""
    base = URL(issuer)
    if base.scheme not in ("http", "https") or not base.host:
        raise ValueError(f"must be an http(s) URL, got {issuer!r}")
    path = base.path.rstrip("/")
    return [base.with_path(path + WELL_KNOWN[0]), base.with_path(WELL_KNOWN[1] + path)]


@dataclass(frozen=True)
class Answer:
    """One discovery document asked for: its URL (redacted), what came back, the document."""

    url: str
    outcome: str  # the status ("404"), or the kind of failure ("ClientConnectorError")
    document: dict[str, Any] | None = None

    @property
    def token_endpoint(self) -> str | None:
        """The document's token_endpoint, if it is an http(s) URL."""
        value = (self.document or {}).get("token_endpoint")
        return (
            value if isinstance(value, str) and value.startswith(("https://", "http://")) else None
        )

    def said(self) -> str:
        """`URL (outcome)`, as an error lists the documents asked."""
        if self.outcome == "200" and self.token_endpoint is None:
            return f"{self.url} (200, no token_endpoint)"
        return f"{self.url} ({self.outcome})"


# The DEBUG line of each discovery request; harvester init shows these as they come.
DOCUMENT_ASKED = "discovery document %s answered %d"


async def ask_documents(
    session: aiohttp.ClientSession,
    issuer: str,
    *,
    policy: RetryPolicy | None = None,
    proxies: Proxies | None = None,
) -> AsyncGenerator[Answer, None]:
    """Each discovery document in turn, until the caller stops asking (it found one).

    With `policy`, a failure it calls retryable (a dropped connection, a 503) is retried: an
    outage of the identity provider must not read as "no document here". Redirects are not
    followed: the document is the issuer's, at the issuer's address.
    """
    for url in discovery_urls(issuer):
        shown = redact_url(str(url))
        try:
            if policy is None:
                answer = await _ask(session, url, shown, retryable=(), proxies=proxies)
            else:
                async for attempt in policy.retrying():
                    with attempt:
                        answer = await _ask(
                            session, url, shown, retryable=policy.config.statuses, proxies=proxies
                        )
        except (aiohttp.ClientError, TimeoutError, RetryableStatus) as exc:
            unverified = certificate_failure(exc, str(url))
            if unverified is not None:
                raise unverified from exc
            if policy is not None and policy.is_retryable(exc):
                raise AuthError(
                    f"the issuer's discovery document could not be read: {type(exc).__name__}",
                    url=shown,
                    status=getattr(exc, "status", None),
                ) from exc
            answer = Answer(shown, type(exc).__name__)
        yield answer


async def _ask(
    session: aiohttp.ClientSession,
    url: URL,
    shown: str,
    *,
    retryable: tuple[int, ...],
    proxies: Proxies | None = None,
) -> Answer:
    # Through auth.proxy (or the environment's) like the token request the document leads to.
    _, args = proxies.route(url, {}) if proxies is not None else (None, {})
    async with session.get(url, allow_redirects=False, **args) as response:
        log.debug(DOCUMENT_ASKED, shown, response.status)
        try:
            body = await read_body(response, max_bytes=_MAX_BYTES, max_ratio=_MAX_RATIO)
        except BodyRefused:
            return Answer(shown, f"{response.status}, too large")
        if response.status in retryable:
            raise refused(response.status, response.headers, body)
        if response.status != 200:
            return Answer(shown, str(response.status))
        try:
            document = decode_json(body, response.headers.get("Content-Type", ""))
        except NotJSON:
            return Answer(shown, "200, not JSON")
        return Answer(shown, "200", document if isinstance(document, dict) else None)


async def token_endpoint(
    session: aiohttp.ClientSession,
    issuer: str,
    auth_method: str,
    *,
    policy: RetryPolicy | None = None,
    warn: Callable[[str], None] = log.warning,
    proxies: Proxies | None = None,
) -> str:
    """The token endpoint auth.issuer's discovery document names, once `auth_method` is checked
    against the methods it advertises (token_endpoint_auth_methods_supported).

    ConfigError (exit 2) when no document names a token endpoint, listing the URLs asked, and
    when the document lists its methods without `auth_method`: both are fixed in the config.
    A list that is absent only warns: RFC 8414 then means client_secret_basic, OpenID
    providers often leave it out, and the token endpoint's answer will tell.
    """
    asked: list[Answer] = []
    asking = ask_documents(session, issuer, policy=policy, proxies=proxies)
    async with contextlib.aclosing(asking) as documents:
        async for answer in documents:
            asked.append(answer)
            if answer.token_endpoint is not None:
                break
    if not asked or asked[-1].token_endpoint is None:
        raise ConfigError(
            f"no discovery document with a token_endpoint at {', '.join(a.said() for a in asked)}:"
            " check the issuer, or set auth.token_url instead",
            key="auth.issuer",
        )
    found = asked[-1]
    assert found.token_endpoint is not None and found.document is not None
    _check_issuer(found, issuer, warn)
    methods = found.document.get("token_endpoint_auth_methods_supported")
    if not isinstance(methods, list):
        warn(
            f"{found.url} does not list token_endpoint_auth_methods_supported: "
            f"auth.auth_method {auth_method} is tried as it is"
        )
    elif auth_method not in methods:
        offered = ", ".join(str(m) for m in methods) or "none"
        raise ConfigError(
            f"{auth_method} is not among the methods the issuer accepts ({offered}, says "
            f"{found.url} in token_endpoint_auth_methods_supported): set one of them",
            key="auth.auth_method",
        )
    return found.token_endpoint


def _check_issuer(found: Answer, issuer: str, warn: Callable[[str], None]) -> None:
    """ConfigError where the document speaks for another issuer than the one configured: RFC
    8414 (3.3) and OpenID Connect Discovery (4.3) say such metadata must not be used, since a
    document served for one issuer could send the client secret to another's token endpoint.
    A trailing slash is the one difference let through (`https://id.example.com/` is how many
    providers write the issuer a config names without it)."""
    said = (found.document or {}).get("issuer")
    if said is None:
        warn(f"{found.url} does not name its issuer: its token endpoint is taken as it is")
        return
    if not isinstance(said, str) or said.rstrip("/") != issuer.rstrip("/"):
        raise ConfigError(
            f"the discovery document {found.url} speaks for the issuer {said!r}, not {issuer!r}, "
            "so its token endpoint is not used (RFC 8414 3.3); if that is the issuer you trust, "
            "set auth.issuer to it",
            key="auth.issuer",
        )


async def discovered_token_url(
    auth: AuthConfig,
    session: aiohttp.ClientSession,
    policy: RetryPolicy,
    stats: Stats,
    *,
    proxies: Proxies | None = None,
) -> str:
    """The run's token endpoint from auth.issuer, held to the rule auth.token_url is held to:
    no client secret over plain http to another machine unless auth.allow_insecure_http."""
    assert auth.issuer is not None

    def warn(message: str) -> None:
        log.warning(message)
        stats.warn(message)

    url = await token_endpoint(
        session, auth.issuer, auth.auth_method, policy=policy, warn=warn, proxies=proxies
    )
    if _insecure(url) and not auth.allow_insecure_http:
        raise ConfigError(
            f"the discovery document names a token endpoint over plain http ({redact_url(url)}): "
            "the client credentials would cross the network readable; set auth.token_url to an "
            "https one, or auth.allow_insecure_http: true to accept that",
            key="auth.issuer",
        )
    log.info("token endpoint %s, from %s's discovery document", redact_url(url), auth.issuer)
    return url
