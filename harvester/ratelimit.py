"""The shared request budget: a rate limit, a global cool-down, adaptive concurrency.

Every request, data or token, passes `Throttle` first. Three things can hold it:

1. the cool-down: a 429 or 503 with Retry-After, or rate-limit headers saying nothing remains,
   pause every worker until that time, not only the one that was told;
2. the rate: a token bucket (GCRA) of `concurrency.rate_limit` requests per second, or, when no
   rate is set, the rate the API was seen to admit (learned at each cool-down);
3. the concurrency limit (data requests only): additive increase, multiplicative decrease between
   1 and `workers`; halved once per cool-down, raised by one after a run of successes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from harvester.config import ConcurrencyConfig
from harvester.retry import parse_retry_after
from harvester.stats import Stats

log = logging.getLogger("harvester")

# A rate learned at a cool-down keeps this share of what the API was seen to admit: a little
# under the limit costs a little speed, a little over costs a pause per overshoot.
_LEARNED_SHARE = 0.9
# A rate the API states (RateLimit-Policy) is exact: only a sliver is left for clock drift.
_STATED_SHARE = 0.97
# After this long without a cool-down, a learned rate is raised by _PROBE_STEP to find out
# whether the API admits more by now.
_PROBE_AFTER = 3.0
_PROBE_STEP = 1.02
# The longest look back at what the API admitted (and the longest Retry-After learned from).
_ADMITTED_HORIZON = 60.0
# The fewest successes a learned rate is drawn from.
_MIN_SAMPLE = 10
_MIN_SPAN = 0.5  # seconds of successes, at least, to learn a rate from
# Seconds past which a reset value is a Unix timestamp rather than a delay (ten years).
_EPOCH_THRESHOLD = 315_360_000


@dataclass(frozen=True)
class RateLimitInfo:
    """What an answer's rate-limit headers say; None where they are silent."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None  # seconds from now until the budget is back
    window: float | None = None  # seconds the limit is counted over (RateLimit-Policy w=)


_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_PARAM = re.compile(r"([A-Za-z-]+)\s*=\s*\"?(\d+(?:\.\d+)?)")


def parse_rate_limit(
    headers: Mapping[str, str], *, now: float | None = None
) -> RateLimitInfo | None:
    """Read `X-RateLimit-*`, `RateLimit-*`, `RateLimit` and `RateLimit-Policy`; None if absent.

    A reset above ten years of seconds is a Unix timestamp (in milliseconds above 1e12), else a
    delay in seconds. The IETF fields win over the X- ones where both are sent.
    """
    epoch = time.time() if now is None else now
    fields: dict[str, float] = {}
    for prefix in ("X-RateLimit-", "RateLimit-"):  # later wins: the IETF names
        for name in ("Limit", "Remaining", "Reset"):
            value = headers.get(prefix + name)
            number = _NUMBER.search(value) if value else None
            if number and math.isfinite(float(number.group())):
                fields[name.lower()] = float(number.group())
    combined = headers.get("RateLimit")  # `limit=50, remaining=3, reset=1` or `"x";r=3;t=1`
    if combined:
        aliases = {"r": "remaining", "t": "reset", "q": "limit"}
        for key, value in _PARAM.findall(combined):
            if math.isfinite(float(value)):
                fields[aliases.get(key.lower(), key.lower())] = float(value)
    window = None
    # Several policies (`100;w=60, 1000;w=3600`): the first, whose limit and window belong together.
    policy = (headers.get("RateLimit-Policy") or "").split(",")[0]
    if policy:
        params = {k.lower(): float(v) for k, v in _PARAM.findall(policy) if math.isfinite(float(v))}
        window = params.get("w")
        leading = _NUMBER.match(policy.strip())
        if "limit" not in fields and (leading or "q" in params):
            fields["limit"] = float(leading.group()) if leading else params["q"]
    if not fields and window is None:
        return None
    reset = fields.get("reset")
    if reset is not None and reset > _EPOCH_THRESHOLD:
        reset = (reset / 1000 if reset > 1e12 else reset) - epoch
    return RateLimitInfo(
        limit=int(fields["limit"]) if "limit" in fields else None,
        remaining=int(fields["remaining"]) if "remaining" in fields else None,
        reset=max(0.0, reset) if reset is not None else None,
        window=window,
    )


