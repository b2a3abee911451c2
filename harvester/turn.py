"""One holder at a time, a retry ahead of first attempts: the order requests take their slots in.

Pages are written in order through a bounded reorder window (sink.py), so a refused page,
retried behind every worker already waiting for a slot, holds the window back: at 50/s with
16 workers, a third of a second of slots went to pages past it, and after a few refusals the
window was full and every worker stood still. Its retry goes first instead. Among first
attempts, and among retries, the order is that of arrival. (The places among the requests in
flight follow the same rule: Concurrency.enter, whose waiters share one condition.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator


class Turn:
    """A lock whose waiters marked `first` are let in before the others."""

    def __init__(self) -> None:
        self._held = False
        self._first: deque[asyncio.Future[None]] = deque()
        self._rest: deque[asyncio.Future[None]] = deque()

    @contextlib.asynccontextmanager
    async def __call__(self, *, first: bool = False) -> AsyncIterator[None]:
        await self._acquire(first)
        try:
            yield
        finally:
            self._release()

    def waiting(self) -> int:
        """How many wait for their turn."""
        return sum(1 for f in (*self._first, *self._rest) if not f.done())

    async def _acquire(self, first: bool) -> None:
        if not self._held and not self.waiting():
            self._held = True
            return
        queue = self._first if first else self._rest
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # handed the turn as it was cancelled: the next one's
            else:
                with contextlib.suppress(ValueError):  # unless _release skipped it already
                    queue.remove(turn)
            raise

    def _release(self) -> None:
        """The turn passes to the next waiter, a retry's first, or is free."""
        for queue in (self._first, self._rest):
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self._held = False
