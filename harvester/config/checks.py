"""The checks across fields that no type can make: URLs, auth, plain http, TLS, paging, bounds."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import yarl

from harvester.client_assertion import check_client_auth
from harvester.config.client_cert import check_client_cert
from harvester.config.incremental import check_incremental
from harvester.config.issuer import check_issuer, check_tls_client_auth, required_auth_keys
from harvester.config.masking import Secret
from harvester.config.output import resolve_format
from harvester.config.schema import (
    AuthConfig,
    Config,
    PaginationConfig,
    PartitionConfig,
    RetryConfig,
    TlsConfig,
    _insecure,
    _secret_destinations,
)
from harvester.config.token_shape import check_token_shape
from harvester.errors import ConfigError
from harvester.proxies import check_proxy
from harvester.stream import is_stream


def _check(config: Config) -> Config:
    _check_url(config.source.url, "source.url")
    _check_auth(config.auth)
    _check_plain_http(config)
    _check_tls(config.tls)
    check_tls_client_auth(config)
    check_proxy(config.source.proxy, "source.proxy")
    check_proxy(config.auth.proxy, "auth.proxy")
    _check_local_address(config.source.local_address)
    pagination = _check_pagination(config.pagination)
    _positive("source.timeout", config.source.timeout)
    _positive("source.connect_timeout", config.source.connect_timeout)
    _positive("source.read_timeout", config.source.read_timeout)
    _at_least("source.max_body_bytes", config.source.max_body_bytes, 1)
    _at_least("source.max_compression_ratio", config.source.max_compression_ratio, 1)
    _at_least("concurrency.workers", config.concurrency.workers, 1, 1000)
    _at_least("concurrency.max_buffered_pages", config.concurrency.max_buffered_pages, 1)
    _at_least("concurrency.burst", config.concurrency.burst, 1)
    if config.concurrency.rate_limit is not None:
        _positive("concurrency.rate_limit", config.concurrency.rate_limit)
    if config.concurrency.stop_grace < 0:
        raise ConfigError("must be >= 0", key="concurrency.stop_grace")
    _positive("output.checkpoint_every", config.output.checkpoint_every)
    _check_retry(config.retry)
    if Path(config.output.path).name in ("", ".", ".."):
        what = "a folder" if config.incremental else "a file"
        raise ConfigError(f"must name {what}, got {config.output.path!r}", key="output.path")
    if not config.output.path.strip():
        raise ConfigError("must not be empty", key="output.path")
    if "\x00" in config.output.path:
        raise ConfigError(f"is not a file name: {config.output.path!r}", key="output.path")
    resolve_format(config.output, stream=is_stream(config.output.path))
    _check_parent_keys(config)
    check_incremental(config)
    return dataclasses.replace(config, pagination=pagination)


def _check_parent_keys(config: Config) -> None:
    """A child resource's keys, refused where there is no parent (config/resources.py checks
    names and parents across the document)."""
    defaults = Config(source=config.source, output=config.output)
    if config.parent is None:
        for key in ("include_from_parent", "on_missing"):
            if getattr(config, key) != getattr(defaults, key):
                raise ConfigError("applies only to a resource with a parent", key=key)


def _check_local_address(address: str | None) -> None:
    if address is None:
        return
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ConfigError(
            f"must be an IP address of this machine (e.g. 10.0.0.7 or 2001:db8::7), "
            f"got {address!r}",
            key="source.local_address",
        ) from None


def _check_url(url: str, key: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port out of range)
        yarl.URL(url)
    except ValueError as exc:
        raise ConfigError(f"is not a valid URL ({exc}): {url!r}", key=key) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"must be an http(s) URL with a host, got {url!r}", key=key)


def _check_auth(auth: AuthConfig) -> None:
    check_issuer(auth)  # before token_url, which issuer may stand in for
    if auth.type == "client_credentials":
        for name in required_auth_keys(auth):
            value = getattr(auth, name)
            if value is None or str(value.reveal() if isinstance(value, Secret) else value) == "":
                raise ConfigError(
                    "is required when auth.type is client_credentials", key=f"auth.{name}"
                )
        for name, url in (("token_url", auth.token_url), ("issuer", auth.issuer)):
            if url is not None:
                _check_url(url, f"auth.{name}")
        check_client_auth(auth)
    elif auth.type == "bearer" and (auth.token is None or not auth.token.reveal()):
        raise ConfigError("is required when auth.type is bearer", key="auth.token")
    if auth.refresh_margin < 0:
        raise ConfigError("must be >= 0", key="auth.refresh_margin")
    check_token_shape(auth)


def _check_plain_http(config: Config) -> None:
    if config.auth.allow_insecure_http:
        return  # said as a warning on every run instead: Config.warnings
    for key, url, what in _secret_destinations(config):
        if _insecure(url):
            raise ConfigError(
                f"would send {what} over plain http to {urlsplit(url).hostname}, which is not "
                "loopback, where anyone on the network path can read it: use https, or set "
                "auth.allow_insecure_http: true to accept that",
                key=key,
            )


def _check_tls(tls: TlsConfig) -> None:
    check_client_cert(tls)
    key = "tls.ca_bundle"
    if tls.ca_bundle is None:
        return
    if not tls.verify:
        raise ConfigError("cannot go with tls.verify: false, which checks nothing", key=key)
    if not tls.ca_bundle.strip():
        raise ConfigError("must not be empty (leave it out to trust the system's CAs)", key=key)
    # Loaded once here, so that a wrong file fails before the first request, not at it.
    try:
        tls.ssl_context()
    except ssl.SSLError as exc:  # before OSError: SSLError is one
        raise ConfigError(
            f"{tls.ca_bundle} holds no PEM certificate that can be loaded ({exc.reason or exc})",
            key=key,
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read {tls.ca_bundle!r}: {exc.strerror or exc}", key=key
        ) from None
    except ValueError:  # a NUL in the name: no file can have it
        raise ConfigError(f"is not a file name: {tls.ca_bundle!r}", key=key) from None


_TOTAL_DEFAULTS = {"offset": "body:total", "range": "content-range", "page": "body:total"}


def _check_pagination(p: PaginationConfig) -> PaginationConfig:
    _at_least("pagination.page_size", p.page_size, 1)
    _at_least("pagination.start", p.start, 0)
    _at_least("pagination.first_page", p.first_page, 0, 1)
    total = p.total or ("unknown" if p.total_pages else _TOTAL_DEFAULTS.get(p.style, "unknown"))
    if total == "content-range" and p.style != "range":
        raise ConfigError("content-range needs pagination.style: range", key="pagination.total")
    if total not in ("unknown", "content-range"):
        _check_source_spec(total, "pagination.total", "unknown")
    if p.total_pages is not None:
        if p.style != "page":
            raise ConfigError("needs pagination.style: page", key="pagination.total_pages")
        _check_source_spec(p.total_pages, "pagination.total_pages")
    names = ["offset_param", "limit_param", "range_unit", "page_param", "page_size_param"]
    for name in names + ["cursor_param"]:
        if not getattr(p, name):
            raise ConfigError("must not be empty", key=f"pagination.{name}")
    next_url = _check_chain_keys(p)
    if p.partition is not None:
        if p.style not in ("cursor", "link"):
            raise ConfigError("needs pagination.style cursor or link", key="pagination.partition")
        _check_partition(p.partition)
    return dataclasses.replace(p, total=total, next_url=next_url)


def _check_chain_keys(p: PaginationConfig) -> str | None:
    """The cursor and link keys: exactly one source of the next page. Returns next_url."""
    if p.style == "cursor":
        if (p.next_cursor is None) == (p.cursor_from_record is None):
            raise ConfigError(
                "style cursor needs exactly one of next_cursor or cursor_from_record",
                key="pagination.next_cursor",
            )
        if p.next_cursor is not None:
            _check_source_spec(p.next_cursor, "pagination.next_cursor")
    elif p.next_cursor is not None or p.cursor_from_record is not None:
        name = "next_cursor" if p.next_cursor is not None else "cursor_from_record"
        raise ConfigError("needs pagination.style: cursor", key=f"pagination.{name}")
    if p.style != "link":
        if p.next_url is not None:
            raise ConfigError("needs pagination.style: link", key="pagination.next_url")
        return None
    next_url = p.next_url or "link-header"
    if next_url != "link-header":
        kind, _, path = next_url.partition(":")
        if kind != "body" or not path:
            raise ConfigError(
                f"must be body:<dotted.path> or link-header; got {next_url!r}",
                key="pagination.next_url",
            )
    return next_url


def _check_source_spec(spec: str, key: str, *extra: str) -> None:
    kind, _, arg = spec.partition(":")
    if kind not in ("body", "header") or not arg:
        others = "".join(f", {e}" for e in extra)
        content_range = ", content-range" if key == "pagination.total" else ""
        raise ConfigError(
            f"must be body:<dotted.path>, header:<Name> or header:<Name>.<dotted.path> (a "
            f"JSON-valued header){content_range}{others}; got {spec!r}",
            key=key,
        )


def _check_partition(part: PartitionConfig) -> None:
    key = "pagination.partition"
    for name in ("param_from", "param_to"):
        if not getattr(part, name):
            raise ConfigError("must not be empty", key=f"{key}.{name}")
    if part.key is not None and not part.key:
        raise ConfigError("must name a record field, or be left out", key=f"{key}.key")
    _at_least(f"{key}.parts", part.parts, 1, 10_000)
    start, end = part.start, part.end
    if isinstance(start, int) != isinstance(end, int):
        raise ConfigError("start and end must both be integers or both timestamps", key=key)
    if isinstance(start, str) and isinstance(end, str):
        start_at = parse_timestamp(start, f"{key}.start")
        end_at = parse_timestamp(end, f"{key}.end")
        span = (end_at - start_at).total_seconds()
    else:
        assert isinstance(start, int) and isinstance(end, int)
        span = end - start
    if span <= 0:
        raise ConfigError(f"must be after start ({start})", key=f"{key}.end")
    if span < part.parts:
        raise ConfigError(
            f"{part.parts} parts do not fit in a span of {span:g}", key=f"{key}.parts"
        )


def parse_timestamp(text: str, key: str) -> datetime.datetime:
    """An ISO-8601 timestamp with a time zone (a bare one is taken as UTC)."""
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"must be an integer or an ISO-8601 timestamp, got {text!r}", key=key
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment


def _check_retry(r: RetryConfig) -> None:
    _at_least("retry.max_attempts", r.max_attempts, 1, 1000)
    for name in ("initial_backoff", "max_backoff", "max_retry_after"):
        if getattr(r, name) < 0:
            raise ConfigError("must be >= 0", key=f"retry.{name}")
    for i, status in enumerate(r.statuses):
        if not 100 <= status <= 599:
            raise ConfigError(
                f"must be an HTTP status (100-599), got {status}", key=f"retry.statuses[{i}]"
            )
    if 401 in r.statuses:
        raise ConfigError(
            "401 is handled by the token manager, not retried blindly", key="retry.statuses"
        )


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"must be > 0, got {value}", key=key)


def _at_least(key: str, value: int, low: int, high: int | None = None) -> None:
    if value < low:
        raise ConfigError(f"must be >= {low}, got {value}", key=key)
    if high is not None and value > high:
        raise ConfigError(f"must be <= {high}, got {value}", key=key)
