"""The worker pool: coroutines that take page numbers or chains and fetch them, under one TaskGroup.

The first failure cancels the other workers and is the one reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any

from harvester.chains import ChainPlanner
from harvester.errors import RecordsError
from harvester.fetch import Fetched, Fetcher
from harvester.pagination import IndexedPlanner, PageRequest
from harvester.sink import OrderedSink
from harvester.stop import Stop


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
            await follow_chain(fetcher, planner, first, write, on_first, stop)

    await _run_all(worker() for _ in range(min(workers, planner.chains)))


async def follow_chain(
    fetcher: Fetcher,
    planner: ChainPlanner,
    first: PageRequest,
    write: Callable[[int, Fetched], Awaitable[bool]],
    on_first: Callable[[int, Fetched], None] | None,
    stop: Stop,
) -> None:
    """Follow one chain from `first` until its last page, `write` says stop, or `stop`."""
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
        raise first_failure(failures) from None


def first_failure(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first failure in `group`: the one that cancelled the others."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return first_failure(exc)
        return exc
    return group
