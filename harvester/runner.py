"""run(config): the only place that knows every stage and wires them together."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator

from harvester.auth import TokenManager
from harvester.chains import make_chain_planner
from harvester.config import INDEXED_STYLES, Config
from harvester.errors import RecordsError
from harvester.fetch import Fetched, Fetcher, fetch_chains, fetch_pages, open_session
from harvester.pagination import IndexedPlanner, make_planner
from harvester.ratelimit import Throttle
from harvester.retry import RetryPolicy
from harvester.sink import ChainSink, OrderedSink
from harvester.stats import Stats

log = logging.getLogger("harvester")


async def run(
    config: Config,
    *,
    max_records: int | None = None,
    stats: Stats | None = None,
    policy: RetryPolicy | None = None,
    on_secret: Callable[[str], None] | None = None,
) -> Stats:
    """Harvest the whole dataset `config` describes; the stats say what happened.

    Raises HarvesterError (or a subclass) when the harvest cannot complete.
    """
    stats = stats if stats is not None else Stats()
    policy = policy or RetryPolicy(config.retry)
    for warning in config.warnings():  # every run, not once: an opt-out must stay visible
        log.warning(warning)
        stats.warn(warning)
    try:
        async with open_session(config) as session:
            throttle = Throttle(config.concurrency, stats, max_pause=config.retry.max_retry_after)
            tokens = TokenManager(
                config.auth,
                session,
                policy,
                stats,
                timeout=session.timeout,
                on_secret=on_secret,
                throttle=throttle,
            )
            fetcher = Fetcher(config, session, tokens, policy, stats, throttle)
            if config.pagination.style not in INDEXED_STYLES:
                await _harvest_chains(config, fetcher, stats, max_records)
            elif config.pagination.total_known:
                await _harvest_known_total(config, fetcher, stats, max_records)
            else:
                await _harvest_open_end(config, fetcher, stats, max_records)
        if max_records is None and stats.total_records not in (None, stats.records):
            stats.warn(
                f"the API advertised {stats.total_records} records and {stats.records} were "
                "written: the data changed during the harvest"
            )
    finally:
        stats.finished = time.monotonic()
    return stats


def _sink(config: Config, stats: Stats, max_records: int | None) -> OrderedSink:
    window = config.concurrency.max_buffered_pages
    return OrderedSink(config.output.path, window=window, stats=stats, max_records=max_records)


async def _harvest_known_total(
    config: Config, fetcher: Fetcher, stats: Stats, max_records: int | None
) -> None:
    """The first page tells the total; every other page is then fetched in parallel."""
    planner = make_planner(config.pagination)
    async with _sink(config, stats, max_records) as sink:
        first_url = str(fetcher.url_for(planner.request(0)))
        first = await fetcher.fetch(planner, planner.request(0))
        total: int | None
        if first.complete:  # the first answer held everything (a Range server ignoring Range)
            total, pages = first.page.count, 1
        elif config.pagination.total_pages is not None:
            pages = _required(first.total_pages, config.pagination.total_pages, first_url)
            total = first.total
        else:
            total = _required(first.total, config.pagination.total, first_url)
            planner = _fit_page_size(planner, first, total, stats, first_url)
            pages = planner.page_count(total)
            total = max(0, total - planner.request(0).first)
        pages = max(1, pages)
        if max_records is not None:
            pages = min(pages, max(1, math.ceil(max_records / planner.page_size)))
        stats.total_records, stats.total_pages = total, pages
        await sink.put(first.page)
        consistency = _Consistency(
            planner, total, lambda i: str(fetcher.url_for(planner.request(i)))
        )
        await fetch_pages(
            fetcher,
            planner,
            sink,
            range(1, pages),
            workers=min(config.concurrency.workers, max(0, pages - 1)),
            accept=consistency.check,
        )
        consistency.report(stats)
        sink.finish()


async def _harvest_open_end(
    config: Config, fetcher: Fetcher, stats: Stats, max_records: int | None
) -> None:
    """No total: fetch ahead in parallel until a short or empty page marks the end."""
    planner = make_planner(config.pagination)
    async with _sink(config, stats, max_records) as sink:
        end = _OpenEnd(
            planner.page_size, lambda i: str(fetcher.url_for(planner.request(i))), sink.stop_after
        )
        await fetch_pages(
            fetcher,
            planner,
            sink,
            end.claims(),
            workers=config.concurrency.workers,
            accept=end.check,
        )
        stats.discarded_pages = end.discarded
        sink.finish(last_page=end.last)


async def _harvest_chains(
    config: Config, fetcher: Fetcher, stats: Stats, max_records: int | None
) -> None:
    """Cursor and link styles: each partition window is one chain, the windows in parallel."""
    planner = make_chain_planner(config.pagination, config.source)
    totals: dict[int, int] = {}

    def note_total(chain: int, first: Fetched) -> None:
        if first.total is not None:
            totals[chain] = first.total
            if len(totals) == planner.chains:
                stats.total_records = sum(totals.values())

    async with ChainSink(
        config.output.path, chains=planner.chains, stats=stats, max_records=max_records
    ) as sink:
        await fetch_chains(
            fetcher,
            planner,
            sink.put,
            workers=config.concurrency.workers,
            on_first=note_total,
        )
        sink.finish()


def _required(value: int | None, spec: str | None, url: str) -> int:
    if value is None:
        raise RecordsError(f"the first answer does not tell the total ({spec})", page=0, url=url)
    return value


def _fit_page_size(
    planner: IndexedPlanner, first: Fetched, total: int, stats: Stats, url: str
) -> IndexedPlanner:
    """A planner whose page size matches what the server really sends per page."""
    count = first.page.count
    first_offset = planner.request(0).first
    if first.complete or count >= planner.page_size or first_offset + count >= total:
        return planner
    if count == 0:
        raise RecordsError(f"the first page is empty, yet the total is {total}", page=0, url=url)
    stats.warn(
        f"the server sends at most {count} records per page: page_size lowered from "
        f"{planner.page_size} to {count}"
    )
    return planner.with_page_size(count)


class _OpenEnd:
    """Hands out page numbers while the end is unknown, and finds the end.

    The first page that is short, empty or past the end (404, 416) is the last. Pages fetched
    ahead beyond it are discarded; at most one per worker, since no page is handed out once the
    end is known.
    """

    def __init__(
        self, page_size: int, url_of: Callable[[int], str], on_end: Callable[[int], None]
    ) -> None:
        self._page_size = page_size
        self._url_of = url_of
        self._on_end = on_end
        self.last: int | None = None
        self._whole = False  # the last page held the whole dataset (Range ignored)
        self._last_filled = -1
        self.discarded = 0

    def claims(self) -> Iterator[int]:
        index = 0
        while self.last is None or index <= self.last:
            yield index
            index += 1

    def check(self, fetched: Fetched) -> bool:
        index, count = fetched.page.index, fetched.page.count
        ends_here = fetched.complete or count < self._page_size
        if ends_here and (self.last is None or index < self.last):
            self.last, self._whole = index, fetched.complete and count > 0
            self._on_end(index)
        if count and not (self.last is not None and self._whole and index > self.last):
            self._last_filled = max(self._last_filled, index)
        if self.last is not None and self._last_filled > self.last:
            raise RecordsError(
                f"page {self._last_filled} holds records although page {self.last} held fewer "
                f"than page_size ({self._page_size}) and looked like the last: the server may "
                "cap its page size (set pagination.page_size to what it sends), or the data "
                "changed during the run",
                page=self._last_filled,
                url=self._url_of(self._last_filled),
            )
        if self.last is not None and index > self.last:
            self.discarded += 1
            return False
        return True


class _Consistency:
    """Notes where pages contradict the plan: the dataset changed while it was read."""

    def __init__(
        self, planner: IndexedPlanner, total: int | None, url_of: Callable[[int], str]
    ) -> None:
        self._planner = planner
        self._start = planner.request(0).first  # the offset the counts are relative to
        self._url_of = url_of
        self._total = total
        self._totals_seen: set[int] = set()
        self._short_pages: list[int] = []
        self._missing = 0

    def check(self, fetched: Fetched) -> bool:
        if self._total is None:
            return True
        start = self._start
        if fetched.total is not None and fetched.total - start != self._total:
            self._totals_seen.add(fetched.total - start)
        request = self._planner.request(fetched.page.index)
        expected = max(0, min(request.size, self._total - (request.first - start)))
        unchanged = fetched.total is None or fetched.total - start == self._total
        if fetched.page.count < expected and unchanged:
            # Nothing explains the gap but a server sending less than asked: the records in it
            # would never be fetched. Fail rather than write a file that looks complete.
            raise RecordsError(
                f"held {fetched.page.count} records where {expected} were planned, with the "
                f"total unchanged: {expected - fetched.page.count} records would be lost. The "
                "server sends fewer records per page than asked; set pagination.page_size to "
                f"at most {fetched.page.count}",
                page=fetched.page.index,
                url=self._url_of(fetched.page.index),
            )
        if fetched.page.count < expected:
            self._short_pages.append(fetched.page.index)
            self._missing += expected - fetched.page.count
        return True

    def report(self, stats: Stats) -> None:
        if self._totals_seen:
            later = ", ".join(str(t) for t in sorted(self._totals_seen))
            stats.warn(f"total changed during the run: {self._total} at the start, {later} later")
        if self._short_pages:
            shown = ", ".join(str(i) for i in sorted(self._short_pages)[:10])
            stats.warn(
                f"{len(self._short_pages)} page(s) held {self._missing} fewer records than "
                f"planned (pages {shown}): records may have moved between pages"
            )
