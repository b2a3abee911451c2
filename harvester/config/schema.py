"""The frozen config objects every stage trusts, and what a config puts at risk on purpose."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from harvester.config.client_cert import load_client_cert
from harvester.config.coerce import _set_dotted
from harvester.config.masking import Secret, _masked, _masked_repr, _url_has_secret
from harvester.errors import carries_secret, redact_url
from harvester.secret_sources import config_secrets
from harvester.secrets import Secrets

AuthType = Literal["client_credentials", "bearer", "none"]
AuthMethod = Literal[
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "client_secret_jwt",
    "tls_client_auth",
]
SigningAlg = Literal["RS256", "PS256", "ES256", "EdDSA", "HS256"]
PaginationStyle = Literal["offset", "range", "page", "cursor", "link"]
RepeatedPages = Literal["check", "allow"]
LongQuota = Literal["wait", "fail"]
Scope = Literal["run", "shard"]
OutputFormat = Literal["jsonl", "csv", "parquet"]
Compression = Literal["none", "gzip", "zstd"]
ExtraColumns = Literal["fail", "json"]
OnMissing = Literal["fail", "skip"]
OnMissingCursor = Literal["fail", "include"]
INDEXED_STYLES = ("offset", "range", "page")  # page i can be asked for without page i-1


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    url: str
    """The collection's URL (http or https); may carry its own query string."""
    params: dict[str, str] = field(default_factory=dict)
    """Query parameters added to every data request."""
    headers: dict[str, str] = field(default_factory=dict)
    """Headers added to every data request (Accept: application/json is always sent)."""
    records: str = ""
    """Dotted path to the list of records in the body (items, data.rows); empty: the body itself is
    the list.
    """
    timeout: float = 30.0
    """Seconds one request may take, from connecting to the last byte of the body."""
    connect_timeout: float = 10.0
    """Seconds to establish a connection."""
    read_timeout: float = 30.0
    """Seconds without a byte from the server before a request fails (retried like any timeout)."""
    # Bounds against a hostile or broken server: see harvester/body.py and harvester/hosts.py.
    max_body_bytes: int = 256 * 1024 * 1024
    """The largest body read, after inflating; a larger one fails the page at once."""
    max_compression_ratio: int = 100
    """How far a compressed body may inflate once past 1 MiB; a compression bomb fails the page."""
    allow_private_hosts: bool = False
    """Let redirects and next links reach loopback, private or link-local addresses even when url
    is not in that kind of range.
    """
    proxy: str | None = None
    """The http:// proxy for data requests (http://user:password@host:port), or none for no proxy;
    left out: HTTP_PROXY, HTTPS_PROXY and NO_PROXY decide, as requests does.
    """
    local_address: str | None = None
    """The IP address this machine's connections leave from (data, token and proxy connections
    alike), e.g. one of several addresses, for an API that limits per client address; left out:
    the system chooses. Must be an address of this machine, of the target's family.
    """

    def __repr__(self) -> str:
        return _masked_repr(self)


@dataclass(frozen=True, kw_only=True)
class AuthConfig:
    type: AuthType = "client_credentials"
    """client_credentials (OAuth2), bearer (a static token) or none; none when the auth section is
    left out.
    """
    token_url: str | None = None
    """The OAuth2 token endpoint (client_credentials needs it, or issuer)."""
    issuer: str | None = None
    """Instead of token_url: the issuer whose discovery document (OpenID, then RFC 8414) names
    the token endpoint, asked before the first token request.
    """
    client_id: str | None = None
    """The OAuth2 client id (required for client_credentials)."""
    client_secret: Secret | None = None
    """The OAuth2 client secret (required for client_credentials); never logged. Use ${VAR} to keep
    it out of the file.
    """
    scope: str | None = None
    """Space-separated scopes to ask for."""
    auth_method: AuthMethod = "client_secret_basic"
    """client_secret_basic: HTTP Basic (RFC 6749 2.3.1); client_secret_post: id and secret in the
    form body; private_key_jwt, client_secret_jwt: a signed JWT assertion (RFC 7523 2.2);
    tls_client_auth: client_id in the form, the client certificate (tls.client_cert)
    authenticates (RFC 8705).
    """
    # private_key_jwt and client_secret_jwt (harvester/client_assertion.py).
    private_key: Secret | None = None
    """private_key_jwt: the PEM private key, as a file path or the PEM itself (${VAR}); never
    logged.
    """
    private_key_password: Secret | None = None
    """The password of an encrypted auth.private_key; never logged."""
    key_id: str | None = None
    """The kid header of the client assertion: which of the client's keys signed it."""
    signing_alg: SigningAlg | None = None
    """The assertion's algorithm: RS256 (default), PS256, ES256 or EdDSA for private_key_jwt;
    HS256, the only one, for client_secret_jwt.
    """
    assertion_audience: str | None = None
    """The assertion's aud claim; default auth.token_url (some providers want the issuer)."""
    # Token responses as they come (harvester/token_response.py).
    token_field: str = "access_token"
    """Dotted path to the access token in the token response (data.access_token); expires_in
    and token_type are looked for beside it, then at the top.
    """
    expires_at_field: str | None = None
    """Dotted path to the token's absolute expiry (epoch seconds or ISO 8601), for providers
    that send one instead of expires_in.
    """
    scheme: str | None = None
    """The scheme sent before the token; default the response's token_type (Bearer when absent);
    "" sends the token alone.
    """
    header: str = "Authorization"
    """The request header that carries the token (X-Auth-Token)."""
    extra_params: dict[str, str] = field(default_factory=dict)
    """More form fields for the token request (audience, resource, ...)."""
    refresh_margin: float = 30.0
    """Refresh the token this many seconds before expires_in runs out."""
    token: Secret | None = None
    """The token for type: bearer (e.g. ${API_TOKEN}); never logged."""
    allow_insecure_http: bool = False
    """Allow secrets over plain http to a host that is not loopback; a warning on every run."""
    proxy: str | None = None
    """The http:// proxy for token requests, or none for no proxy; left out: the environment decides
    for auth.token_url (HTTPS_PROXY, NO_PROXY).
    """

    def __repr__(self) -> str:
        return _masked_repr(self)


