"""Which HTTP proxy a request goes through: source.proxy / auth.proxy, else the environment.

The explicit keys win: source.proxy for data requests, auth.proxy for token requests, each an
http:// URL (credentials in it allowed), or `none` (or "") for no proxy whatever the
environment says; neither asks NO_PROXY. Without them, HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and
NO_PROXY (the lower-case forms first) decide for each URL as requests decides: urllib's
getproxies_environment and proxy_bypass_environment (a name and its subdomains, host:port, *),
and, as requests adds, an IP address inside a CIDR range (10.0.0.0/8). Loopback is proxied like
any host unless NO_PROXY names it (Go and curl leave localhost alone; requests does not).

aiohttp's own trust_env is not used: it drops an https:// proxy with a log line and goes direct,
reads ~/.netrc for credentials nobody configured, and asks a thread per request.

Credentials in a proxy URL go only to the proxy, as Proxy-Authorization: in the request itself
for an http:// target (the proxy is the peer), in the CONNECT for an https:// one (never inside
the tunnel). harvester.secret_sources registers them; the URL shown anywhere is redacted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from harvester.errors import ConfigError, HarvesterError, redact_url

if TYPE_CHECKING:
    from harvester.config import Config

__all__ = [
    "NO_PROXY_VALUES",
    "Proxies",
    "Proxy",
    "ProxyError",
    "ProxyUnreachable",
    "check_proxy",
    "environment_proxies",
    "proxy_errors",
    "proxy_failure",
    "refused_by",
    "proxy_note",
    "proxy_urls",
]

# What source.proxy / auth.proxy say for "no proxy, whatever the environment holds".
NO_PROXY_VALUES = ("none", "")
_PROXY_AUTH = "Proxy-Authorization"


@dataclass(frozen=True)
class Proxy:
    """One proxy: its URL without credentials, where it was configured, its credential."""

    url: URL
    key: str  # source.proxy, auth.proxy, or the environment variable (HTTPS_PROXY)
    override: str  # the config key that would replace it (source.proxy or auth.proxy)
    credential: str | None = field(default=None, repr=False)  # "Basic ...", for the proxy only

    @property
    def shown(self) -> str:
        """The URL as it may be shown: credentials as ***."""
        return str(self.url.with_user("***")) if self.credential else str(self.url)

    @property
    def where(self) -> str:
        """`shown` and where it was set: `http://proxy:3128 (HTTPS_PROXY)`."""
        origin = self.key if self.key == self.override else f"{self.key}, from the environment"
        return f"{self.shown} ({origin})"

    def fix(self) -> str:
        """Which setting to change."""
        if self.key == self.override:
            return f"check {self.key}, or set it to none to connect directly"
        return f"fix {self.key}, add the host to NO_PROXY, or set {self.override}"

    def request_args(self, target: URL, headers: Mapping[str, str]) -> dict[str, Any]:
        """aiohttp request arguments sending a request for `target` through this proxy."""
        args: dict[str, Any] = {"proxy": self.url, "headers": dict(headers)}
        if self.credential is not None:
            # aiohttp sends proxy_headers only in a CONNECT: for an http:// target the proxy
            # reads the request itself. An https:// target's own headers go through the
            # tunnel, past the proxy: the credential must not be among them.
            if target.scheme == "https":
                args["proxy_headers"] = {_PROXY_AUTH: self.credential}
            else:
                args["headers"][_PROXY_AUTH] = self.credential
        return args


def _parse(value: str, key: str, override: str) -> Proxy:
    """The Proxy `value` names; ConfigError naming `key` if it is not an http:// proxy URL."""
    text = value.strip()
    if "://" not in text:  # "proxy:3128", as requests reads it
        text = "http://" + text
    try:
        url = URL(text)
        url.port  # noqa: B018 (raises on a port out of range)
    except ValueError as exc:
        raise ConfigError(f"is not a valid URL ({exc})", key=key) from None
    if url.scheme != "http" or not url.host:
        raise ConfigError(
            f"must be an http:// proxy URL (http://host:port), got {redact_url(text)!r}", key=key
        )
    credential = None
    if url.user is not None or url.password is not None:
        credential = aiohttp.encode_basic_auth(url.user or "", url.password or "")
    return Proxy(url.with_user(None).with_path(""), key, override, credential)


def check_proxy(value: str | None, key: str) -> None:
    """Raise ConfigError naming `key` unless `value` is unset, none, or an http:// proxy URL."""
    if value is not None and value.strip().lower() not in NO_PROXY_VALUES:
        _parse(value, key, key)


