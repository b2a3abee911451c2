"""The API's own time for a request, and what it tells the throttle.

The shortest a success took is the API's time with no queue (a leaky bucket that delays answers
lengthens the others). From it: a sequential client's pace, how many requests in flight a pace
needs, and how long after a refusal the requests in flight with it have surely been answered.
"""

from __future__ import annotations

import math
import statistics
from collections import deque

# A success that took this much longer than the shortest may have met a busy loop or network,
# not a queue at the API (loopback answers in a millisecond or two, and vary by as much).
_NOISE = 0.01
_NEAR, _NEAR_ABOVE = 0.85, 1.25  # see near_sequential
_RECENT = 21  # the successes whose median time is a typical one


class ApiTime:
    """The shortest a success took (None: none yet), and the figures that follow from it."""

    def __init__(self) -> None:
        self.shortest: float | None = None
        self._recent: deque[float] = deque(maxlen=_RECENT)
        self._first_queued: float | None = None  # what the first success that waited took

    def took(self, seconds: float) -> None:
        """A success took `seconds` from its sending."""
        self._recent.append(seconds)
        if self.shortest is None or seconds < self.shortest:
            self.shortest = seconds
        if self._first_queued is None and self.queued(seconds):
            self._first_queued = seconds

    def sequential(self) -> float | None:
        """A sequential client's pace, where answers take long enough to tell one."""
        latency = self.shortest or 0.0
        return 1.0 / latency if latency >= 1e-3 else None

    def queued(self, seconds: float) -> bool:
        """Whether a success that took `seconds` waited in a queue at the API (a leaky bucket's,
        an overloaded server's): over twice the shortest, and `_NOISE` more. (Or the shortest was
        a cheap page's, which no later one matches: see lengthened.)"""
        return self.shortest is not None and seconds > 2 * self.shortest + _NOISE

    def lengthened(self, seconds: float) -> bool:
        """Whether a success that took `seconds` waited over twice as long as the first that
        waited (queued): in a queue, more requests in flight only lengthen the wait, so the
        queue has grown since. A cheap first page makes every later one look queued, but not
        lengthened: they take what the first of them took."""
        first = self._first_queued
        return first is not None and seconds > 2 * first + _NOISE

    def near_sequential(self, rate: float | None) -> bool:
        """Whether a pace of `rate` is near what one request at a time gives: one over a
        typical success's time (the median of the last few; the shortest would overstate it
        where times vary), from `_NEAR` of it to `_NEAR_ABOVE` times it. Well over it, one at a
        time would cap the pace there, and a rate ramped or probed past it is never tried."""
        if rate is None or not self._recent:
            return False
        typical = statistics.median(self._recent)
        if typical < 1e-3:
            return False
        return _NEAR / typical <= rate <= _NEAR_ABOVE / typical

    def settled_in(self) -> float:
        """How long after a refusal those in flight with it have surely been answered, unless
        the API admitted them: a few of its latencies."""
        return 3 * (self.shortest or 0.1)

    def needed(self, rate: float | None) -> int:
        """How many requests in flight a pace of `rate` needs: twice the rate times the API's
        time. With a rate known, the pace holds requests back; halving the requests in flight
        below this at each refusal would slow it further (GCRA with no burst refuses a request
        now and then however well paced: one at a time, it sent at 60% of its rate)."""
        if rate is None or self.shortest is None:
            return 1
        return max(1, math.ceil(2 * rate * self.shortest))
