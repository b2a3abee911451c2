"""How many data requests go at once: additive increase, multiplicative decrease, and a ceiling.

The limit starts low and doubles each round trip (slow start) until a cool-down or an answer
that waited in a queue at the API; then it is halved once per cool-down and raised by one after
a run of successes (none of which waited longer than the first that waited: a queue at the API
grown by more in flight), or at once to what a pace the throttle keeps needs, between 1 and
`workers`.

An API that limits requests in flight (rather than per second) refuses whenever more than its
limit are in flight, so the limit is also kept under a *ceiling*: the number the API held when it
refused one more, where it never admitted a request alongside as many. What "held" means is
counted, not guessed: a refusal comes back at once, an admitted request takes the API's time, so
the requests in flight when a refusal came back that turn out admitted (or are still in flight at
the next success) are what the API held.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from harvester.stats import Stats

log = logging.getLogger("harvester")

# After this long without a refusal that sets it, the ceiling may grow past the number in
# flight that drew the last one again, by one each time. Each growth refused again (each costs
# a pause for every worker, often a whole second) makes every later one wait twice as long, up
# to _CEILING_MEMORY_MOST: a limit the API raises is still found within that.
_CEILING_MEMORY = 30.0
_CEILING_MEMORY_MOST = 600.0
# A run starts with this many in flight, and one more per success (twice as many each round trip)
# until a refusal or an answer that waited in a queue at the API (slow start). A first wave of
# 16 overran a queueing limiter's queue of 10 (nginx `limit_req`), whose whole-second pause
# left a run at 20/s behind a sequential client; four fit the small bursts and queues limiters
# keep, and double to 16 in two round trips.
_SLOW_START_FROM = 4


class Flight:
    """One data request in flight: whom it was sent behind, and whether the API admitted it."""

    __slots__ = ("ahead", "admitted")

    def __init__(self, ahead: list[Flight]) -> None:
        self.ahead = ahead  # the requests in flight when it was sent; dropped once answered
        self.admitted: bool | None = None  # None: not answered yet

    def held_with(self) -> int:
        """How many of those ahead of it the API held too: admitted, or not answered yet."""
        return sum(1 for other in self.ahead if other.admitted is not False)


def answered(flights: Iterable[Flight]) -> bool:
    """Whether every one of these requests has been answered (or has ended with no answer)."""
    return all(flight.admitted is not None for flight in flights)


@dataclass
class _Refusal:
    """A refusal whose cause is told once the requests in flight with it are answered."""

    flying: list[Flight]


class Concurrency:
    """The number of data requests let go at once; its places are taken with `enter`."""

    def __init__(
        self,
        workers: int,
        *,
        adaptive: bool,
        stats: Stats,
        clock: Callable[[], float],
        slow_start: bool = True,
    ) -> None:
        """`slow_start` (where `adaptive`): `_SLOW_START_FROM` in flight at first."""
        self._workers = workers
        self._adaptive = adaptive
        self._stats = stats
        self._slow = adaptive and slow_start
        self.limit = min(workers, _SLOW_START_FROM) if self._slow else workers
        self._ceiling = workers
        self._ceiling_at = clock()
        self._memory = _CEILING_MEMORY  # doubled at each growth of the ceiling refused
        self._grown_from: int | None = None  # the ceiling before its last growth
        self._told: int | None = None  # a limit on requests in flight the API states
        # Places taken: requests sent, and those waiting for their slot or a cool-down's end.
        self._taken = 0
        self._again = 0  # retries waiting for a place: they go first
        self._streak = 0
        self._flying: set[Flight] = set()
        # The most the API was seen to admit at once, and when: a refusal with fewer held than
        # that was not a limit on requests in flight's.
        self._admitted_at_once = 0
        self._admitted_at_once_at = clock()
        self._unexplained: list[_Refusal] = []
        self._changed = asyncio.Condition()
        # One at a time, whatever the limit (ratelimit.py sets it: a limit with no burst).
        self.single = False
        stats.concurrency_limit = self.limit

    async def enter(self, *, again: bool = False) -> None:
        """Take a place; `again` (a retry) before first attempts waiting for one (turn.py)."""
        async with self._changed:
            if again:
                self._again += 1
            try:
                await self._changed.wait_for(
                    lambda: (
                        self._taken < (1 if self.single else self.limit)
                        and (again or not self._again)
                    )
                )
            finally:
                if again:
                    self._again -= 1
                    self._changed.notify_all()  # first attempts may go, if no retry waits
            self._taken += 1

    async def leave(self) -> None:
        async with self._changed:
            self._taken -= 1
            self._changed.notify_all()

    def send(self) -> Flight:
        flight = Flight(list(self._flying))
        self._flying.add(flight)
        return flight

    def flying(self) -> list[Flight]:
        """The data requests in flight now."""
        return list(self._flying)

    def land(self, flight: Flight) -> None:
        """The request is over (answered, failed or cancelled)."""
        self._flying.discard(flight)
        flight.ahead = []  # a chain of flights, each holding those before it, would leak
        if flight.admitted is None:
            # No answer (a timeout, a dropped connection): nothing says the API held it, and
            # the refusals in flight with it are told without waiting for it.
            flight.admitted = False

    def admitted(
        self,
        flight: Flight,
        now: float,
        *,
        queued: bool = False,
        lengthened: bool = False,
        least: int = 1,
    ) -> None:
        """The API admitted the request; `queued`: its answer waited in a queue at the API;
        `lengthened`: longer than when a queue was first seen (ApiTime.lengthened); `least`:
        what the pace kept needs in flight."""
        flight.admitted = True
        held = 1 + flight.held_with()
        if held >= self._admitted_at_once or now - self._admitted_at_once_at >= _CEILING_MEMORY:
            self._admitted_at_once = held
            self._admitted_at_once_at = now
        self._grow(now, queued, lengthened, least)

    def verdict(self, now: float, *, force: bool = False) -> bool | None:
        """Whether the refusals not yet explained were a limit on requests in flight's, once
        every request that was in flight with them has been answered (or `force`: those still
        in flight count as held). None: none to explain, or not yet told."""
        if not self._unexplained:
            return None
        if not force and not all(answered(r.flying) for r in self._unexplained):
            return None
        return self._explain(now)

    def refused(self, flight: Flight, *, first: bool, least: int = 1) -> bool | None:
        """A refusal; `first` of its cool-down episode, which halves the limit, to no less than
        `least` (what the pace needs in flight) unless under the ceiling. Whether it was a limit
        on requests in flight's: False, or None: told by verdict()."""
        flight.admitted = False
        if not self._adaptive:
            return False
        if first:
            self.cooled()
            self.limit = max(1, min(max(least, self.limit // 2), self._ceiling))
            self._streak = 0
            self._show()
        flying = [f for f in self._flying if f is not flight and f.admitted is not False]
        if not self._held_enough(len(flying)):
            # Fewer in flight than a limit on requests in flight would refuse at: the rate's.
            self._unexplained.clear()
            return False
        self._unexplained.append(_Refusal(flying))
        return None

    def _held_enough(self, held: int) -> bool:
        # Held one says nothing: a limit of one at once is rare, a rate with no burst (GCRA) is
        # not. Held fewer than the API once admitted a request alongside: not a limit on
        # requests in flight either.
        return held >= max(2, self._admitted_at_once)

    def answered(self, flight: Flight) -> None:
        """Any other answer: the API admitted the request (a limit did not refuse it)."""
        flight.admitted = True

    def _explain(self, now: float) -> bool:
        # A refusal's own requests ahead may have been sent after requests that arrived after
        # it; those in flight when it came back are the ones the API held.
        helds = [sum(1 for f in r.flying if f.admitted is not False) for r in self._unexplained]
        self._unexplained.clear()
        held = min(helds)
        # Refused while the API held as many as it ever admitted a request alongside, or more:
        # a limit on requests in flight, which would refuse that many again (for a while; see
        # _grow).
        if not self._held_enough(held):
            return False
        if held == self._grown_from and now - self._ceiling_at < self._memory:
            # The last growth was refused within its memory, holding what the ceiling was
            # before it: the API's limit is where it was (fewer: it came down, which no
            # growth caused).
            self._memory = min(2 * self._memory, _CEILING_MEMORY_MOST)
        self._grown_from = None
        self._ceiling = min(self._ceiling, held)
        self._ceiling_at = now
        self.limit = min(self.limit, self._ceiling)
        self._show()
        return True

    def cooled(self) -> None:
        """A cool-down began (a token request's refusal among them): the slow start is over."""
        self._slow = False

    def told(self, most: int) -> None:
        """The API states a limit on requests in flight: never more at once."""
        if self._told is None and most < self._workers:
            log.info("the API states a limit of %d requests at once: no more are sent", most)
        self._told = most
        self._ceiling = min(self._ceiling, most)
        self.limit = max(1, min(self.limit, most))
        self._show()

    def _grow(self, now: float, queued: bool, lengthened: bool, least: int) -> None:
        most = self._workers if self._told is None else min(self._workers, self._told)
        # Answers that wait in a queue at the API come no faster with more in flight (the API's
        # pace sets how fast they come): the ceiling grows on an answer that did not wait.
        if now - self._ceiling_at >= self._memory and self._ceiling < most and not queued:
            self._grown_from = self._ceiling
            self._ceiling += 1
            self._ceiling_at = now
        if not self._adaptive or self.limit >= min(self._workers, self._ceiling):
            return
        if self._slow:
            if queued:
                self._slow = False
            else:
                self.limit += 1
                self._show()
            return
        if least > self.limit and not queued:
            # A pace is kept (the throttle spaces requests at a rate): more in flight adds no
            # load, and fewer than the pace needs would slow it where answers take long (one
            # more per round trip took 18 s to reach a 10/s pace at 1.6 s an answer).
            self.limit = min(least, self._workers, self._ceiling)
            self._show()
            return
        if lengthened:
            # The queue has grown since it was first seen: one more in flight would only wait
            # longer (and, past its end, draw a refusal that pauses every worker). The run of
            # successes starts again: a few shorter waits (the queue's length varies as
            # answers come) are no reason to grow it.
            self._streak = 0
            return
        self._streak += 1
        if self._streak >= self.limit:  # about one success per place: one round trip
            self._streak = 0
            # Waiting workers learn of the new place when this request leaves (leave).
            self.limit += 1
            self._show()

    def _show(self) -> None:
        self._stats.concurrency_limit = self.limit