@dataclass(frozen=True, kw_only=True)
class PartitionConfig:
    """Windows [from_k, to_k) of a numeric or time key, each paginated by its own cursor."""

    param_from: str
    """The query parameter of the lower filter."""
    param_to: str
    """The query parameter of the upper filter."""
    start: int | str
    """The key range's start (included): an integer or an ISO-8601 timestamp."""
    end: int | str
    """The key range's end (excluded): an integer or an ISO-8601 timestamp."""
    parts: int
    """The number of windows (1 to 10,000)."""
    # The API's upper filter includes its bound (id_lte): [a, b) is sent as a..b-1 (integers)
    # or a..the last microsecond before b (timestamps).
    to_inclusive: bool = False
    """The upper filter includes its bound (id_lte)."""
    # The record field the windows split on: each record's must fall inside its window.
    key: str | None = None
    """The record field the windows split on: every record's value must lie in its window."""


@dataclass(frozen=True, kw_only=True)
class PaginationConfig:
    style: PaginationStyle = "offset"
    """offset, range, page, cursor or link."""
    page_size: int = 100
    """Records per request."""
    offset_param: str = "offset"
    """Offset style: the query parameter of the offset."""
    limit_param: str = "limit"
    """The query parameter of the page size (offset, cursor and link styles)."""
    start: int = 0
    """Offset and range styles: the first record's offset."""
    # None until validated: then the style's default (body:total, content-range, unknown).
    total: str | None = None
    """Where the first answer tells the number of records: body:<dotted.path>, header:<Name>,
    header:<Name>.<dotted.path>, content-range or unknown. Default: body:total (offset, page),
    content-range (range), unknown (cursor, link).
    """
    range_unit: str = "items"
    """Range style: the unit in Range: items=0-99."""
    page_param: str = "page"
    """Page style: the query parameter of the page number."""
    page_size_param: str = "page_size"
    """Page style: the query parameter of the page size."""
    first_page: int = 1
    """Page style: the number of the first page (0 or 1)."""
    total_pages: str | None = None
    """Page style: where the first answer tells the number of pages (body:<path>, header:<Name>),
    instead of total.
    """
    cursor_param: str = "cursor"
    """Cursor style: the query parameter the cursor is sent in."""
    next_cursor: str | None = None
    """Cursor style: where an answer gives the next cursor, body:<path> or header:<Name>."""
    cursor_from_record: str | None = None
    """Cursor style: instead, take the cursor from this field of the page's last record."""
    # None until validated: then "link-header" for style link.
    next_url: str | None = None
    """Link style: link-header (RFC 8288 Link rel=next, the default) or body:<path>."""
    allow_cross_host: bool = False
    """Link style: send the token to a next URL on another host."""
    partition: PartitionConfig | None = None
    """Cursor and link styles: parallel windows of a numeric or time key."""
    # "allow": consecutive pages holding the same records are data, not an API ignoring paging.
    repeated_pages: RepeatedPages = "check"
    """check: a page holding exactly the records of the page before it fails the run; allow: such
    pages are data.
    """

    @property
    def total_known(self) -> bool:
        """Whether the first answer tells how many pages there are."""
        return self.total != "unknown" or self.total_pages is not None


