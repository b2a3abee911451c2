"""Spacing requests to a rate: each its own slot, one waiter at a time, on time to the millisecond.

The slots are a token bucket's (GCRA): one every interval of the rate, `burst` of them back to
back after a quiet spell. One worker waits for its slot at a time, so that each slot can count
from when the one before it went.

Two things make a pace slower than its rate on a real event loop, and both are met here:

- a timer wakes up to a millisecond late (the loop's selector counts whole milliseconds): on the
  real clock the last `_SPIN` seconds before a slot are spent yielding to the loop instead, so
  that a request leaves within a tenth of a millisecond of its slot while the loop is free;
- a worker let through late all the same (the loop was busy parsing an answer) lets the next
  make up the lag, but never closer to it than `_CATCH_UP` of an interval.

The make-up has a price: a rate with no burst (GCRA) refuses two requests closer than its
interval, however slow the pace between them, and a late request's successor may be that close.
Measured on loopback at 20 ms latency, paced at 93% of such a limit: one request in eight was
refused with the make-up, one in fifty without; but without it a busy loop cost every learned
pace about 5%. So it is made only where the API may bear it: `strict` (set when the API was
seen to admit no burst at all) spaces each request a whole interval after the one before.
Slots leased from a shared budget (leases.py) are the budget's to space: `strict` leaves them be.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from harvester.turn import Turn

# A request let through late may be followed sooner than an interval, by at most this share of
# one: the lag is made up, and no two go much closer.
_CATCH_UP = 0.9
# Seconds before a slot from which a wait on the real clock yields to the loop instead of
# sleeping on a timer.
_SPIN = 0.0015


class Pacer:
    """The slots of a rate; the rate itself is asked for at each wait (it may be learned)."""

    def __init__(
        self,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        # The real clock, not a test's fake one or a simulation's virtual one: see _sleep_until.
        self._precise = clock is time.monotonic and sleep is asyncio.sleep
        self._next_slot = 0.0  # when the next request may go, burst aside
        self._not_before = 0.0  # no sooner after the last request let through: _CATCH_UP
        self._turn = Turn()
        # The API admits no two requests closer than an interval (no burst): no make-up.
        self.strict = False

    @contextlib.asynccontextmanager
    async def turn(self, *, first: bool = False) -> AsyncIterator[None]:
        """One waiter at a time; `first` (a retry) before those that are not (turn.py)."""
        async with self._turn(first=first):
            yield

    async def wait(self, rate: float, interrupted: Callable[[], bool]) -> bool:
        """Wait for the next slot at `rate` (within `turn`). False: `interrupted()` said, on
        waking, that the wait no longer stands (a cool-down began meanwhile); no slot taken."""
        interval = 1.0 / rate
        now = self._clock()
        due = max(self._next_slot, now - (self._burst - 1) * interval)
        slot = max(due, self._not_before)
        if slot > now:
            await self._sleep_until(slot)
            if interrupted():
                return False
            now = self._clock()
        self._next_slot = due + interval
        if self._burst == 1:
            self._not_before = now + (1.0 if self.strict else _CATCH_UP) * interval
        return True

    def defer(self, until: float) -> None:
        """No slot before `until` (a cool-down's end, a budget's return): slots reserved before
        it are void, and requests after it are spaced anew rather than let go at once."""
        self._next_slot = max(self._next_slot, until)

    async def _sleep_until(self, moment: float) -> None:
        left = moment - self._clock()
        if not self._precise:
            await self._sleep(left)
            return
        if left > _SPIN:
            await asyncio.sleep(left - _SPIN)
        while self._clock() < moment:  # noqa: ASYNC110 (a busy wait, on purpose: no event)
            await asyncio.sleep(0)