class Ticket:
    """One request's passage through the throttle; `observe` tells it how the request went."""

    def __init__(self, throttle: Throttle, episode: int, counted: bool) -> None:
        self._throttle = throttle
        self.episode = episode  # the cool-down episode current when the request was sent
        self.counted = counted  # holds a place in the concurrency limit

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
        self.rate: float | None = config.rate_limit  # None: no limit known
        # The rate the API states (RateLimit-Policy), less a sliver: never probed past, since
        # every overshoot of a stated limit costs a pause for every worker.
        self._stated: float | None = None
        self._next_slot = 0.0  # GCRA: when the next request may go, burst aside
        self._cool_until = 0.0
        self._episode = 0
        self._last_cool_down = clock()
        self.limit = config.workers
        self._in_flight = 0
        self._streak = 0
        self._changed = asyncio.Condition()
        self._admitted: deque[float] = deque()  # when recent successes came back
        # Since when the successes tell of the rate the API bears: the start, then the end of
        # the pause the last learned rate came with. Successes from before that were already
        # learned from; a 429 storm, with no success between its 429s, teaches nothing more.
        self._learning_since = clock()
        stats.concurrency_limit = self.limit
        stats.rate_limit = self.rate

    @contextlib.asynccontextmanager
    async def request(self, *, counted: bool = True) -> AsyncIterator[Ticket]:
        """Wait for a place (concurrency, cool-down, rate); hold it for the request."""
        if counted:
            await self._enter()
        try:
            await self._wait_cool_down()
            await self._wait_rate()
            yield Ticket(self, self._episode, counted)
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
        self._probe_upwards()
        while self.rate is not None:
            interval = 1.0 / self.rate
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

    def _observe(self, ticket: Ticket, status: int, headers: Mapping[str, str]) -> None:
        now = self._clock()
        info = parse_rate_limit(headers)
        if info is not None:
            self._read_headers(info, now)
        if status in (429, 503):
            retry_after = parse_retry_after(headers.get("Retry-After"))
            if status == 429 or retry_after is not None:
                self._cool_down(ticket, status, retry_after, now)
        elif 200 <= status < 300:
            self._admitted.append(now)
            while self._admitted[0] < now - _ADMITTED_HORIZON:
                self._admitted.popleft()
            self._succeeded()

    def _read_headers(self, info: RateLimitInfo, now: float) -> None:
        if info.limit and info.window and self._fixed_rate is None:
            stated = info.limit / info.window * _STATED_SHARE
            if self._stated != stated:
                self._stated = stated
                log.info(
                    "the API states a limit of %d requests per %g s: rate at most %.2f/s",
                    info.limit,
                    info.window,
                    stated,
                )
            if self.rate is None or self.rate > stated:
                self._set_rate(stated)
        if info.remaining == 0 and info.reset and self._holds(info.reset):
            # A stated rate comes back a place at a time (a token bucket, GCRA): the next place
            # is one interval on, however coarsely the reset was rounded up to whole seconds.
            wait = info.reset if self._stated is None else min(info.reset, 1.0 / self._stated)
            self._hold_until(now + wait)

    def _cool_down(
        self, ticket: Ticket, status: int, retry_after: float | None, now: float
    ) -> None:
        if retry_after and self._holds(retry_after):
            self._hold_until(now + retry_after)
        if ticket.episode != self._episode:
            return  # sent before this episode began, which has been answered: once per episode
        self._episode += 1
        self._stats.cool_downs += 1
        self._last_cool_down = now
        if self._adaptive:
            self.limit = max(1, self.limit // 2)
            self._streak = 0
            self._stats.concurrency_limit = self.limit
        # "Retry-After: 0" asks for no pause: whatever refused the request, it was not the rate.
        if self._fixed_rate is None and retry_after != 0:
            self._learn_rate(now, horizon=min(_ADMITTED_HORIZON, max(1.0, retry_after or 1.0)))
        rate = "not set" if self.rate is None else f"{self.rate:.2f}/s"
        log.info(
            "cool-down: %s, every worker waits %.1f s; rate %s, %d workers at once",
            "429 Too Many Requests" if status == 429 else f"{status} with Retry-After",
            max(0.0, self._cool_until - now),
            rate,
            self.limit,
        )

    def _learn_rate(self, now: float, horizon: float) -> None:
        """Set the rate from what the API admitted over the last `horizon` seconds (or since
        the last rate was learned, if that is shorter)."""
        since = max(now - horizon, self._learning_since)
        seen = sum(1 for t in self._admitted if t >= since)
        if seen < _MIN_SAMPLE or now - since < _MIN_SPAN:  # too little to tell a rate from
            return
        admitted = seen / (now - since)
        learned = admitted * _LEARNED_SHARE
        self._set_rate(learned if self.rate is None else min(self.rate * _LEARNED_SHARE, learned))
        self._learning_since = max(now, self._cool_until)

    def _set_rate(self, rate: float) -> None:
        self.rate = max(rate, 0.1)
        self._stats.rate_limit = round(self.rate, 2)

    def _probe_upwards(self) -> None:
        if self._fixed_rate is not None or self.rate is None:
            return
        now = self._clock()
        if now - self._last_cool_down >= _PROBE_AFTER:
            self._last_cool_down = now
            probed = self.rate * _PROBE_STEP
            self._set_rate(probed if self._stated is None else min(probed, self._stated))

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

    def _succeeded(self) -> None:
        if not self._adaptive or self.limit >= self._workers:
            return
        self._streak += 1
        if self._streak >= self.limit:  # about one success per place: one round trip
            self._streak = 0
            # Waiting workers learn of the new place when this request leaves (_leave).
            self.limit += 1
            self._stats.concurrency_limit = self.limit