@dataclass(frozen=True, kw_only=True)
class ConcurrencyConfig:
    workers: int = 16
    """Most requests in flight at once (1 to 1000)."""
    max_buffered_pages: int = 64
    """The reorder window: page i is not started while i >= oldest unwritten page + this."""
    rate_limit: float | None = None
    """At most this many requests per second, data and token requests together; none: learned from
    the API.
    """
    burst: int = 1
    """Requests that may go back to back before rate_limit spaces them."""
    adaptive: bool = True
    """Adapt the number of requests in flight between 1 and workers (AIMD)."""
    # After SIGINT or SIGTERM, how long pages already in flight may take to finish.
    stop_grace: float = 5.0
    """After SIGINT or SIGTERM, seconds the pages in flight get to finish."""
    # --shard K/N: whether the API limits per client (one budget, split among the shards that
    # run at once) or per client address (each shard, from its own address, has the whole).
    scope: Scope = "run"
    """Across shards: run divides rate_limit and workers among --concurrent-shards; shard gives
    each shard the whole budget (an API that limits per client address or connection).
    """


@dataclass(frozen=True, kw_only=True)
class RetryConfig:
    max_attempts: int = 8
    """Attempts per request, the first included (1 to 1000)."""
    initial_backoff: float = 0.5
    """Seconds before the first retry; doubles each attempt."""
    max_backoff: float = 60.0
    """Cap of the exponential backoff, in seconds."""
    statuses: tuple[int, ...] = (408, 429, 500, 502, 503, 504)
    """HTTP statuses that are retried; 401 may not be listed (the token manager handles it)."""
    # A server asking us to come back later than this (a long quota, reset by the hour) is held
    # with every worker until then ("wait"), or fails the run at once ("fail").
    max_retry_after: float = 600.0
    """A Retry-After longer than this many seconds is a long quota, handled by on_long_quota."""
    on_long_quota: LongQuota = "wait"
    """wait: every worker is held until the quota resets; fail: the run fails at once."""


@dataclass(frozen=True, kw_only=True)
class TlsConfig:
    verify: bool = True
    """Check the server's certificate and host name; false checks nothing (a warning on every run).
    """
    ca_bundle: str | None = None
    """A PEM file of the CA certificates to trust instead of the system's."""
    client_cert: str | None = None
    """Mutual TLS: a PEM file of the client certificate (its chain may follow), relative to the
    config file's folder; sent on token and data requests alike.
    """
    client_key: str | None = None
    """Mutual TLS: the PEM file of the client certificate's private key; default: client_cert
    holds it too.
    """
    client_key_password: Secret | None = None
    """The password of an encrypted client_key; never logged."""

    def ssl_context(self) -> ssl.SSLContext:
        """The context every https request of the run uses (token and data alike)."""
        if self.verify:
            context = ssl.create_default_context(cafile=self.ca_bundle)
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert is not None:
            load_client_cert(context, self)
        # As in aiohttp's own default contexts: its client speaks HTTP/1.1 and nothing else.
        context.set_alpn_protocols(["http/1.1"])
        return context


@dataclass(frozen=True, kw_only=True)
class OutputConfig:
    path: str
    """The file to write (a folder with incremental); relative to the config file's folder. - is
    stdout.
    """
    # Seconds between checkpoints at most; one more is written when a run stops unfinished.
    checkpoint_every: float = 5.0
    """Seconds between checkpoints at most."""
    # None: told by the path's suffix (harvester/config/output.py), else jsonl and none.
    format: OutputFormat | None = None
    """jsonl, csv or parquet; default: told by the path's suffix, else jsonl."""
    compression: Compression | None = None
    """none, gzip or zstd; default: told by the path's suffix, else none."""
    columns: tuple[str, ...] | None = None
    """CSV and Parquet: the columns, in order (dotted names for nested fields); default: from the
    first page.
    """
    extra_columns: ExtraColumns = "fail"
    """CSV: a field outside the columns fails the run (fail), or goes into one _extra column as
    JSON (json).
    """
    max_records_per_file: int | None = None
    """Rotate into a folder of part files of at most this many records (Parquet)."""


@dataclass(frozen=True, kw_only=True)
class IncrementalConfig:
    """A record field that grows with each change (updated_at, id): each run asks only for the
    records at or after the value the last run stored, less `lookback`."""

    field: str
    """The record field holding the cursor value (a dotted path), e.g. updated_at."""
    # The query parameter that carries the stored value; None: the URL, params or headers
    # hold the placeholder {incremental.start} instead.
    param: str | None = None
    """The query parameter that carries the stored value; leave out to use the {incremental.start}
    placeholder.
    """
    initial: int | str
    """Where the first run starts: a number or an ISO-8601 time."""
    lookback: float = 0.0
    """Re-read this much before the stored value each run (seconds, or key units)."""
    primary_key: str | None = None
    """The record field that de-duplicates what the lookback re-reads."""
    on_missing_cursor: OnMissingCursor = "fail"
    """A record without the cursor field: fail (naming its position) or include it."""


