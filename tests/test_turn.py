"""Turn: one holder at a time, retries before first attempts, each kind in order of arrival."""

from __future__ import annotations

import asyncio

from harvester.turn import Turn


class Queue:
    """A Turn held by one task until `release()`, and the names of those let through after."""

    def __init__(self) -> None:
        self.turn = Turn()
        self.order: list[str] = []
        self._release = asyncio.Event()
        self.holder = asyncio.create_task(self._hold())

    async def _hold(self) -> None:
        async with self.turn():
            await self._release.wait()

    def release(self) -> None:
        self._release.set()

    def take(self, name: str, first: bool = False) -> asyncio.Task[None]:
        """A task that waits for its turn (`first`: a retry's) and notes its name in it."""

        async def take() -> None:
            async with self.turn(first=first):
                self.order.append(name)

        return asyncio.create_task(take())


async def queued(names: list[tuple[str, bool]]) -> list[str]:
    """The order in which `names` (name, first), queued one after another behind a holder, get
    their turn once it is released."""
    queue = Queue()
    await asyncio.sleep(0)  # the holder takes the turn
    tasks = []
    for name, first in names:
        tasks.append(queue.take(name, first))
        await asyncio.sleep(0)  # each queues before the next arrives
    queue.release()
    await asyncio.gather(queue.holder, *tasks)
    return queue.order


async def test_a_retry_goes_before_first_attempts_that_came_earlier() -> None:
    order = await queued([("a", False), ("b", False), ("retry", True), ("c", False)])
    assert order == ["retry", "a", "b", "c"]


async def test_retries_and_first_attempts_each_keep_their_order() -> None:
    order = await queued([("a", False), ("r1", True), ("b", False), ("r2", True)])
    assert order == ["r1", "r2", "a", "b"]


async def test_a_free_turn_is_taken_at_once() -> None:
    turn = Turn()
    async with turn():
        assert turn.waiting() == 0
    async with turn(first=True):
        pass


async def test_a_waiter_cancelled_leaves_the_queue_and_the_turn_goes_on() -> None:
    queue = Queue()
    await asyncio.sleep(0)
    gone, kept = queue.take("gone", first=True), queue.take("kept")
    await asyncio.sleep(0)
    assert queue.turn.waiting() == 2
    gone.cancel()
    await asyncio.sleep(0)
    queue.release()
    await asyncio.gather(queue.holder, kept)
    assert gone.cancelled()
    assert queue.order == ["kept"]
    async with queue.turn():  # free again
        pass


async def test_a_waiter_cancelled_as_it_is_handed_the_turn_passes_it_on() -> None:
    queue = Queue()
    await asyncio.sleep(0)
    handed, after = queue.take("handed"), queue.take("after")
    await asyncio.sleep(0)
    queue.release()
    await asyncio.sleep(0)  # the holder runs and hands the turn to `handed`, not run yet
    assert queue.holder.done()
    assert not handed.done()
    handed.cancel()
    await after
    assert handed.cancelled()
    assert queue.order == ["after"]
