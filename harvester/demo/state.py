"""What the demo API's handlers share: settings, stats, tokens, the rate limit, the fault draws."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Literal

from .pages import Answer, error_answer
from .queue import LeakyQueue, wait_turn
from .ratelimit import TokenBucket, quota_headers, retry_after_seconds
from .records import EncodedRecords
from .settings import DemoSettings
from .stats import DemoStats
from .tokens import TokenStore

Fault = Literal["5xx", "drop", "truncate", "429", "slow", "cut"]
# A request whose client hung up while it waited in the rate limit's queue.
Gone = Literal["gone"]


class DemoState:
    """Everything the handlers share: one per app, on one event loop, so no locks are needed."""

    def __init__(
        self, settings: DemoSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.stats = DemoStats()
        self.tokens = TokenStore()
        self.records = EncodedRecords()
        self.random = random.Random(settings.seed)
        self._clock = clock
        # By client source address with rate_limit_per_address, else one under "" (_limit_key).
        self._buckets: dict[str, TokenBucket] = {}
        self._queues: dict[str, LeakyQueue] = {}
        # The requests waiting in a queue now, and an event set whenever one stops waiting:
        # what DemoServer.wait_for_queue waits on.
        self.queued_now = 0
        self.queue_moved = asyncio.Event()
        self._storm_until = 0.0
        # Set when the server begins to stop: a slow answer stops waiting then, so that it does
        # not hold up the shutdown for slow_seconds.
        self.stopping = asyncio.Event()

    async def pass_rate_limit(
        self, remote: str | None, *, hung_up: Callable[[], bool]
    ) -> tuple[Answer | Gone | None, dict[str, str]]:
        """The limiter's refusal of this request (None: it goes on), and its answer's headers.

        `remote` is the client's source address; in queue mode the request goes on once its
        turn has come, unless `hung_up()` says its client went away meanwhile ("gone").
        """
        rate = self.settings.rate_limit
        if rate is not None and self.settings.rate_limit_queue:
            return await self._wait_in_queue(rate, remote, hung_up), {}
        wait, headers = self._take_from_bucket(remote)
        return (self._refusal(wait) if wait else None), headers

    def _take_from_bucket(self, remote: str | None) -> tuple[float, dict[str, str]]:
        """The seconds until this request fits the rate limit (0.0: now), and its answer's headers.

        Either way the request has been through the bucket (the one of `remote`, the client's
        source address, with rate_limit_per_address); the headers describe the bucket as it left
        it, in the style `rate_limit_headers` asks for.
        """
        s = self.settings
        if s.rate_limit is None:
            return 0.0, {}
        key = self._limit_key(remote)
        bucket = self._buckets.get(key)
        # The limit may be changed at run time; a new rate starts a new, full bucket.
        if bucket is None or bucket.rate != s.rate_limit:
            bucket = self._buckets[key] = TokenBucket(s.rate_limit, clock=self._clock)
        wait = bucket.acquire()
        if s.rate_limit_headers == "none":
            return wait, {}
        # Taken now, not when the answer goes out: other requests may spend slots meanwhile.
        return wait, quota_headers(bucket.quota(), s.rate_limit_headers, now=time.time())

    async def _wait_in_queue(
        self, rate: float, remote: str | None, hung_up: Callable[[], bool]
    ) -> Answer | Gone | None:
        size, key = self.settings.rate_limit_queue, self._limit_key(remote)
        queue = self._queues.get(key)
        # As with the bucket: a new rate or size starts a new, empty queue.
        if queue is None or (queue.rate, queue.size) != (rate, size):
            queue = self._queues[key] = LeakyQueue(rate, size, clock=self._clock)
        turn = queue.admit()
        if turn is None:
            return self._refusal(None)
        if not turn.delay:
            return None
        self.stats.queued += 1
        self.queued_now += 1
        try:
            # A stopping server answers at once, as a slow answer does, not at the turn.
            await wait_turn(queue, turn, gone=lambda: hung_up() or self.stopping.is_set())
        finally:
            self.queued_now -= 1
            self.queue_moved.set()
        if not hung_up():
            return None
        self.stats.left_queue += 1
        return "gone"

    def _refusal(self, wait: float | None) -> Answer:
        """The limiter's refusal, Retry-After from `wait`; a full queue's (None) has none, as
        nginx's, unless `retry_after` asks for one; none at all without
        `rate_limit_retry_after`."""
        self.stats.faults["429"] += 1
        retry: dict[str, str] = {}
        told = wait is not None or self.settings.retry_after is not None
        if told and self.settings.rate_limit_retry_after:
            retry["Retry-After"] = self.retry_after(wait or 0.0)
        status = self.settings.rate_limit_status
        return error_answer(status, "rate_limited", "too many requests", **retry)

    def _limit_key(self, remote: str | None) -> str:
        return (remote or "") if self.settings.rate_limit_per_address else ""

    def items_total(self) -> int:
        """The size of the /items dataset now: grow_by records more from data request grow_at."""
        s = self.settings
        grown = s.grow_at is not None and self.stats.data_requests >= s.grow_at
        return max(0, s.records + s.grow_by) if grown else s.records

    def storm_left(self) -> float:
        """The seconds the 429 storm has left (0.0: none now); call once per data request.

        The storm begins at data request `storm_at`, counted before this call.
        """
        s = self.settings
        if s.storm_at is not None and self.stats.data_requests == s.storm_at:
            self._storm_until = self._clock() + s.storm_seconds
        return max(0.0, self._storm_until - self._clock())

    def draw_fault(self) -> Fault | None:
        """One draw decides among the faults, so they never overlap and each keeps its own rate."""
        s = self.settings
        rates: tuple[tuple[Fault, float], ...] = (
            ("5xx", s.fault_rate),
            ("drop", s.drop_rate),
            ("truncate", s.truncate_rate),
            ("429", s.throttle_rate),
            ("slow", s.slow_rate),
            ("cut", s.cut_rate),
        )
        draw = self.random.random()
        for fault, rate in rates:
            if draw < rate:
                return fault
            draw -= rate
        return None

    def retry_after(self, wait: float) -> str:
        if self.settings.retry_after is None:
            return str(retry_after_seconds(wait))
        # Sent as given, fractions too: tests set 0 so that nobody waits.
        return f"{self.settings.retry_after:g}"