@dataclass(frozen=True, kw_only=True)
class Config:
    """A whole harvest's settings, one frozen section per YAML section.

    load_config() and parse_config() return one validated; one built here by hand is validated
    by harvest() through the same checks. Its repr shows every secret as ***.
    """

    source: SourceConfig
    """The API endpoint to harvest: URL, query parameters, headers, where the records are."""
    auth: AuthConfig = field(default_factory=lambda: AuthConfig(type="none"))
    """How requests are authenticated; left out: no authentication."""
    pagination: PaginationConfig = field(default_factory=PaginationConfig)
    """How the pages are asked for and where the dataset ends."""
    concurrency: ConcurrencyConfig = field(default_factory=ConcurrencyConfig)
    """Workers, the reorder window and the request rate."""
    retry: RetryConfig = field(default_factory=RetryConfig)
    """Which failures are retried, and how long to wait."""
    tls: TlsConfig = field(default_factory=TlsConfig)
    """Certificate checking for https."""
    output: OutputConfig
    """Where and how the records are written."""
    # One resource of several (`resources:` in the YAML, harvester/config/resources.py): its
    # name, and for a child the parent resource whose every record starts one request chain.
    name: str | None = None
    """The resource's name (letters, digits, _ and -), unique in the document."""
    parent: str | None = None
    """A child resource: the parent resource whose every record starts one request chain
    ({parent.field} placeholders).
    """
    include_from_parent: tuple[str, ...] = ()
    """Parent fields written into each child record as _<parent>_<field>."""
    on_missing: OnMissing = "fail"
    """A child answering 404 for a parent: fail (default) or skip that parent."""
    incremental: IncrementalConfig | None = None
    """Incremental runs: each run asks only for what is new or changed since the last."""

    def secrets(self) -> list[str]:
        """The secret values in this config (see `named_secrets`)."""
        return list(self.named_secrets().values())

    def named_secrets(self) -> dict[str, str]:
        """{key path: secret value} for the run's registry (harvester.secret_sources)."""
        return config_secrets(self)

    def masked(self) -> dict[str, Any]:
        """This config as plain data (for --print-config), every secret in it shown as ***."""
        data: dict[str, Any] = _masked(self, Secrets(self.secrets()).mask)
        # Checked with a stand-in for an unset ${VAR} (loading.parse_config): shown as written.
        for key, text in getattr(self, "_as_written", {}).items():
            _set_dotted(data, key, text)
        return data

    def warnings(self) -> list[str]:
        """What this config puts at risk on purpose; to be said on every run."""
        found = []
        if not self.tls.verify:
            found.append(
                "tls.verify is false: TLS certificates are not checked, so anyone on the "
                "network path can pose as the API and read the credentials"
            )
        for key, url, what in _secret_destinations(self):
            if self.auth.allow_insecure_http and _insecure(url):
                found.append(
                    f"auth.allow_insecure_http is true: {what} goes over plain http to "
                    f"{redact_url(url)} ({key})"
                )
        return found


def _secret_destinations(config: Config) -> list[tuple[str, str, str]]:
    """(key, URL, what) for every URL a secret is sent to: the token endpoint and the API."""
    auth, source = config.auth, config.source
    found = []
    sent = _token_request_secret(auth.auth_method)
    if auth.type == "client_credentials" and auth.token_url is not None:
        found.append(("auth.token_url", auth.token_url, sent))
    if auth.type == "client_credentials" and auth.issuer is not None:  # names where it goes
        found.append(("auth.issuer", auth.issuer, sent))
    if auth.type != "none":
        found.append(("source.url", source.url, "the access token"))
    elif any(map(carries_secret, [*source.headers, *source.params])) or _url_has_secret(source.url):
        found.append(("source.url", source.url, "a secret header or parameter"))
    return found


def _token_request_secret(auth_method: str) -> str:
    """What a token request sends that an eavesdropper could use, by client auth method."""
    if auth_method.endswith("_jwt"):
        return "a signed client assertion (usable by whoever reads it until it expires)"
    if auth_method == "tls_client_auth":
        return "the access token, in the token endpoint's answer,"
    return "the client secret"


def _insecure(url: str) -> bool:
    """Whether `url` is plain http to a host other than this machine (loopback)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = (parts.hostname or "").rstrip(".")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve anywhere
        return True
