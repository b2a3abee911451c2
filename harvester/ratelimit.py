"""The shared request budget: a rate limit, a global cool-down, adaptive concurrency.

Every request, data or token, passes `Throttle` first. Three things can hold it:

1. the cool-down: a 429 or a 503 (nginx's limit_req refuses with one), or rate-limit headers
   saying nothing remains, pause every worker until that time, not only the one that was told.
   A refusal without Retry-After pauses them too, briefly: every request sent meanwhile would
   be refused;
2. the rate: a token bucket (GCRA) of `concurrency.rate_limit` requests per second, or, when no
   rate is set, the rate the API states (RateLimit-Policy) or was seen to bear (rate_learning);
3. the concurrency limit (data requests only): additive increase, multiplicative decrease between
   1 and `workers`; halved once per cool-down, raised by one after a run of successes, and kept
   below the number in flight that drew the last refusal (an API that limits requests in flight
   refuses the same number again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from harvester.config import ConcurrencyConfig
from harvester.rate_headers import RateLimitInfo, parse_rate_limit
from harvester.rate_learning import RateLearner
from harvester.retry import parse_retry_after
from harvester.stats import Stats

log = logging.getLogger("harvester")

# A rate the API states (RateLimit-Policy) is exact: only a sliver is left for clock drift.
_STATED_SHARE = 0.97
# A refusal without Retry-After pauses every worker for this many intervals of the rate (or, with
# no rate known, for _UNTOLD_PAUSE seconds): the API's budget comes back a place at a time. While
# nothing gets through, the pause doubles, from no less than _UNTOLD_PAUSE, up to _UNTOLD_LONGEST.
_UNTOLD_INTERVALS = 2.0
_UNTOLD_PAUSE = 0.25
_UNTOLD_LONGEST = 30.0
_UNTOLD_GROWTH = 2.0
# After this long without a refusal, the concurrency kept below the number in flight that drew
# the last one may grow past it again.
_CEILING_MEMORY = 30.0

# The statuses that mean "fewer requests": a 429, and a 503 (nginx's limit_req refuses with it;
# an overloaded server wants fewer requests too). tune counts them as refusals alike.
REFUSALS = frozenset({429, 503})

__all__ = ["REFUSALS", "RateLimitInfo", "Throttle", "Ticket", "parse_rate_limit"]


class Ticket:
    """One request's passage through the throttle; `observe` tells it how the request went."""

    def __init__(self, throttle: Throttle, episode: int, counted: bool, sent: float) -> None:
        self._throttle = throttle
        self.episode = episode  # the cool-down episode current when the request was sent
        self.counted = counted  # holds a place in the concurrency limit
        self.sent = sent  # when it was let through

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        self._throttle._observe(self, status, headers)


