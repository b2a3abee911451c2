"""Spacing requests on slots leased from a shared RateBudget, not on a rate of one's own.

The Throttle of a shard (budget.py) paces with this instead of its own Pacer: each slot it lets
a request go at was granted by the budget, which spaces the slots of every shard together. It
asks for a lease (a handful of slots) when it has none left. A cool-down another shard reported
is held as if a refusal of this shard's own had said so: as soon as it is reported (a call kept
open to the budget, `held`, returns with it), or, at the latest, when a lease says it is on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from harvester.budget import LEASE_SECONDS, RateBudget
from harvester.pacing import Pacer

log = logging.getLogger("harvester")

# A leased slot more than one slot's interval behind by the time a request could take it (its
# workers were busy, or the loop was) is let go unused: a slot only ever spent on time keeps
# every shard's requests spread as the budget spaced them, rather than sent in a burst that
# makes up for lost time (a GCRA limiter of burst 1 refuses any two closer than the interval).
# Until a lease of two slots tells the interval, a lease's length stands in for it.
_LATE = LEASE_SECONDS


class LeasedPacer(Pacer):
    """Pacer's interface (turn, wait, defer) on the slots of leases from `budget`."""

    def __init__(
        self,
        budget: RateBudget,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        super().__init__(burst, clock=clock, sleep=sleep)
        self._budget = budget
        self._slots: deque[float] = deque()  # on this process's clock
        self._free_until = 0.0  # a lease without a shared rate: own pace until then
        # The cool-down a lease reports, held by the Throttle as its own (CoolDown.hold_until).
        self.on_hold: Callable[[float], None] = lambda until: None
        self._late = _LATE  # how far behind a slot may still be taken: one interval, once known
        # Listens for the cool-downs reported to the budget, from the first wait on: the slots
        # leased already would otherwise go out during a cool-down another shard was told of.
        self._listener: asyncio.Task[None] | None = None

    async def wait(self, rate: float | None, interrupted: Callable[[], bool]) -> bool:
        """Wait for the next leased slot (within `turn`); `rate` is only this shard's own pace,
        kept where the budget shares no rate. False: no slot taken (a cool-down is on)."""
        if self._listener is None:
            self._listener = asyncio.ensure_future(self._listen())
        now = self._clock()
        while (slot := self._next(now)) is None and self._free_until <= now:
            lease = await self._budget.lease(LEASE_SECONDS)
            now = self._clock()
            if lease.hold > 0:
                self.on_hold(now + lease.hold)
                return False
            # Nothing granted and nothing held: a budget without a rate, however it says so.
            granted = lease.free_for if lease.slots or lease.free_for > 0 else LEASE_SECONDS
            self._free_until = now + (0.0 if lease.slots else granted)
            self._slots.extend(now + offset for offset in lease.slots)
            if len(lease.slots) > 1:
                self._late = lease.slots[1] - lease.slots[0]
        if slot is None:  # no shared rate: this shard's own, if it knows one
            return True if rate is None else await super().wait(rate, interrupted)
        if slot > now:
            await self._sleep_until(slot)
            if interrupted():
                return False
        return True

    def defer(self, until: float) -> None:
        """No slot before `until` (a cool-down): the leased slots before it are void."""
        super().defer(until)
        while self._slots and self._slots[0] < until:
            self._slots.popleft()

    async def _listen(self) -> None:
        """Hold each cool-down reported to the budget, until the event loop ends (or the budget
        cannot be reached: then the leases still say so)."""
        seen = 0
        try:
            while True:
                hold = await self._budget.held(seen)
                seen = hold.number
                if hold.left > 0:
                    self.on_hold(self._clock() + hold.left)
        except Exception as exc:  # any failure of another process's: logged, not raised
            log.debug("no longer told of cool-downs as they are reported: %s", exc)

    def _next(self, now: float) -> float | None:
        """The next leased slot that is not too late to take, taken; None: none left."""
        while self._slots:
            slot = self._slots.popleft()
            if slot >= now - self._late:
                return slot
        return None
