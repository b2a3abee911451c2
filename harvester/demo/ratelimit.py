"""The demo API's request budget: a token bucket shared by every client (or one per client source
address, with `rate_limit_per_address`), and the headers on it.

With `rate_limit` set, `rate_limit_headers` picks which headers describe the bucket as each
data request left it: "none", "x" (GitHub style), "ietf" (the IETF draft), or "both". Every
answer whose request went through the limiter carries them: pages, errors, injected faults, the
limiter's own 429s, and 401s too, since the limiter comes before the token check and a request
refused for its token has spent a slot all the same. The values are taken as the request
passes the limiter, before any latency. For rate r and burst b = max(1, r):

    L  limit      floor(b) requests per window w = ceil(b / r) seconds. Exact when r is a
                  whole number (L = r, w = 1) or 1/r is (L = 1, w = 1/r); otherwise a little
                  under r, so that a client keeping to L per w is never refused.
    R  remaining  floor(tokens left after this request): how many more requests would be
                  granted right now; 0 on the limiter's 429 (an injected 429 fault spent a
                  real slot and shows the real R).
    reset         seconds until the bucket is full again, (b - tokens) / r, rounded up; at
                  least 1 while R < L.

    x     X-RateLimit-Limit: L, X-RateLimit-Remaining: R,
          X-RateLimit-Reset: Unix time (time.time()) when the bucket is full, rounded up
    ietf  RateLimit-Limit: L, RateLimit-Remaining: R, RateLimit-Reset: reset (delta seconds),
          RateLimit-Policy: L;w=w, and the later drafts' single field
          RateLimit: limit=L, remaining=R, reset=reset
    both  all of the above

Retry-After on the limiter's 429 (or `rate_limit_status`) is separate: whole seconds until one
request fits. With `rate_limit_queue`, a queue takes the bucket's place and sends none of these
headers (harvester.demo.queue).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from .settings import RateLimitHeaders


@dataclass(frozen=True, slots=True)
class Quota:
    """The bucket as one request left it."""

    limit: int
    window: int
    remaining: int
    until_full: float

    @property
    def reset(self) -> int:
        """Whole seconds until the bucket is full, rounded up; at least 1 while any is spent."""
        least = 1 if self.remaining < self.limit else 0
        return max(least, _whole_seconds(self.until_full))


class TokenBucket:
    """`rate` requests per second, with bursts of up to max(1, rate).

    A token bucket rather than a sliding window: it needs O(1) state, and a client that spreads
    its requests evenly at `rate` is never refused, however they fall on second boundaries.
    Refused requests cost nothing, so a client that backs off as told always gets through.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()

    def acquire(self) -> float:
        """Take one request's token: 0.0 if granted, else the seconds until one is free."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate

    def quota(self) -> Quota:
        """The bucket as the last acquire() left it."""
        return Quota(
            limit=math.floor(self.capacity),
            window=_whole_seconds(self.capacity / self.rate),
            # No rounding: R must promise no more than acquire() grants.
            remaining=math.floor(self._tokens),
            until_full=(self.capacity - self._tokens) / self.rate,
        )


def quota_headers(quota: Quota, style: RateLimitHeaders, *, now: float) -> dict[str, str]:
    """The headers of `style` that describe `quota`; `now` is Unix time, for X-RateLimit-Reset."""
    limit, remaining, reset = str(quota.limit), str(quota.remaining), str(quota.reset)
    headers: dict[str, str] = {}
    if style in ("x", "both"):
        headers["X-RateLimit-Limit"] = limit
        headers["X-RateLimit-Remaining"] = remaining
        headers["X-RateLimit-Reset"] = str(math.ceil(now + quota.until_full))
    if style in ("ietf", "both"):
        headers["RateLimit-Limit"] = limit
        headers["RateLimit-Remaining"] = remaining
        headers["RateLimit-Reset"] = reset
        headers["RateLimit-Policy"] = f"{limit};w={quota.window}"
        headers["RateLimit"] = f"limit={limit}, remaining={remaining}, reset={reset}"
    return headers


def retry_after_seconds(wait: float) -> int:
    """Retry-After for a computed wait: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait))


def _whole_seconds(seconds: float) -> int:
    # Rounded first, so that float noise (1.0000000000000002 for 1) does not add a second.
    return math.ceil(round(seconds, 9))
