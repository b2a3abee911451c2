"""run(config): the only place that knows every stage and wires them together."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from harvester.auth import TokenManager
from harvester.config import Config
from harvester.errors import RecordsError
from harvester.fetch import Fetched, Fetcher, fetch_pages, open_session
from harvester.pagination import Planner, make_planner
from harvester.retry import RetryPolicy
from harvester.sink import OrderedSink
from harvester.stats import Stats


async def run(
    config: Config,
    *,
    max_records: int | None = None,
    stats: Stats | None = None,
    policy: RetryPolicy | None = None,
    on_secret: Callable[[str], None] | None = None,
) -> Stats:
    """Harvest the whole dataset `config` describes; the stats say what happened.

    The first page tells the total; every other page is then planned and fetched in parallel.
    Raises HarvesterError (or a subclass) when the harvest cannot complete.
    """
    stats = stats if stats is not None else Stats()
    try:
        await _harvest(config, stats, policy or RetryPolicy(config.retry), max_records, on_secret)
    finally:
        stats.finished = time.monotonic()
    return stats


async def _harvest(
    config: Config,
    stats: Stats,
    policy: RetryPolicy,
    max_records: int | None,
    on_secret: Callable[[str], None] | None,
) -> None:
    planner = make_planner(config.pagination)
    window = config.concurrency.max_buffered_pages
    async with (
        open_session(config) as session,
        OrderedSink(
            config.output.path, window=window, stats=stats, max_records=max_records
        ) as sink,
    ):
        tokens = TokenManager(
            config.auth, session, policy, stats, timeout=session.timeout, on_token=on_secret
        )
        fetcher = Fetcher(config, session, tokens, policy, stats)
        first_url = str(fetcher.url_for(planner.request(0)))
        first = await fetcher.fetch(planner, planner.request(0))
        total = _discovered_total(config, first_url, first)
        planner = _fit_page_size(planner, first, total, stats, first_url)
        pages = 1 if first.complete else max(1, planner.page_count(total))
        if max_records is not None:
            pages = min(pages, max(1, math.ceil(max_records / planner.page_size)))
        stats.total_records, stats.total_pages = total, pages
        await sink.put(first.page)
        consistency = _Consistency(planner, total)
        await fetch_pages(
            fetcher,
            planner,
            sink,
            range(1, pages),
            workers=min(config.concurrency.workers, max(0, pages - 1)),
            check=consistency.check,
        )
        consistency.report(stats)
        sink.finish()


def _discovered_total(config: Config, url: str, first: Fetched) -> int:
    if first.complete:
        return first.page.count if first.total is None else first.total
    if first.total is None:
        raise RecordsError(
            f"the first answer does not tell the total ({config.pagination.total})",
            page=0,
            url=url,
        )
    return first.total


def _fit_page_size(planner: Planner, first: Fetched, total: int, stats: Stats, url: str) -> Planner:
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


class _Consistency:
    """Notes where pages contradict the plan: the dataset changed while it was read."""

    def __init__(self, planner: Planner, total: int) -> None:
        self._planner = planner
        self._total = total
        self._totals_seen: set[int] = set()
        self._short_pages: list[int] = []
        self._missing = 0

    def check(self, fetched: Fetched) -> None:
        if fetched.total is not None and fetched.total != self._total:
            self._totals_seen.add(fetched.total)
        request = self._planner.request(fetched.page.index)
        expected = max(0, min(request.size, self._total - request.first))
        if fetched.page.count < expected:
            self._short_pages.append(fetched.page.index)
            self._missing += expected - fetched.page.count

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
