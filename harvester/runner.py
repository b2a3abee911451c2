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
    policy = policy if policy is not None else RetryPolicy(config.retry)
    planner = make_planner(config.pagination)
    window = config.concurrency.max_buffered_pages
    async with (
        open_session(config) as session,
        OrderedSink(
            config.output.path, window=window, stats=stats, max_records=max_records
        ) as sink,
    ):
        tokens = TokenManager(
            config.auth,
            session,
            policy,
            stats,
            timeout=session.timeout,
            on_token=on_secret,
        )
        fetcher = Fetcher(config, session, tokens, policy, stats)
        first = await fetcher.fetch(planner, planner.request(0))
        total = _discovered_total(config, fetcher, planner, first)
        planner = _fit_page_size(planner, first, total, stats)
        pages = 1 if first.complete else max(1, planner.page_count(total))
        if max_records is not None:
            pages = min(pages, max(1, math.ceil(max_records / planner.page_size)))
        stats.total_records, stats.total_pages = total, pages
        await sink.put(first.page)
        await fetch_pages(
            fetcher,
            planner,
            sink,
            range(1, pages),
            workers=min(config.concurrency.workers, max(0, pages - 1)),
            check=_consistency_check(planner, total, stats),
        )
        sink.finish()
    stats.finished = time.monotonic()
    return stats


def _discovered_total(config: Config, fetcher: Fetcher, planner: Planner, first: Fetched) -> int:
    if first.complete:
        return first.page.count if first.total is None else first.total
    if first.total is None:
        raise RecordsError(
            f"the first answer does not tell the total ({config.pagination.total})",
            page=0,
            url=str(fetcher.url_for(planner.request(0))),
        )
    return first.total


def _fit_page_size(planner: Planner, first: Fetched, total: int, stats: Stats) -> Planner:
    """A planner whose page size matches what the server really sends per page."""
    count = first.page.count
    first_offset = planner.request(0).first
    if first.complete or count >= planner.page_size or first_offset + count >= total:
        return planner
    if count == 0:
        raise RecordsError(
            f"the first page is empty, yet the total is {total}", page=0, url="(first page)"
        )
    stats.warn(
        f"the server sends at most {count} records per page: page_size lowered from "
        f"{planner.page_size} to {count}"
    )
    return planner.with_page_size(count)


def _consistency_check(planner: Planner, total: int, stats: Stats) -> Callable[[Fetched], None]:
    """Warns when a page contradicts the plan: the dataset changed while we read it."""

    def check(fetched: Fetched) -> None:
        if fetched.total is not None and fetched.total != total:
            stats.warn(f"total changed during the run: {total} at the start, {fetched.total} later")
        request = planner.request(fetched.page.index)
        expected = max(0, min(request.size, total - request.first))
        if fetched.page.count < expected:
            stats.warn(
                f"page {fetched.page.index} held {fetched.page.count} records where "
                f"{expected} were expected: records may have moved between pages"
            )

    return check
