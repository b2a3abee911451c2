"""The demo API's queueing limiter: nginx's `limit_req zone=... burst=N` without `nodelay`.

With `rate_limit` r and `rate_limit_queue` N > 0, data requests leave the limiter at r per
second, one every 1/r s. A request that finds the pace free goes on at once; one that comes
sooner waits its turn, 1/r after the turn before it (the k-th request over the rate in a burst
waits k/r), and its answer comes that much later; a request that finds N already waiting is
refused at once with `rate_limit_status` (nginx's limit_req_status is 503 by default). With
`rate_limit_per_address`, each client source address has a queue of its own, as a zone keyed
by $binary_remote_addr.

Headers: none, as nginx sends none. Answers carry no rate-limit headers (DemoSettings refuses
`rate_limit_headers` other than "none" with a queue), and a refusal carries no Retry-After
unless `retry_after` asks for one.

The wait is an asyncio sleep in the request's handler, in slices of HANG_UP_CHECK: aiohttp
does not cancel a handler whose client hangs up (the demo leaves handler_cancellation off, so
that slow answers still go out and count), so the handler looks between slices. A request whose
client hung up, or whose handler is cancelled, frees its place in the queue; the requests
behind it keep their turns, so the pace never quickens.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# Seconds between looks for a client that hung up while its request waits: short next to the
# client's patience, long next to the cost of one look.
HANG_UP_CHECK = 0.05


@dataclass(frozen=True, slots=True)
class Turn:
    """When an admitted request goes on (`at`, on the limiter's clock), `delay` seconds from now."""

    at: float
    delay: float


class LeakyQueue:
    """`rate` requests per second go on, evenly spaced; up to `size` more wait their turn.

    As ngx_http_limit_req_module counts, with the queue's places made explicit so that a request
    that goes away can give its place back.
    """

    def __init__(
        self, rate: float, size: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or size < 1:
            raise ValueError(f"rate must be > 0 and size >= 1, got {rate} and {size}")
        self.rate = rate
        self.size = size
        self.clock = clock
        # The turns of the admitted requests still waiting, in order; dropped once come.
        self._waiting: deque[float] = deque()
        # The last turn given: the next one is 1/rate later, or now if that has passed.
        self._last = -math.inf

    def admit(self) -> Turn | None:
        """This request's turn, or None: the queue is full, and the refusal changes nothing."""
        now = self.clock()
        self._drop_come(now)
        at = max(now, self._last + 1.0 / self.rate)
        if at > now and len(self._waiting) >= self.size:
            return None
        self._last = at
        if at > now:
            self._waiting.append(at)
        return Turn(at=at, delay=at - now)

    def leave(self, turn: Turn) -> None:
        """Give `turn`'s place back: its request is done waiting, or went away before its turn."""
        # Absent when its turn came and was dropped, or when it never waited.
        with contextlib.suppress(ValueError):
            self._waiting.remove(turn.at)

    @property
    def waiting(self) -> int:
        """How many admitted requests wait for their turn now."""
        self._drop_come(self.clock())
        return len(self._waiting)

    def _drop_come(self, now: float) -> None:
        while self._waiting and self._waiting[0] <= now:
            self._waiting.popleft()


async def wait_turn(
    queue: LeakyQueue,
    turn: Turn,
    *,
    gone: Callable[[], bool],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """Sleep until `turn` comes (True), or until `gone()` says to stop waiting (False).

    The place is given back however the wait ends, cancelled too.
    """
    try:
        while (left := turn.at - queue.clock()) > 0:
            if gone():
                return False
            await sleep(min(left, HANG_UP_CHECK))
        return True
    finally:
        queue.leave(turn)
