"""The frozen config objects every stage trusts, and what a config puts at risk on purpose."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from harvester.config.coerce import _set_dotted
from harvester.config.masking import Secret, _masked, _masked_repr, _url_has_secret
from harvester.errors import carries_secret, redact_url
from harvester.secret_sources import config_secrets
from harvester.secrets import Secrets

AuthType = Literal["client_credentials", "bearer", "none"]
AuthMethod = Literal["client_secret_basic", "client_secret_post"]
PaginationStyle = Literal["offset", "range", "page", "cursor", "link"]
RepeatedPages = Literal["check", "allow"]
LongQuota = Literal["wait", "fail"]
OutputFormat = Literal["jsonl", "csv", "parquet"]
Compression = Literal["none", "gzip", "zstd"]
ExtraColumns = Literal["fail", "json"]
OnMissing = Literal["fail", "skip"]
OnMissingCursor = Literal["fail", "include"]
INDEXED_STYLES = ("offset", "range", "page")  # page i can be asked for without page i-1


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    url: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    records: str = ""
    timeout: float = 30.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    # Bounds against a hostile or broken server: see harvester/body.py and harvester/hosts.py.
    max_body_bytes: int = 256 * 1024 * 1024
    max_compression_ratio: int = 100
    allow_private_hosts: bool = False

    def __repr__(self) -> str:
        return _masked_repr(self)


@dataclass(frozen=True, kw_only=True)
class AuthConfig:
    type: AuthType = "client_credentials"
    token_url: str | None = None
    client_id: str | None = None
    client_secret: Secret | None = None
    scope: str | None = None
    auth_method: AuthMethod = "client_secret_basic"
    extra_params: dict[str, str] = field(default_factory=dict)
    refresh_margin: float = 30.0
    token: Secret | None = None
    allow_insecure_http: bool = False

    def __repr__(self) -> str:
        return _masked_repr(self)


@dataclass(frozen=True, kw_only=True)
class PartitionConfig:
    """Windows [from_k, to_k) of a numeric or time key, each paginated by its own cursor."""

    param_from: str
    param_to: str
    start: int | str
    end: int | str
    parts: int
    # The API's upper filter includes its bound (id_lte): [a, b) is sent as a..b-1 (integers)
    # or a..the last microsecond before b (timestamps).
    to_inclusive: bool = False
    # The record field the windows split on: each record's must fall inside its window.
    key: str | None = None


@dataclass(frozen=True, kw_only=True)
class PaginationConfig:
    style: PaginationStyle = "offset"
    page_size: int = 100
    offset_param: str = "offset"
    limit_param: str = "limit"
    start: int = 0
    # None until validated: then the style's default (body:total, content-range, unknown).
    total: str | None = None
    range_unit: str = "items"
    page_param: str = "page"
    page_size_param: str = "page_size"
    first_page: int = 1
    total_pages: str | None = None
    cursor_param: str = "cursor"
    next_cursor: str | None = None
    cursor_from_record: str | None = None
    # None until validated: then "link-header" for style link.
    next_url: str | None = None
    allow_cross_host: bool = False
    partition: PartitionConfig | None = None
    # "allow": consecutive pages holding the same records are data, not an API ignoring paging.
    repeated_pages: RepeatedPages = "check"

    @property
    def total_known(self) -> bool:
        """Whether the first answer tells how many pages there are."""
        return self.total != "unknown" or self.total_pages is not None


@dataclass(frozen=True, kw_only=True)
class ConcurrencyConfig:
    workers: int = 16
    max_buffered_pages: int = 64
    rate_limit: float | None = None  # requests per second across all workers
    burst: int = 1
    adaptive: bool = True
    # After SIGINT or SIGTERM, how long pages already in flight may take to finish.
    stop_grace: float = 5.0


@dataclass(frozen=True, kw_only=True)
class RetryConfig:
    max_attempts: int = 8
    initial_backoff: float = 0.5
    max_backoff: float = 60.0
    statuses: tuple[int, ...] = (408, 429, 500, 502, 503, 504)
    # A server asking us to come back later than this (a long quota, reset by the hour) is held
    # with every worker until then ("wait"), or fails the run at once ("fail").
    max_retry_after: float = 600.0
    on_long_quota: LongQuota = "wait"


@dataclass(frozen=True, kw_only=True)
class TlsConfig:
    verify: bool = True
    ca_bundle: str | None = None  # a PEM file; replaces the system's CAs

    def ssl_context(self) -> ssl.SSLContext:
        """The context every https request of the run uses (token and data alike)."""
        if self.verify:
            context = ssl.create_default_context(cafile=self.ca_bundle)
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        # As in aiohttp's own default contexts: its client speaks HTTP/1.1 and nothing else.
        context.set_alpn_protocols(["http/1.1"])
        return context


@dataclass(frozen=True, kw_only=True)
class OutputConfig:
    path: str
    # Seconds between checkpoints at most; one more is written when a run stops unfinished.
    checkpoint_every: float = 5.0
    # None: told by the path's suffix (harvester/config/output.py), else jsonl and none.
    format: OutputFormat | None = None
    compression: Compression | None = None
    columns: tuple[str, ...] | None = None  # CSV (and Parquet): the columns, in order
    extra_columns: ExtraColumns = "fail"  # a field outside the columns: fail, or into _extra
    max_records_per_file: int | None = None  # rotate into a folder of part files


@dataclass(frozen=True, kw_only=True)
class IncrementalConfig:
    """A record field that grows with each change (updated_at, id): each run asks only for the
    records at or after the value the last run stored, less `lookback`."""

    field: str  # the record field holding the cursor value (a dotted path)
    # The query parameter that carries the stored value; None: the URL, params or headers
    # hold the placeholder {incremental.start} instead.
    param: str | None = None
    initial: int | str  # where the first run starts: a number or an ISO 8601 time
    lookback: float = 0.0  # re-read this much before the stored value (seconds, or key units)
    primary_key: str | None = None  # de-duplicates what the lookback re-reads
    on_missing_cursor: OnMissingCursor = "fail"


@dataclass(frozen=True, kw_only=True)
class Config:
    """A whole harvest's settings, one frozen section per YAML section.

    load_config() and parse_config() return one validated; one built here by hand is validated
    by harvest() through the same checks. Its repr shows every secret as ***.
    """

    source: SourceConfig
    auth: AuthConfig = field(default_factory=lambda: AuthConfig(type="none"))
    pagination: PaginationConfig = field(default_factory=PaginationConfig)
    concurrency: ConcurrencyConfig = field(default_factory=ConcurrencyConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    output: OutputConfig
    # One resource of several (`resources:` in the YAML, harvester/config/resources.py): its
    # name, and for a child the parent resource whose every record starts one request chain.
    name: str | None = None
    parent: str | None = None
    include_from_parent: tuple[str, ...] = ()  # parent fields written as _<parent>_<field>
    on_missing: OnMissing = "fail"  # a child answering 404 for a parent: fail, or skip it
    incremental: IncrementalConfig | None = None

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
    if auth.type == "client_credentials" and auth.token_url is not None:
        found.append(("auth.token_url", auth.token_url, "the client secret"))
    if auth.type != "none":
        found.append(("source.url", source.url, "the access token"))
    elif any(map(carries_secret, [*source.headers, *source.params])) or _url_has_secret(source.url):
        found.append(("source.url", source.url, "a secret header or parameter"))
    return found


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
