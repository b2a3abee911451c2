"""One ClientSession, and one page fetched: token, throttle, retries, what its status means."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aiohttp
from yarl import URL

from harvester.auth import Token, TokenManager
from harvester.body import BodyRefused, read_body
from harvester.budget import RateBudget, TokenSource
from harvester.config import Config
from harvester.errors import AuthError, PageFetchError, carries_secret, excerpt, redact_url
from harvester.give_up import give_up
from harvester.hosts import CheckingResolver, HostPolicy
from harvester.mtls import CERT_WANTED, wants_client_cert
from harvester.page_reader import Fetched, PageReader
from harvester.pagination import PageRequest, Planner
from harvester.proxies import Proxies, proxy_urls
from harvester.ratelimit import Throttle
from harvester.redirects import Redirects
from harvester.retry import InvalidBody, RetryableStatus, RetryPolicy, refused, retry_cause
from harvester.secrets import Secrets
from harvester.sink import Page
from harvester.stats import Stats

# Fetched is made in page_reader.py; its users import it from here, with the Fetcher.
__all__ = ["Fetched", "Fetcher", "make_fetcher", "open_session"]

log = logging.getLogger("harvester")


def open_session(config: Config, *, also: Sequence[str] = ()) -> aiohttp.ClientSession:
    """The run's one ClientSession, its connection pool sized to the workers (+1 for tokens).

    Its TLS context (tls.verify, tls.ca_bundle) serves token and data requests alike. aiohttp's
    own limits on an answer's head stand: a status or header line of at most 8190 bytes, at most
    128 headers (see give_up.py for how an answer past them fails). `also`: the URLs of the
    other resources sharing the session, trusted like the source. Its connections leave from
    source.local_address, if set.
    """
    # The host policy again at connect time, on the addresses connected to (see hosts.py).
    hosts = HostPolicy(
        config.source.url,
        allow_private=config.source.allow_private_hosts,
        # The proxies are the operator's too, and the only hosts connected to through them.
        trusted=[*also, *(url for url in (config.auth.token_url, config.auth.issuer) if url)]
        + proxy_urls(config),
    )
    local = config.source.local_address
    connector = aiohttp.TCPConnector(
        limit=config.concurrency.workers + 1,
        limit_per_host=0,
        ssl=config.tls.ssl_context(),
        resolver=CheckingResolver(hosts),
        # Every connection of the session, to a proxy too: the address an API limits on.
        local_addr=(local, 0) if local is not None else None,
    )
    timeout = aiohttp.ClientTimeout(
        total=config.source.timeout,
        sock_connect=config.source.connect_timeout,
        # A stalled server fails after read_timeout; one trickling bytes slower than that is
        # still cut off by the total timeout, and each page's retries are retry.max_attempts.
        sock_read=config.source.read_timeout,
    )
    return aiohttp.ClientSession(connector=connector, timeout=timeout, raise_for_status=False)


def make_fetcher(
    config: Config,
    session: aiohttp.ClientSession,
    policy: RetryPolicy,
    stats: Stats,
    *,
    secrets: Secrets | None = None,
    throttle: Throttle | None = None,
    source: TokenSource | None = None,
    budget: RateBudget | None = None,
    share: float = 1.0,
) -> Fetcher:
    """The run's Fetcher, with the one Throttle and TokenManager its workers share.

    `secrets`, the run's registry, learns each token as it is issued. `throttle`, if given,
    replaces the one the config describes (tune measures with one that holds nothing back).
    `source` and `budget` (budget.py): the token and the rate shared with other processes;
    `share`: this process's part of the limits the API states (Throttle).
    """
    throttle = throttle or make_throttle(config, stats, budget=budget, share=share)
    tokens = make_tokens(
        config, session, policy, stats, secrets=secrets, throttle=throttle, source=source
    )
    return Fetcher(config, session, tokens, policy, stats, throttle)


def make_throttle(
    config: Config, stats: Stats, *, budget: RateBudget | None = None, share: float = 1.0
) -> Throttle:
    """The Throttle `config` describes: rate, cool-downs, concurrency (workers); its slots
    leased from `budget` where one is shared."""
    return Throttle(
        config.concurrency,
        stats,
        max_pause=config.retry.max_retry_after,
        hold_long=config.retry.on_long_quota == "wait",
        budget=budget,
        share=share,
    )


def make_tokens(
    config: Config,
    session: aiohttp.ClientSession,
    policy: RetryPolicy,
    stats: Stats,
    *,
    secrets: Secrets | None,
    throttle: Throttle,
    source: TokenSource | None = None,
) -> TokenManager:
    """The TokenManager `config.auth` describes, its requests through `throttle`; its tokens
    from `source` where one is shared."""
    return TokenManager(
        config.auth,
        session,
        policy,
        stats,
        timeout=session.timeout,
        secrets=secrets,
        throttle=throttle,
        source=source,
    )


# The DEBUG line of each answered data request; harvester init shows these as they come.
ANSWERED = "page %d: %s answered %d"

# Each expired or revoked token costs one refresh; more in a row for one page means a loop.
_MAX_REFRESHES_PER_PAGE = 5


class _Unauthorized(Exception):
    def __init__(self, token: Token | None) -> None:
        super().__init__("401")
        self.token = token


class Fetcher:
    """Fetches one page: token, request, retries, records; raises HarvesterError on failure."""

    def __init__(
        self,
        config: Config,
        session: aiohttp.ClientSession,
        tokens: TokenManager,
        policy: RetryPolicy,
        stats: Stats,
        throttle: Throttle | None = None,
    ) -> None:
        self._source = config.source
        self._throttle = throttle or Throttle(config.concurrency, stats)
        self._tokens = tokens
        self._policy = policy
        self._stats = stats
        self._url = URL(config.source.url)
        hosts = HostPolicy(config.source.url, allow_private=config.source.allow_private_hosts)
        self._redirects = Redirects(
            session,
            hosts,
            Proxies(config.source.proxy, key="source.proxy"),
            token_header=config.auth.header,
        )
        self._reader = PageReader(config, tokens)
        self._headers = {"Accept": "application/json", **config.source.headers}

    @property
    def tokens(self) -> TokenManager:
        return self._tokens

    def url_for(self, request: PageRequest) -> URL:
        if request.url is not None:  # a next link: as the server wrote it
            return URL(request.url, encoded=True)
        return self._url.update_query({**self._source.params, **request.params})

    async def fetch(self, planner: Planner, request: PageRequest) -> Fetched:
        """The page for `request`, after as many retries and token refreshes as it takes."""
        rejected: Token | None = None
        url = self.url_for(request)
        for refreshes in range(_MAX_REFRESHES_PER_PAGE):
            try:
                # Fetched again after a 401: a retry, which goes first as any other (turn.py).
                return await self._with_retries(planner, request, url, again=refreshes > 0)
            except _Unauthorized as exc:
                self._stats.count_retry("401")
                # A token issued after this page's own 401, and never accepted by the API since,
                # is a fresh token refused: the credentials lack access. A token the API did
                # accept has merely expired (or was revoked) by now: refresh again.
                token = exc.token
                if (
                    rejected is not None
                    and token is not None
                    and token.generation > rejected.generation
                    and not self._tokens.was_accepted(token)
                ):
                    raise AuthError(
                        "the API refused a freshly issued token", url=str(url), status=401
                    ) from None
                rejected = token
                await self._tokens.after_unauthorized(token, url=str(url))
        raise AuthError(
            f"the API refused {_MAX_REFRESHES_PER_PAGE} tokens in a row", url=str(url), status=401
        )

    async def _with_retries(
        self, planner: Planner, request: PageRequest, url: URL, *, again: bool = False
    ) -> Fetched:
        """`again`: the page was fetched before (refused a token), so even its first attempt
        here is a retry."""

        def count_retry(exc: BaseException, wait: float) -> None:
            cause = retry_cause(exc) or type(exc).__name__
            self._stats.count_retry(cause)
            log.debug("page %d: %s, retried in %.2f s", request.index, cause, wait)

        try:
            # A refusal is held by the throttle's cool-down, and the retry goes first (turn.py).
            async for attempt in self._policy.retrying(on_retry=count_retry, held=True):
                with attempt:
                    retried = again or attempt.retry_state.attempt_number > 1
                    return await self._once(planner, request, url, again=retried)
        except (RetryableStatus, InvalidBody, aiohttp.ClientError, TimeoutError) as exc:
            give_up(request, url, exc, self._policy, self._source)
        raise AssertionError("tenacity neither returned nor raised")  # pragma: no cover

    async def _once(
        self, planner: Planner, request: PageRequest, url: URL, *, again: bool = False
    ) -> Fetched:
        # The token first: a worker that waited for a token refresh must still pass the
        # cool-down and the rate afterwards, not find itself already past them. And once more
        # after them: a long cool-down or a slow rate may outlast the token, and a token sent
        # expired, if new and never accepted yet, would pass for one the API refuses.
        if request.send_token:
            await self._tokens.current()
        async with self._throttle.request(again=again) as ticket:
            token = await self._tokens.current() if request.send_token else None
            ticket.sending()  # a token refresh may have taken a while: the API's time starts now
            if token is not None and request.url is not None:
                # A next link that carries a token (Graph-API style) carries the one of its
                # moment; send the current one (a resumed link holds a stand-in for it).
                url = URL(
                    self._tokens.secrets.current_token_in(str(url), token.value), encoded=True
                )
            headers = {**self._headers, **request.headers}
            if not request.send_token:  # a next link to another host: no secret goes there
                headers = {k: v for k, v in headers.items() if not carries_secret(k)}
            if token is not None:
                headers.update(token.header())
            self._stats.requests += 1
            shown_url = redact_url(str(url)) if log.isEnabledFor(logging.DEBUG) else ""
            async with self._redirects.get(request, url, headers) as (response, crossed):
                self._stats.statuses[response.status] += 1
                log.debug(ANSWERED, request.index, shown_url, response.status)
                ticket.observe(response.status, response.headers)
                if crossed and response.status == 401:
                    raise AuthError(
                        f"redirected to {redact_url(str(response.url))}, on another origin, "
                        "which answered 401: the token is not sent across origins",
                        url=str(url),
                        status=401,
                    )
                return await self._answer(planner, request, url, token, response)

    async def _answer(
        self,
        planner: Planner,
        request: PageRequest,
        url: URL,
        token: Token | None,
        response: aiohttp.ClientResponse,
    ) -> Fetched:
        status = response.status
        if status == 401:
            if not request.send_token:
                raise AuthError(
                    "a next link on another host answered 401: the token is only sent there "
                    "with pagination.allow_cross_host: true",
                    url=str(url),
                    status=401,
                )
            raise _Unauthorized(token)
        if token is not None and (200 <= status < 300 or status in (404, 416)):
            self._tokens.accepted(token)
        if planner.is_past_end(status, request):
            total, _ = self._reader.totals(None, response.headers, strict=False)
            return Fetched(Page(request.index, b"", 0), total=total, complete=True)
        try:
            body = await read_body(
                response,
                max_bytes=self._source.max_body_bytes,
                max_ratio=self._source.max_compression_ratio,
            )
        except BodyRefused as exc:
            refusal = str(exc)
            raise PageFetchError(refusal, page=request.index, url=str(url), status=status) from None
        # Error bodies below go through tokens.scrub first: some APIs echo the token they got.
        if status in self._policy.config.statuses:
            raise refused(status, response.headers, self._tokens.scrub(body))
        if not 200 <= status < 300:
            shown = excerpt(self._tokens.scrub(body))
            wanted = wants_client_cert(status, None, shown)  # mutual TLS: say which keys
            raise PageFetchError(
                CERT_WANTED if wanted else "unexpected status",
                page=request.index,
                url=str(url),
                status=status,
                body=shown,
            )
        # After a redirect, a relative next link is relative to where the answer came from.
        return self._reader.parse(planner, request, response.url, status, response.headers, body)