def environment_proxies(environ: Mapping[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """(variable, URL) of each proxy set in the environment (HTTP_PROXY, https_proxy, ...)."""
    environ = os.environ if environ is None else environ
    for name, value in environ.items():
        lower = name.lower()
        if lower in ("http_proxy", "https_proxy", "all_proxy") and value:
            yield name, value


class Proxies:
    """The proxy (or none) for each request of one kind: data (source.proxy) or token (auth.proxy).

    The environment is read once, when made: a run keeps the routes it started with.
    """

    def __init__(self, explicit: str | None, *, key: str) -> None:
        """`explicit`: source.proxy or auth.proxy as configured (None: left out), `key` which."""
        self._fixed: Proxy | None = None
        self._explicit = explicit is not None
        self._by_scheme: dict[str, Proxy] = {}
        self._environment: dict[str, str] = {}
        if explicit is not None:
            if explicit.strip().lower() not in NO_PROXY_VALUES:
                self._fixed = _parse(explicit, key, key)
            return
        # urllib's reading: lower case wins, empty values count as unset, and HTTP_PROXY is
        # ignored in a CGI request (httpoxy).
        self._environment = urllib.request.getproxies_environment()
        for scheme in ("http", "https", "all"):
            value = self._environment.get(scheme)
            if value:
                name = f"{scheme}_proxy" if os.environ.get(f"{scheme}_proxy") else None
                self._by_scheme[scheme] = _parse(value, name or f"{scheme.upper()}_PROXY", key)

    def known(self) -> list[Proxy]:
        """Every proxy a request of this kind may go through."""
        return [self._fixed] if self._fixed is not None else list(self._by_scheme.values())

    def for_url(self, url: URL) -> Proxy | None:
        """The proxy a request for `url` goes through; None: connect directly."""
        if self._explicit:
            return self._fixed
        proxy = self._by_scheme.get(url.scheme) or self._by_scheme.get("all")
        if proxy is None or self._bypassed(url):
            return None
        return proxy

    def route(self, url: URL, headers: Mapping[str, str]) -> tuple[Proxy | None, dict[str, Any]]:
        """The proxy for `url` (None: direct), and aiohttp's arguments to send it that way."""
        proxy = self.for_url(url)
        return proxy, proxy.request_args(url, headers) if proxy else {"headers": dict(headers)}

    def _bypassed(self, url: URL) -> bool:
        host = (url.host or "").lower()
        if _in_cidr(host, self._environment.get("no", "")):
            return True
        port = url.explicit_port
        hostport = f"{host}:{port}" if port is not None and ":" not in host else host
        # Public in urllib (what proxy_bypass calls on Linux), if missing from typeshed.
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        return bool(bypass(hostport, self._environment))


def _in_cidr(host: str, no_proxy: str) -> bool:
    """Whether `host` is an IP address inside a CIDR range NO_PROXY lists (as requests reads
    it: urllib matches names only)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    for entry in no_proxy.replace(" ", "").split(","):
        if "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


class ProxyError(HarvesterError):
    """A proxy could not be reached, or refused the request (407, or a failed CONNECT)."""

    def __init__(
        self, message: str, *, proxy: Proxy, status: int | None = None, fix: str | None = None
    ) -> None:
        super().__init__(f"the proxy {proxy.where} {message}: {fix or proxy.fix()}")
        self.proxy = proxy.shown
        self.key = proxy.key
        self.status = status


class ProxyUnreachable(aiohttp.ClientProxyConnectionError):
    """aiohttp's failure to connect to a proxy, with the Proxy it was: retried like any failed
    connection, then said by proxy_failure."""

    def __init__(self, proxy: Proxy, exc: aiohttp.ClientProxyConnectionError) -> None:
        super().__init__(exc._conn_key, exc.os_error)
        self.proxy = proxy


def refused_by(proxy: Proxy | None, status: int) -> ProxyError | None:
    """The error for a proxy's answer of `status` to a request through it; None if it is not
    the proxy's own refusal (only 407 always is)."""
    if proxy is None or status != 407:
        return None
    if proxy.credential is None:
        fix = f"give them in {proxy.key} as http://user:password@host:port"
        return ProxyError("asks for credentials (407)", proxy=proxy, status=407, fix=fix)
    return ProxyError("refused the credentials (407)", proxy=proxy, status=407)


def connect_refused(proxy: Proxy, exc: aiohttp.ClientHttpProxyError) -> ProxyError:
    """The error for a proxy that answered a CONNECT (an https:// target) with an error."""
    return refused_by(proxy, exc.status) or ProxyError(
        f"refused to open a tunnel ({exc.status} {exc.message})", proxy=proxy, status=exc.status
    )


@contextlib.asynccontextmanager
async def proxy_errors(proxy: Proxy | None) -> AsyncIterator[None]:
    """aiohttp's failures of `proxy` as harvester says them: ProxyUnreachable (retried like any
    failed connection, then told by proxy_failure) and ProxyError."""
    try:
        yield
    except aiohttp.ClientProxyConnectionError as exc:
        if proxy is None:
            raise
        raise ProxyUnreachable(proxy, exc) from exc
    except aiohttp.ClientHttpProxyError as exc:
        if proxy is None:
            raise
        raise connect_refused(proxy, exc) from None


def proxy_failure(exc: BaseException, attempts: int) -> ProxyError | None:
    """The error to fail with when `exc`, after `attempts`, was a proxy that could not be
    reached; None for any other failure."""
    if not isinstance(exc, ProxyUnreachable):
        return None
    error = exc.os_error
    reason = (os.strerror(error.errno) if error.errno else str(error)) or type(error).__name__
    return ProxyError(
        f"could not be reached after {attempts} attempt(s): {reason}", proxy=exc.proxy
    )


def proxy_urls(config: Config) -> list[str]:
    """The URL of every proxy a run of `config` may connect to, for data or tokens."""
    routes = (Proxies(config.source.proxy, key="source.proxy"), _token_proxies(config))
    return [str(proxy.url) for proxies in routes for proxy in proxies.known()]


def _token_proxies(config: Config) -> Proxies:
    return Proxies(config.auth.proxy, key="auth.proxy")


def _where(proxy: Proxy | None) -> str | None:
    return None if proxy is None else proxy.where


def proxy_note(config: Config) -> str:
    """What the start-up line says of proxies: ``, through the proxy http://p:3128
    (HTTPS_PROXY)``, or nothing when data and token requests go directly."""
    data = Proxies(config.source.proxy, key="source.proxy").for_url(URL(config.source.url))
    notes = [f"through the proxy {data.where}"] if data is not None else []
    token_url = config.auth.token_url if config.auth.type == "client_credentials" else None
    if token_url:
        token = _token_proxies(config).for_url(URL(token_url))
        if _where(token) != _where(data):  # the same proxy for both: said once
            notes.append(f"tokens through {token.where}" if token else "tokens directly")
    return "".join(f", {note}" for note in notes)
