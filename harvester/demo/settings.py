"""What the demo API does: DemoSettings, checked once when made."""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any, Literal, get_args

from yarl import URL

from .discovery import AUTH_METHODS, DISCOVERY_DOCUMENTS, DiscoveryDocument
from .mtls import CLIENT_CERT_REQUIRED, ClientCertRequired

# The headers that describe the rate limit on data answers; harvester.demo.ratelimit has each.
RateLimitHeaders = Literal["none", "x", "ietf", "both"]
RATE_LIMIT_HEADERS: tuple[RateLimitHeaders, ...] = get_args(RateLimitHeaders)
# Where /items tells the total, /cursor the next cursor and /link the next URL (totals_in,
# next_cursor_in, next_link_in): the body, a header, or both as by default.
Carrier = Literal["both", "body", "header"]
CARRIERS: tuple[Carrier, ...] = get_args(Carrier)
DEFAULT_CHARSET = "utf-8"


@dataclass(kw_only=True)
class DemoSettings:
    """Switches for the demo API.

    Mutable on purpose: the server reads them on every request, so a test can turn faults on
    and off mid-run through `DemoServer.settings`.
    """

    records: int = 20_000
    client_id: str = "demo"
    client_secret: str = "demo-secret"
    scopes: tuple[str, ...] = ("read",)
    token_lifetime: float = 3600.0
    expires_in_as_string: bool = False
    omit_expires_in: bool = False
    # JWT client assertions (harvester.demo.assertions): private_key_jwt verified against the
    # public keys of assertion_jwks (a JWKS the test supplies), client_secret_jwt (HS256 with
    # client_secret) when secret_assertions; aud must be the token endpoint's URL, or
    # assertion_audience; exp and iat hold within assertion_leeway seconds of a server clock
    # assertion_clock_offset seconds ahead. token_failures: the first N token requests answer
    # 503 after their assertion's jti is spent, as a provider failing midway would.
    assertion_jwks: dict[str, Any] | None = None
    secret_assertions: bool = False
    assertion_audience: str | None = None
    assertion_leeway: float = 5.0
    assertion_clock_offset: float = 0.0
    token_failures: int = 0
    # Token responses in other shapes (harvester.demo.token_shapes): the token at the dotted
    # token_field, an absolute expires_at (epoch or iso) beside it, token_type as given; data
    # requests carry the token in token_header after token_scheme (None: token_type).
    token_field: str = "access_token"
    expires_at: Literal["none", "epoch", "iso"] = "none"
    token_type: str = "Bearer"
    token_header: str = "Authorization"
    token_scheme: str | None = None
    latency: float = 0.0
    token_latency: float = 0.0
    max_page_size: int = 1000
    rate_limit: float | None = None
    # One bucket of rate_limit per client source address instead of one for all: an API that
    # limits per address, which clients bound to distinct addresses (shards) each get whole.
    rate_limit_per_address: bool = False
    rate_limit_headers: RateLimitHeaders = "none"
    # rate_limit_queue: up to N requests over the rate wait their turn, answered at the rate's
    # pace, as nginx's limit_req burst=N without nodelay (harvester.demo.queue); 0: refused at
    # once. rate_limit_status: the limiter's refusals, 429 or nginx's 503, in either mode.
    rate_limit_queue: int = 0
    rate_limit_status: int = 429
    # False: the limiter's refusals carry no Retry-After (the `limits` library's strategies
    # behind a framework that sends none); harvester's retry of such a page once held the
    # ordered output back (issue 10, stop 36).
    rate_limit_retry_after: bool = True
    retry_after: float | None = None
    fault_rate: float = 0.0
    # The statuses a 5xx fault answers with, one at random. 503 is also how nginx's limit_req
    # refuses, and harvester slows down for it: leave it out to inject plain failures.
    fault_statuses: tuple[int, ...] = (500, 502, 503)
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    throttle_rate: float = 0.0
    revoke_tokens_after: int | None = None
    ignore_range: bool = False
    seed: int = 0
    # Traps for clients' loop and host protections, on /cursor and /link only.
    loop_cursor_at: int | None = None
    cross_host_next: str | None = None
    # Fault-suite switches. slow_rate: a share of data requests answered only after slow_seconds,
    # meant to be longer than the client waits. cut_rate: a share whose answer stops halfway
    # through the body, the connection closed short of its Content-Length. storm_at: from data
    # request N on, every data request gets 429 for storm_seconds (Retry-After: retry_after, or
    # the seconds the storm has left). A burst of 401s is revoke_tokens_after.
    slow_rate: float = 0.0
    slow_seconds: float = 5.0
    cut_rate: float = 0.0
    storm_at: int | None = None
    storm_seconds: float = 1.0
    # Real servers' ways (harvester.demo.quirks). inclusive_filters: /cursor and /link filter ids
    # by id_gte/id_lte, both inclusive, and refuse id_from/id_to. json_meta_header: /items and
    # /pages tell the total only in a JSON-valued X-Pagination header. range_echo: a Range past
    # the end is answered with the requested span in Content-Range; range_empty_past_end: one
    # that starts past the end gets 206 [] instead of 416; range_no_total: Content-Range's total
    # is "*". empty_pages_every: every K-th page of a /cursor or /link chain is empty and still
    # carries the next cursor or link. repeat_last_past_end: /pages and /stream answer past the
    # end with the last page again. short_page_at: the /items, /stream or /pages page whose first
    # record is at offset N holds only half the records asked for, at least one (a server bug).
    inclusive_filters: bool = False
    json_meta_header: bool = False
    range_echo: bool = False
    range_empty_past_end: bool = False
    range_no_total: bool = False
    empty_pages_every: int | None = None
    repeat_last_past_end: bool = False
    short_page_at: int | None = None
    # Where each family tells how the data goes on, so that a client (harvester init) can be shown
    # to find each on its own. totals_in: /items's total in the body ("total"), in X-Total-Count,
    # or both. next_cursor_in: /cursor's next cursor in the body (next_cursor), in X-Next-Cursor,
    # or both. next_link_in: /link's next URL in the body (next, previous) or the Link header.
    totals_in: Carrier = "both"
    next_cursor_in: Carrier = "both"
    next_link_in: Carrier = "both"
    # opaque_links: /link's links carry the position as an opaque token (?after=...), as Django
    # REST framework's CursorPagination does, instead of ?offset= a client could compute.
    opaque_links: bool = False
    # /users and /users/{id}/orders (harvester.demo.users): how many users; each user's orders
    # (0..orders_max, spread, or orders_fixed each); every K-th user answering 404.
    users: int = 1000
    orders_max: int = 25
    orders_fixed: int | None = None
    missing_users_every: int | None = None
    # /changes (harvester.demo.changes): the generation served now, and per generation the
    # records added and the older records updated. POST /admin/next-generation advances it.
    changes_generation: int = 0
    changes_added: int = 100
    changes_updated: int = 40

    # Bad-input traps. On /items only: the page starting at offset N answers 200 with plain text
    # (garbage_at), with an HTML login page (html_at), or with the records of the page before it
    # (repeat_page_at: an API that ignores the offset); from data request K on (grow_at) the
    # dataset has grow_by records more (fewer if negative), so `total` changes mid-run.
    # A scope the client may not ask for is refused with scope_refusal_status: 400 invalid_scope
    # as RFC 6749 says, or 403 as some providers answer.
    garbage_at: int | None = None
    html_at: int | None = None
    repeat_page_at: int | None = None
    grow_at: int | None = None
    grow_by: int = 0
    scope_refusal_status: int = 400
    # How answers are written (harvester.demo.encodings). exact_numbers: every record also holds
    # numbers a double cannot hold (beyond 64 bits, 22 significant digits, 1e400, -1.5E-400),
    # written as text. charset: the body's charset, named in Content-Type when not utf-8.
    # bom: the body begins with the UTF-8 byte order mark. With either of the last two, every
    # record also holds a "label" with a non-ASCII letter.
    exact_numbers: bool = False
    charset: str = DEFAULT_CHARSET
    bom: bool = False
    # Mutual TLS and discovery (harvester.demo.mtls, harvester.demo.discovery). Served over https
    # with a context that asks for a client certificate, client_cert_required says where one
    # must come (token endpoint, data endpoints, both); the token endpoint also takes
    # tls_client_auth (client_id in the form, the certificate's common name the same). The
    # issuer is the base URL + issuer_path (e.g. /tenant); discovery_documents are served,
    # naming the token endpoint unless discovery_token_endpoint is false, and listing
    # advertised_auth_methods (None: no list).
    client_cert_required: ClientCertRequired = "none"
    issuer_path: str = ""
    discovery_documents: tuple[DiscoveryDocument, ...] = DISCOVERY_DOCUMENTS
    discovery_token_endpoint: bool = True
    advertised_auth_methods: tuple[str, ...] | None = AUTH_METHODS

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        if not self.fault_statuses or any(not 500 <= s <= 599 for s in self.fault_statuses):
            raise ValueError(f"fault_statuses: must be 5xx statuses, got {self.fault_statuses}")
        rates = {
            "fault_rate": self.fault_rate,
            "drop_rate": self.drop_rate,
            "truncate_rate": self.truncate_rate,
            "throttle_rate": self.throttle_rate,
            "slow_rate": self.slow_rate,
            "cut_rate": self.cut_rate,
        }
        for name, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name}: must be between 0 and 1, got {rate}")
        if sum(rates.values()) > 1.0:
            raise ValueError(f"{' + '.join(rates)}: must be <= 1")
        minimums: dict[str, tuple[float | None, float]] = {
            "records": (self.records, 0),
            "max_page_size": (self.max_page_size, 1),
            "latency": (self.latency, 0),
            "token_latency": (self.token_latency, 0),
            "token_lifetime": (self.token_lifetime, 0),
            "assertion_leeway": (self.assertion_leeway, 0),
            "token_failures": (self.token_failures, 0),
            "retry_after": (self.retry_after, 0),
            "revoke_tokens_after": (self.revoke_tokens_after, 1),
            "loop_cursor_at": (self.loop_cursor_at, 0),
            "garbage_at": (self.garbage_at, 0),
            "html_at": (self.html_at, 0),
            "repeat_page_at": (self.repeat_page_at, 1),
            "grow_at": (self.grow_at, 1),
            "slow_seconds": (self.slow_seconds, 0),
            "storm_at": (self.storm_at, 1),
            "storm_seconds": (self.storm_seconds, 0),
            # 1 would make every page empty: a chain that never ends.
            "empty_pages_every": (self.empty_pages_every, 2),
            "short_page_at": (self.short_page_at, 0),
            "changes_generation": (self.changes_generation, 0),
            "changes_added": (self.changes_added, 0),
            "changes_updated": (self.changes_updated, 0),
            "rate_limit_queue": (self.rate_limit_queue, 0),
        }
        for name, (value, least) in minimums.items():
            if value is not None and value < least:
                raise ValueError(f"{name}: must be >= {least}, got {value}")
        _check_rate_limit(self)
        for name, carrier in (
            ("totals_in", self.totals_in),
            ("next_cursor_in", self.next_cursor_in),
            ("next_link_in", self.next_link_in),
        ):
            if carrier not in CARRIERS:
                raise ValueError(f"{name}: must be one of {', '.join(CARRIERS)}, got {carrier!r}")
        if self.json_meta_header and self.totals_in != "both":
            raise ValueError(
                f"totals_in: json_meta_header already puts the total only in X-Pagination; "
                f"leave totals_in at both, got {self.totals_in!r}"
            )
        if self.scope_refusal_status not in (400, 403):
            raise ValueError(
                f"scope_refusal_status: must be 400 or 403, got {self.scope_refusal_status!r}"
            )
        _check_charset(self.charset, bom=self.bom)
        _check_mtls_discovery(self)
        if self.cross_host_next is not None and not _is_base_url(self.cross_host_next):
            raise ValueError(
                f"cross_host_next: must be an http(s) URL like http://127.0.0.2:8765, "
                f"got {self.cross_host_next!r}"
            )


