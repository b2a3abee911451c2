"""harvester.blocking: a coroutine and an async iterator driven from synchronous code, with and
without a running loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator

import pytest

from harvester.blocking import iterate_blocking, loop_running, run_blocking
from harvester.stop import Stop


async def _answer() -> tuple[int, bool]:
    return 42, threading.current_thread() is threading.main_thread()


def test_run_blocking_without_a_loop_runs_in_this_thread() -> None:
    assert not loop_running()
    assert run_blocking(_answer, Stop()) == (42, True)


async def test_run_blocking_under_a_running_loop_runs_in_a_worker_thread() -> None:
    assert loop_running()
    assert run_blocking(_answer, Stop()) == (42, False)


async def test_run_blocking_raises_what_the_coroutine_raised() -> None:
    async def fail() -> None:
        raise LookupError("from the worker thread")

    with pytest.raises(LookupError, match="from the worker thread"):
        run_blocking(fail, Stop())


def _counting(produced: list[int], limit: int = 1_000) -> AsyncGenerator[int, None]:
    async def count() -> AsyncGenerator[int, None]:
        try:
            for i in range(limit):
                produced.append(i)
                yield i
        finally:
            produced.append(-1)  # closed

    return count()


@pytest.mark.parametrize("under_loop", [False, True])
def test_iterate_blocking_gives_every_item_in_order(under_loop: bool) -> None:
    produced: list[int] = []

    def consume() -> list[int]:
        return list(iterate_blocking(lambda: _counting(produced), buffered=3))

    async def in_a_coroutine() -> list[int]:
        return consume()

    items = asyncio.run(in_a_coroutine()) if under_loop else consume()
    assert items == list(range(1_000))
    assert produced[-1] == -1


def test_iterate_blocking_stays_a_few_items_ahead_and_closes_the_source_on_break() -> None:
    produced: list[int] = []
    items = iterate_blocking(lambda: _counting(produced), buffered=3)
    assert next(items) == 0
    items.close()  # as `break` does: the thread is joined before close() returns
    assert produced[-1] == -1
    assert len(produced) - 1 <= 1 + 3 + 1  # the one read, the buffer, the one waiting for a slot
    assert not [t for t in threading.enumerate() if t.name.startswith("harvester")]


def test_iterate_blocking_raises_what_the_source_raised_after_its_items() -> None:
    async def fail() -> AsyncGenerator[int, None]:
        yield 1
        raise LookupError("went wrong")

    seen = []
    with pytest.raises(LookupError, match="went wrong"):
        for item in iterate_blocking(fail, buffered=2):
            seen.append(item)
    assert seen == [1]
