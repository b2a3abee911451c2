"""The demo API's request budget: a token bucket shared by every client."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


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


def retry_after_seconds(wait: float) -> int:
    """Retry-After for a computed wait: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait))
