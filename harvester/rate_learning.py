"""The rate an API bears, learned from when it admitted requests and when it refused them.

No header need say it. What a refusal teaches depends on what came before it:

- The first refusal of a run: the API admitted `n` requests from the start until now, and asks
  for `hold` seconds more. `n / (elapsed + hold)` is what it bore over that time: exact for a
  window limiter (its quota over its window), low for a token bucket with a small burst (its
  burst over the pause). So the rate starts there and *ramps* up, doubling each second, until
  the next refusal.
- A later refusal: the requests admitted over the last stretch of pacing (since the pause
  before, at most `_HORIZON` seconds) were sent at about the limit, the pace having just
  crossed it; their rate, less a sliver, is the new rate, and at least a step below the pace
  that drew the refusal (a burst the API saved up during the pause inflates the stretch).
- After that, the rate is probed upwards slowly (a limit may be raised, or was learned low):
  every refusal costs a pause for every worker, often a whole second, so rarely.

A rate the API states (RateLimit-Policy) caps all of it.
"""

from __future__ import annotations

import math
from collections import deque

# The share of a measured rate kept: a little under the limit costs a little speed, a little
# over costs a pause per overshoot.
_SHARE = 0.97
# The most a refusal lowers the rate it was drawn at.
_STEP_DOWN = 0.9
# After the first refusal, the rate doubles every this many seconds until the next one.
_RAMP_DOUBLING = 1.0
# Once learned, the rate grows by this factor per _PROBE_EVERY seconds without a refusal.
_PROBE_STEP = 1.02
_PROBE_EVERY = 10.0
# The longest look back at what the API admitted.
_HORIZON = 2.0
_MEMORY = 60.0
# The fewest successes, and the shortest stretch, a rate is measured over.
_MIN_SAMPLE = 5
_MIN_SPAN = 0.25
_SLOWEST = 0.1  # requests per second: the floor of any learned rate


class RateLearner:
    """Rates learned at refusals; `rate(now)` is the pace to keep now (None: no limit seen)."""

    def __init__(self, start: float) -> None:
        self._start = start
        self._admitted: deque[float] = deque()  # when recent successes came back
        self._base: float | None = None  # the rate as last learned
        self._base_at = start  # when it was learned (growth counts from there)
        self._ramping = False
        # Successes from before this moment were drawn on already: the end of the last pause.
        self._since = start
        self.stated: float | None = None  # RateLimit-Policy, less a sliver

    def admitted(self, now: float) -> None:
        self._admitted.append(now)
        while self._admitted[0] < now - _MEMORY:
            self._admitted.popleft()

    def rate(self, now: float) -> float | None:
        """The pace now: the learned rate, grown by the ramp or the probe since; under `stated`."""
        if self._base is None:
            return self.stated
        elapsed = max(0.0, now - self._base_at)
        if self._ramping:
            grown = self._base * math.pow(2.0, elapsed / _RAMP_DOUBLING)
        else:
            grown = self._base * math.pow(_PROBE_STEP, elapsed / _PROBE_EVERY)
        return grown if self.stated is None else min(grown, self.stated)

    def refused(self, now: float, hold: float, sequential: float | None = None) -> float | None:
        """Learn from a refusal at `now` that asks for `hold` seconds; the new rate, if any.
        `sequential` is the pace of one request after another (one over the latency)."""
        pace = self.rate(now)
        if self._base is None:
            seen = sum(1 for t in self._admitted if t >= self._start)
            if seen == 0 and sequential is None:
                return self.stated  # refused from the start: nothing to tell a rate from
            # The ramp starts no lower than a sequential client's pace, which most limits
            # allow, and which one refusal corrects where not.
            learned = max(seen / max(now - self._start + hold, _MIN_SPAN), sequential or 0.0)
            self._ramping = True
        else:
            since = max(self._since, now - _HORIZON)
            seen = sum(1 for t in self._admitted if t >= since)
            if seen == 0:
                # No success since the last pause: the same overload (a storm of 429s), which
                # has been learned from already. Once per overload, not once per 429.
                self._since = max(self._since, now + hold)
                return pace
            learned = (pace or self._base) * _STEP_DOWN
            if seen >= _MIN_SAMPLE and now - since >= _MIN_SPAN:
                learned = min(learned, seen / (now - since) * _SHARE)
            self._ramping = False
        self._base = max(_SLOWEST, learned)
        self._base_at = now + hold
        self._since = now + hold
        return self.rate(self._base_at)

    def state(self, rate: float) -> None:
        """The API states its rate (RateLimit-Policy): never paced past."""
        self.stated = rate
        if self._base is not None and math.isfinite(rate):
            self._base = min(self._base, rate)
