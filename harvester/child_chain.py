"""One parent's children: its request chain, page after page, ended as exactly as a harvest's.

The pages of one parent are asked for one after another (the parallelism is across parents);
where each parent's data ends is decided by the same owners as for a whole harvest: KnownTotal
for a total told by the first answer, OpenEnd (with its proof that nothing follows a short page)
for an open end, the chain planner for cursor and link styles.

`state` is where the chain is after each page handed on: a resumed run carries on from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from harvester.chains import make_chain_planner
from harvester.config import INDEXED_STYLES, Config
from harvester.fetch import Fetched, Fetcher
from harvester.page import Page
from harvester.pagination import IndexedPlanner, PageRequest, make_planner
from harvester.schedule import KnownTotal, OpenEnd, plan_known_total
from harvester.stats import Stats
from harvester.stop import Stop
from harvester.workers import follow_chain

# Hands on one page and the chain's state after it; False: no more pages are wanted.
Put = Callable[[Page, dict[str, Any]], Awaitable[bool]]


async def fetch_children(
    fetcher: Fetcher,
    config: Config,
    stats: Stats,
    put: Put,
    *,
    state: dict[str, Any] | None,
    part: Path,
    stop: Stop,
) -> bool:
    """Fetch one parent's child pages from `state` (None: the start); True once its end is
    proven, False where a stop (or --max-records) cut it short."""
    if config.pagination.style not in INDEXED_STYLES:
        return await _chained(fetcher, config, put, state, stop)
    planner = make_planner(config.pagination)
    if config.pagination.total_known:
        return await _known_total(fetcher, config, stats, planner, put, state, part, stop)
    return await _open_end(fetcher, planner, put, state, stop)


def _url_of(fetcher: Fetcher, planner: IndexedPlanner) -> Callable[[int], str]:
    return lambda index: str(fetcher.url_for(planner.request(index)))


async def _known_total(
    fetcher: Fetcher,
    config: Config,
    stats: Stats,
    planner: IndexedPlanner,
    put: Put,
    state: dict[str, Any] | None,
    part: Path,
    stop: Stop,
) -> bool:
    first: Fetched | None = None
    if state is not None:
        plan, start = state["plan"], int(state["next"])
    else:
        first = await fetcher.fetch(planner, planner.request(0))
        plan = plan_known_total(
            planner, first, config.pagination, stats, _url_of(fetcher, planner)(0)
        )
        start = 1
    planner = planner.with_page_size(plan["page_size"]).bounded(plan["total"])
    schedule = KnownTotal(planner, plan, _url_of(fetcher, planner), part)
    if first is not None:
        schedule.check(first)
        if not await put(first.page, {"plan": plan, "next": 1}):
            return False
    for index in range(start, plan["pages"]):
        if stop.requested:
            return False
        fetched = await fetcher.fetch(planner, planner.request(index))
        schedule.check(fetched)
        if not await put(fetched.page, {"plan": plan, "next": index + 1}):
            return False
    return True


async def _open_end(
    fetcher: Fetcher,
    planner: IndexedPlanner,
    put: Put,
    state: dict[str, Any] | None,
    stop: Stop,
) -> bool:
    plan = dict(state["plan"]) if state is not None else {"page_size": planner.page_size}
    index = int(state["next"]) if state is not None else 0
    planner = planner.with_page_size(plan["page_size"])
    schedule = OpenEnd(plan, _url_of(fetcher, planner), numbered=planner.follow_on(0, 1) is None)
    while schedule.wants(index):
        if stop.requested:
            return False
        fetched = await fetcher.fetch(planner, planner.request(index))
        index += 1
        # A page past the proven end is turned down here, never handed on.
        if schedule.check(fetched) and not await put(fetched.page, {"plan": plan, "next": index}):
            return False
    short = schedule.short
    follow_on = None if short is None else planner.follow_on(*short)
    if follow_on is not None:  # the records right after a short page's: none, proven
        schedule.check_follow_on(await fetcher.fetch(planner, follow_on))
    return True


async def _chained(
    fetcher: Fetcher,
    config: Config,
    put: Put,
    state: dict[str, Any] | None,
    stop: Stop,
) -> bool:
    planner = make_chain_planner(config.pagination, config.source)
    if state is not None and state.get("after") is None:
        return True  # its last page was handed on already
    first = planner.first(0) if state is None else PageRequest(**state["after"])
    ended = False

    async def write(chain: int, fetched: Fetched) -> bool:
        nonlocal ended
        after = None if fetched.next is None else dataclasses.asdict(fetched.next)
        ended = after is None
        return await put(fetched.page, {"after": after})

    await follow_chain(fetcher, planner, first, write, None, stop)
    return ended