class Throttle:
    """Rate, cool-down and concurrency, shared by every worker and the token manager."""

    def __init__(
        self,
        config: ConcurrencyConfig,
        stats: Stats,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_pause: float = 600.0,
        hold_long: bool = False,
    ) -> None:
        self._clock = clock
        # A pause asked for beyond this is a long quota: held with a line that says so where
        # `hold_long` (retry.on_long_quota: wait), else not held: the request that got it fails.
        self._max_pause = max_pause
        self._hold_long = hold_long
        self._sleep = sleep
        self._stats = stats
        self._workers = config.workers
        self._adaptive = config.adaptive
        self._fixed_rate = config.rate_limit
        self._burst = config.burst
        # Unless a rate is set, the pace is learned; the stated rate caps it, never probed past
        # (every overshoot of a stated limit costs a pause for every worker).
        self._learner = RateLearner(clock())
        self._next_slot = 0.0  # GCRA: when the next request may go, burst aside
        self._cool_until = 0.0
        self._episode = 0
        self.limit = config.workers
        # The number in flight that drew the last refusal, less one, and when: an API that
        # limits requests in flight refuses the same number again.
        self._ceiling = config.workers
        self._ceiling_at = clock()
        self._told: int | None = None  # a limit on requests in flight the API states
        self._in_flight = 0
        self._streak = 0
        # The pause of the last refusal without Retry-After: it grows while nothing succeeds.
        self._untold_pause = _UNTOLD_PAUSE
        self._refused_since_success = False
        # The shortest a success took: the API's own time, with no queue (a leaky bucket that
        # delays answers lengthens the others). One over it is a sequential client's pace.
        self._latency: float | None = None
        self._changed = asyncio.Condition()
        stats.concurrency_limit = self.limit
        stats.rate_limit = config.rate_limit

    @property
    def rate(self) -> float | None:
        """The pace now: the rate set, else the one stated or learned; None: no limit known."""
        if self._fixed_rate is not None:
            return self._fixed_rate
        return self._learner.rate(self._clock())

    @contextlib.asynccontextmanager
    async def request(self, *, counted: bool = True) -> AsyncIterator[Ticket]:
        """Wait for a place (concurrency, cool-down, rate); hold it for the request."""
        if counted:
            await self._enter()
        try:
            await self._wait_cool_down()
            await self._wait_rate()
            yield Ticket(self, self._episode, counted, self._clock())
        finally:
            if counted:
                await self._leave()

    async def _enter(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._in_flight < self.limit)
            self._in_flight += 1

    async def _leave(self) -> None:
        async with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    async def _wait_cool_down(self) -> None:
        # Re-checked after every sleep: another worker may have extended the cool-down.
        while (left := self._cool_until - self._clock()) > 0:
            await self._sleep(left)

    async def _wait_rate(self) -> None:
        while (rate := self.rate) is not None:
            self._show_rate(rate)
            interval = 1.0 / rate
            now = self._clock()
            # Reserve the slot before sleeping, so that waiting workers queue in order.
            slot = max(self._next_slot, now - (self._burst - 1) * interval)
            self._next_slot = slot + interval
            if slot <= now:
                return
            await self._sleep(slot - now)
            if self._cool_until <= self._clock():
                return
            # A cool-down began meanwhile: queue again, behind its end, spaced like the rest.
            await self._wait_cool_down()

    def _show_rate(self, rate: float) -> None:
        self._stats.rate_limit = round(rate, 2)

    def _observe(self, ticket: Ticket, status: int, headers: Mapping[str, str]) -> None:
        now = self._clock()
        info = parse_rate_limit(headers)
        if info is not None:
            self._read_headers(info, ticket, now)
        if status in REFUSALS:
            self._cool_down(ticket, status, parse_retry_after(headers.get("Retry-After")), now)
        elif 200 <= status < 300:
            latency = now - ticket.sent
            if self._latency is None or latency < self._latency:
                self._latency = latency
            self._learner.admitted(now, self._sequential())
            self._refused_since_success = False
            self._succeeded(now)

    def _read_headers(self, info: RateLimitInfo, ticket: Ticket, now: float) -> None:
        if info.limit and info.remaining is not None and info.reset is None and not info.window:
            # A limit and what remains of it, with no reset and no window: a limit on requests
            # in flight (there is no time at which it comes back). Never more at once.
            self._told_at_once(info.limit)
        if info.limit and info.window and self._fixed_rate is None:
            stated = info.limit / info.window * _STATED_SHARE
            if self._learner.stated != stated:
                self._learner.state(stated)
                log.info(
                    "the API states a limit of %d requests per %g s: rate at most %.2f/s",
                    info.limit,
                    info.window,
                    stated,
                )
        if info.remaining == 0 and info.reset and self._holds(info.reset):
            rate = self.rate
            if rate is None:
                self._hold_until(now + info.reset)
            else:
                # Paced already: the budget comes back a place at a time (a token bucket,
                # GCRA), the next place one interval after this request took the last one,
                # however coarsely the reset is rounded. A window's end is nearer than that
                # only when the window is almost over. No new request goes sooner; those
                # already queued for later slots keep them (a hold would send each of them
                # behind all the others, for a send that lagged its slot a little).
                due = min(now + info.reset, ticket.sent + 1.0 / rate)
                self._next_slot = max(self._next_slot, due)

    def _cool_down(
        self, ticket: Ticket, status: int, retry_after: float | None, now: float
    ) -> None:
        self._pause_for(ticket, retry_after, now)
        if ticket.episode != self._episode:
            return  # sent before this episode began, which has been answered: once per episode
        self._episode += 1
        self._stats.cool_downs += 1
        if self._adaptive and ticket.counted:
            self._fewer_at_once(now)
        # "Retry-After: 0" asks for no pause: whatever refused the request, it was not the rate.
        if self._fixed_rate is None and retry_after != 0:
            held = max(0.0, self._cool_until - now)
            learned = self._learner.refused(now, held, self._sequential())
            if learned is not None:
                self._show_rate(learned)
        rate = self.rate
        log.info(
            "cool-down: %s, every worker waits %.1f s; rate %s, %d workers at once",
            "429 Too Many Requests" if status == 429 else f"{status} Service Unavailable",
            max(0.0, self._cool_until - now),
            "not set" if rate is None else f"{rate:.2f}/s",
            self.limit,
        )

    def _sequential(self) -> float | None:
        """A sequential client's pace, where answers take long enough to tell one."""
        latency = self._latency or 0.0
        return 1.0 / latency if latency >= 1e-3 else None

    def _pause_for(self, ticket: Ticket, retry_after: float | None, now: float) -> None:
        """Hold every worker as the refusal asks: its Retry-After, or, told nothing, briefly."""
        if retry_after is not None:
            if retry_after and self._holds(retry_after):
                self._hold_until(now + retry_after)
            return
        # Told nothing: a short pause, every request sent meanwhile would be refused too; twice
        # as long each time no request got through since (a window is spent).
        if ticket.episode == self._episode:
            if self._refused_since_success:
                # Nothing got through since the last pause: a window is spent. The pause
                # doubles, from no less than _UNTOLD_PAUSE whatever the rate.
                self._untold_pause = min(
                    _UNTOLD_LONGEST, max(_UNTOLD_PAUSE, _UNTOLD_GROWTH * self._untold_pause)
                )
            else:
                rate = self.rate
                self._untold_pause = _UNTOLD_PAUSE if rate is None else _UNTOLD_INTERVALS / rate
            self._refused_since_success = True
        self._hold_until(now + self._untold_pause)

    def _fewer_at_once(self, now: float) -> None:
        if self._in_flight > 1:
            # Refused with this many in flight: an API that limits the number in flight would
            # refuse it again (for a while; see _succeeded). One alone says nothing.
            self._ceiling = min(self._workers, self._in_flight - 1)
            self._ceiling_at = now
        self.limit = max(1, min(self.limit // 2, self._ceiling))
        self._streak = 0
        self._stats.concurrency_limit = self.limit

    def _told_at_once(self, most: int) -> None:
        if self._told is None and most < self._workers:
            log.info("the API states a limit of %d requests at once: no more are sent", most)
        self._told = most
        self._ceiling = min(self._ceiling, most)
        self.limit = max(1, min(self.limit, most))
        self._stats.concurrency_limit = self.limit

    def _holds(self, pause: float) -> bool:
        """Whether a pause the API asks for is held: a short one always, a long quota's only
        where the run waits for it (one line says so, and the progress line counts down)."""
        if pause <= self._max_pause:
            return True
        if not self._hold_long:
            return False
        reset_at = time.time() + pause
        if self._stats.quota_reset_at is None or reset_at > self._stats.quota_reset_at + 1:
            log.info(
                "the API's quota is spent until %s (%.0f s from now): every worker waits; "
                "retry.on_long_quota: fail stops the run instead",
                time.strftime("%H:%M:%S", time.localtime(reset_at)),
                pause,
            )
        self._stats.quota_reset_at = reset_at
        return True

    def _hold_until(self, until: float) -> None:
        if until > self._cool_until:
            self._stats.cool_down_seconds += until - max(self._cool_until, self._clock())
            self._cool_until = until
            # Slots reserved before the cool-down are void: after it, requests are spaced anew
            # rather than all let go at once.
            self._next_slot = max(self._next_slot, until)

    def _succeeded(self, now: float) -> None:
        most = self._workers if self._told is None else min(self._workers, self._told)
        if now - self._ceiling_at >= _CEILING_MEMORY and self._ceiling < most:
            self._ceiling += 1
            self._ceiling_at = now
        if not self._adaptive or self.limit >= min(self._workers, self._ceiling):
            return
        self._streak += 1
        if self._streak >= self.limit:  # about one success per place: one round trip
            self._streak = 0
            # Waiting workers learn of the new place when this request leaves (_leave).
            self.limit += 1
            self._stats.concurrency_limit = self.limit