def _check_rate_limit(s: DemoSettings) -> None:
    if s.rate_limit is not None and s.rate_limit <= 0:
        raise ValueError(f"rate_limit: must be > 0, got {s.rate_limit}")
    if s.rate_limit_headers not in RATE_LIMIT_HEADERS:
        raise ValueError(
            f"rate_limit_headers: must be one of {', '.join(RATE_LIMIT_HEADERS)}, "
            f"got {s.rate_limit_headers!r}"
        )
    if s.rate_limit_status not in (429, 503):
        raise ValueError(f"rate_limit_status: must be 429 or 503, got {s.rate_limit_status!r}")
    if s.rate_limit_queue and s.rate_limit is None:
        raise ValueError("rate_limit_queue: queues requests over rate_limit; set rate_limit too")
    if s.rate_limit_queue and s.rate_limit_headers != "none":
        raise ValueError(
            f"rate_limit_headers: a queue sends none, as nginx's limit_req; leave it at none "
            f"with rate_limit_queue, got {s.rate_limit_headers!r}"
        )


def _check_mtls_discovery(s: DemoSettings) -> None:
    if s.client_cert_required not in CLIENT_CERT_REQUIRED:
        raise ValueError(
            f"client_cert_required: must be one of {', '.join(CLIENT_CERT_REQUIRED)}, "
            f"got {s.client_cert_required!r}"
        )
    if s.issuer_path and (not s.issuer_path.startswith("/") or s.issuer_path.endswith("/")):
        raise ValueError(f"issuer_path: must be like /tenant, got {s.issuer_path!r}")
    unknown = set(s.discovery_documents) - set(DISCOVERY_DOCUMENTS)
    if unknown:
        raise ValueError(f"discovery_documents: unknown {', '.join(sorted(unknown))}")


def _check_charset(charset: str, *, bom: bool) -> None:
    try:
        name = codecs.lookup(charset).name
        "é".encode(charset)
    except (LookupError, UnicodeEncodeError):
        raise ValueError(f"charset: must be one that can write 'é', got {charset!r}") from None
    if bom and name != "utf-8":
        raise ValueError(f"bom: the UTF-8 byte order mark goes with charset utf-8, got {charset!r}")


def _is_base_url(text: str) -> bool:
    try:
        url = URL(text)
    except ValueError:
        return False
    return (
        url.scheme in ("http", "https")
        and bool(url.host)
        and not (url.query_string or url.fragment)
    )
