"""One ClientSession, one page fetch with retries and token handling, and the worker pool."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, NoReturn

import aiohttp
from yarl import URL

from harvester.auth import Token, TokenManager
from harvester.body import BodyRefused, read_body
from harvester.chains import ChainPlanner
from harvester.config import Config
from harvester.errors import (
    AuthError,
    PageFetchError,
    RecordsError,
    carries_secret,
    excerpt,
    redact_url,
)
from harvester.hosts import CheckingResolver, HostPolicy, HostRefused
from harvester.pagination import (
    Answer,
    IndexedPlanner,
    MissingPath,
    PageRequest,
    PlanError,
    Planner,
    extract_records,
    read_total,
)
from harvester.ratelimit import Throttle
from harvester.read import NotJSON, collector_paused, cut_short, decode_json, encode_records
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
from harvester.sink import OrderedSink, Page
from harvester.stats import Stats
from harvester.stop import Stop

log = logging.getLogger("harvester")


def open_session(config: Config) -> aiohttp.ClientSession:
    """The run's one ClientSession, its connection pool sized to the workers (+1 for tokens).

    Its TLS context (tls.verify, tls.ca_bundle) serves token and data requests alike. aiohttp's
    own limits on an answer's head stand: a status or header line of at most 8190 bytes, at most
    128 headers (see _give_up for how an answer past them fails).
    """
    # The host policy again at connect time, on the addresses connected to (see hosts.py).
    hosts = HostPolicy(
        config.source.url,
        allow_private=config.source.allow_private_hosts,
        trusted=[config.auth.token_url] if config.auth.token_url else [],
    )
    connector = aiohttp.TCPConnector(
        limit=config.concurrency.workers + 1,
        limit_per_host=0,
        ssl=config.tls.ssl_context(),
        resolver=CheckingResolver(hosts),
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
) -> Fetcher:
    """The run's Fetcher, with the one Throttle and TokenManager its workers share.

    `secrets`, the run's registry, learns each token as it is issued. `throttle`, if given,
    replaces the one the config describes (tune measures with one that holds nothing back).
    """
    throttle = throttle or Throttle(
        config.concurrency,
        stats,
        max_pause=config.retry.max_retry_after,
        hold_long=config.retry.on_long_quota == "wait",
    )
    tokens = TokenManager(
        config.auth,
        session,
        policy,
        stats,
        timeout=session.timeout,
        secrets=secrets,
        throttle=throttle,
    )
    return Fetcher(config, session, tokens, policy, stats, throttle)


@dataclass(frozen=True, slots=True)
class Fetched:
    """A page and what its answer said about the whole dataset."""

    page: Page
    total: int | None
    complete: bool
    next: PageRequest | None = None  # chain styles: the page after this one
    total_pages: int | None = None


# Each expired or revoked token costs one refresh; more in a row for one page means a loop.
_MAX_REFRESHES_PER_PAGE = 5
# As many as aiohttp follows by default.
_MAX_REDIRECTS = 10


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
        self._total_spec = config.pagination.total or "unknown"
        self._total_pages_spec = config.pagination.total_pages
        self._unit = config.pagination.range_unit
        self._session = session
        self._tokens = tokens
        self._policy = policy
        self._stats = stats
        self._url = URL(config.source.url)
        self._hosts = HostPolicy(config.source.url, allow_private=config.source.allow_private_hosts)
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
        for _ in range(_MAX_REFRESHES_PER_PAGE):
            try:
                return await self._with_retries(planner, request, url)
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

    async def _with_retries(self, planner: Planner, request: PageRequest, url: URL) -> Fetched:
        def count_retry(exc: BaseException, wait: float) -> None:
            cause = retry_cause(exc) or type(exc).__name__
            self._stats.count_retry(cause)
            log.debug("page %d: %s, retried in %.2f s", request.index, cause, wait)

        try:
            async for attempt in self._policy.retrying(on_retry=count_retry):
                with attempt:
                    return await self._once(planner, request, url)
        except (RetryableStatus, InvalidBody, aiohttp.ClientError, TimeoutError) as exc:
            self._give_up(request, url, exc)
        raise AssertionError("tenacity neither returned nor raised")  # pragma: no cover

    def _give_up(self, request: PageRequest, url: URL, exc: BaseException) -> NoReturn:
        unverified = certificate_failure(exc, str(url))
        if unverified is not None:
            raise unverified from exc
        attempts = self._policy.config.max_attempts
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None and retry_after > self._policy.config.max_retry_after:
            reason = (
                f"server asked to retry after {retry_after:.0f} s, "
                f"more than retry.max_retry_after ({self._policy.config.max_retry_after:.0f} s); "
                "retry.on_long_quota: wait holds every worker until then"
            )
        elif isinstance(exc, TimeoutError):
            reason = f"gave up after {attempts} attempts: {self._timed_out(exc)}"
        elif isinstance(exc, aiohttp.ClientResponseError):
            # raise_for_status is off: this is an answer aiohttp could not parse, not a status.
            reason = f"the answer could not be read as HTTP ({exc.message})"
            if "more than" in exc.message or "headers" in exc.message.lower():
                reason += "; aiohttp allows status and header lines of 8190 bytes, 128 headers"
        elif self._policy.is_retryable(exc):
            detail = failure_detail(exc)
            reason = f"gave up after {attempts} attempts: {retry_cause(exc)} ({detail})"
        else:
            reason = f"failed: {type(exc).__name__} ({failure_detail(exc)})"
        raise PageFetchError(
            reason,
            page=request.index,
            url=str(url),
            status=answered_status(exc),
            body=getattr(exc, "body", ""),
            attempts=attempts,
        ) from exc

    def _timed_out(self, exc: TimeoutError) -> str:
        source = self._source
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return f"no connection within source.connect_timeout ({source.connect_timeout:g} s)"
        if isinstance(exc, aiohttp.SocketTimeoutError):
            return f"nothing received for source.read_timeout ({source.read_timeout:g} s)"
        return f"the answer took longer than source.timeout ({source.timeout:g} s)"

    def _totals(
        self, body: Any, headers: Mapping[str, str], *, strict: bool
    ) -> tuple[int | None, int | None]:
        """(total records, total pages) as this answer tells them; None where it does not."""
        try:
            total = read_total(self._total_spec, body, headers, self._unit)
            pages_spec = self._total_pages_spec
            pages = None if pages_spec is None else read_total(pages_spec, body, headers, "")
        except (MissingPath, PlanError):
            if strict:
                raise
            return None, None
        return total, pages

    async def _once(self, planner: Planner, request: PageRequest, url: URL) -> Fetched:
        # The token first: a worker that waited for a token refresh must still pass the
        # cool-down and the rate afterwards, not find itself already past them. And once more
        # after them: a long cool-down or a slow rate may outlast the token, and a token sent
        # expired, if new and never accepted yet, would pass for one the API refuses.
        if request.send_token:
            await self._tokens.current()
        async with self._throttle.request() as ticket:
            token = await self._tokens.current() if request.send_token else None
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
            async with self._get(request, url, headers) as (response, crossed):
                self._stats.statuses[response.status] += 1
                log.debug("page %d: %s answered %d", request.index, shown_url, response.status)
                ticket.observe(response.status, response.headers)
                if crossed and response.status == 401:
                    raise AuthError(
                        f"redirected to {redact_url(str(response.url))}, on another origin, "
                        "which answered 401: the token is not sent across origins",
                        url=str(url),
                        status=401,
                    )
                return await self._answer(planner, request, url, token, response)

    @contextlib.asynccontextmanager
    async def _get(
        self, request: PageRequest, url: URL, headers: dict[str, str]
    ) -> AsyncIterator[tuple[aiohttp.ClientResponse, bool]]:
        """The answer to GET `url` after any redirects, and whether one crossed to another origin.

        We follow redirects ourselves: aiohttp drops Authorization (and Cookie) on a hop to
        another origin (scheme, host or port), but would carry an X-API-Key from source.headers
        along. Every secret header is dropped here, for the rest of the hops.
        """
        target, crossed = url, False
        for hop in range(_MAX_REDIRECTS + 1):
            if hop > 0 or request.url is not None:
                await self._check_host(request, url, target, "redirect" if hop else "next link")
            try:
                answer = await self._session.get(target, headers=headers, allow_redirects=False)
            except HostRefused as exc:  # by the resolver, on the address it would connect to
                raise PageFetchError(str(exc), page=request.index, url=str(url)) from None
            async with answer:
                location = answer.headers.get("Location")
                if answer.status not in REDIRECT_STATUSES or location is None:
                    yield answer, crossed
                    return
            following = _redirect_target(request, target, location)
            if not crossed and following.origin() != target.origin():
                crossed = True
                headers = {k: v for k, v in headers.items() if not carries_secret(k)}
            target = following
        raise PageFetchError(
            f"redirected more than {_MAX_REDIRECTS} times", page=request.index, url=str(url)
        )

    async def _check_host(self, request: PageRequest, url: URL, target: URL, what: str) -> None:
        try:
            await self._hosts.check(target, what=what)
        except HostRefused as exc:
            raise PageFetchError(str(exc), page=request.index, url=str(url)) from None

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
            total, _ = self._totals(None, response.headers, strict=False)
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
            raise PageFetchError(
                "unexpected status",
                page=request.index,
                url=str(url),
                status=status,
                body=excerpt(self._tokens.scrub(body)),
            )
        # After a redirect, a relative next link is relative to where the answer came from.
        return self._parse(planner, request, response.url, status, response.headers, body)

    # Reading a page makes thousands of dicts and lists, none in a cycle: see collector_paused.
    @collector_paused()
    def _parse(
        self,
        planner: Planner,
        request: PageRequest,
        url: URL,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Fetched:
        content_type = headers.get("Content-Type", "")
        try:
            data: Any = decode_json(body, content_type)
        except NotJSON as exc:
            shown = excerpt(self._tokens.scrub(body))
            if cut_short(body, headers, exc):
                raise InvalidBody(f"body cut short ({exc})", body=shown, status=status) from None
            # A login page, plain text, a charset we cannot read: no retry turns it into JSON.
            raise PageFetchError(
                f"answered {excerpt(content_type, 80) or 'no Content-Type'}, not JSON ({exc})",
                page=request.index,
                url=str(url),
                status=status,
                body=shown,
            ) from None
        try:
            records = extract_records(data, self._source.records)
            # The first page must tell the total; later ones may keep quiet about it.
            total, total_pages = self._totals(data, headers, strict=request.index == 0)
            answer = Answer(status, headers, data, records, str(url))
            selected = planner.select(request, answer)
        except MissingPath as exc:
            raise RecordsError(str(exc), page=request.index, url=str(url), path=exc.path) from None
        except PlanError as exc:
            raise RecordsError(str(exc), page=request.index, url=str(url)) from None
        try:
            data_out = encode_records(selected.records)
        except NotJSON as exc:  # nested too deeply to write: the same on every attempt
            raise RecordsError(str(exc), page=request.index, url=str(url)) from None
        page = Page(request.index, data_out, len(selected.records), url=str(url))
        return Fetched(
            page,
            total=total,
            complete=selected.complete,
            next=selected.next,
            total_pages=total_pages,
        )


def _redirect_target(request: PageRequest, current: URL, location: str) -> URL:
    """Where a Location header sends the request at `current`; relative ones resolve."""
    try:
        target = current.join(URL(location))
        target.origin()  # raises for a URL without a host
    except ValueError:
        target = None
    if target is None or target.scheme not in ("http", "https"):
        raise PageFetchError(
            f"redirected to {redact_url(location)!r}, which is not an http(s) URL",
            page=request.index,
            url=str(current),
        )
    return target


async def fetch_pages(
    fetcher: Fetcher,
    planner: IndexedPlanner,
    sink: OrderedSink,
    indexes: Iterable[int],
    *,
    workers: int,
    accept: Callable[[Fetched], bool] | None = None,
    wanted: Callable[[int], bool] | None = None,
    stop: Stop | None = None,
) -> None:
    """Fetch every page in `indexes` with `workers` coroutines, handing each to the sink.

    `accept` sees every page first; a page it turns down is not written. A page no longer
    `wanted` by the time it fits the reorder window is not fetched. Once `stop` is requested
    no further page is started.
    """
    pending = iter(indexes)
    stop = stop or Stop()

    async def worker() -> None:
        # One shared iterator: each index is taken by exactly one worker, in increasing order.
        for index in pending:
            if stop.requested or not await sink.wait_for_slot(index, wanted) or stop.requested:
                return
            fetched = await fetcher.fetch(planner, planner.request(index))
            if accept is None or accept(fetched):
                await sink.put(fetched.page, wanted)
            else:
                await sink.wake()

    await _run_all(worker() for _ in range(workers))


async def fetch_chains(
    fetcher: Fetcher,
    planner: ChainPlanner,
    write: Callable[[int, Fetched], Awaitable[bool]],
    *,
    workers: int,
    starts: Sequence[PageRequest | None] | None = None,
    on_first: Callable[[int, Fetched], None] | None = None,
    stop: Stop | None = None,
) -> None:
    """Follow every chain (partition window) to its end, at most `workers` chains at once.

    `write(chain, fetched)` takes each page in chain order and says whether more are wanted.
    `starts` gives each chain's first request (None: the chain is done), if not the planner's.
    """
    firsts = starts if starts is not None else [planner.first(k) for k in range(planner.chains)]
    chains = iter([first for first in firsts if first is not None])
    stop = stop or Stop()

    async def worker() -> None:
        for first in chains:
            await _follow(fetcher, planner, first, write, on_first, stop)

    await _run_all(worker() for _ in range(min(workers, planner.chains)))


async def _follow(
    fetcher: Fetcher,
    planner: ChainPlanner,
    first: PageRequest,
    write: Callable[[int, Fetched], Awaitable[bool]],
    on_first: Callable[[int, Fetched], None] | None,
    stop: Stop,
) -> None:
    chain = first.chain
    request: PageRequest | None = first
    seen: dict[str, int] = {}
    while request is not None and not stop.requested:
        if request.key is not None:
            if request.key in seen:
                raise RecordsError(
                    f"the API is looping: page {request.index} of window {chain} would repeat "
                    f"page {seen[request.key]} (same cursor or next URL)",
                    page=request.index,
                    url=str(fetcher.url_for(request)),
                )
            seen[request.key] = request.index
        fetched = await fetcher.fetch(planner, request)
        if request.index == 0 and on_first is not None:
            on_first(chain, fetched)
        if not await write(chain, fetched):
            return
        request = fetched.next


async def _run_all(coroutines: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run the workers under one TaskGroup: the first failure cancels the rest."""
    try:
        async with asyncio.TaskGroup() as group:
            for coroutine in coroutines:
                group.create_task(coroutine)
    except BaseExceptionGroup as failures:
        # The first failure cancelled the other workers; it is the one worth reporting.
        raise _first_failure(failures) from None


def _first_failure(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_failure(exc)
        return exc
    return group
