"""How a learned rate grows until the next refusal: ramped, held on trial, or probed.

After the first refusal the rate ramps up by a quarter each second until the next: a guess
refused from above is found in a step, one crept up to takes many. A pace on trial in a
bisection (rate_bisection.py) does not grow: probed past, it would never be seen to hold. Once
learned, the rate is probed upwards slowly (a limit may be raised, or was learned low): every
refusal costs a pause for every worker, often a whole second, so only after five seconds at the
rate learned, and half as eagerly after each probe that crossed the limit. A pause stops the
clock: the rate grows with what is sent at it.
"""

from __future__ import annotations

import math

# In a ramp, the rate grows by RAMP_GROWTH every RAMP_STEP seconds.
RAMP_GROWTH = 1.25
RAMP_STEP = 1.0
# Once learned, the rate grows by this factor per _PROBE_EVERY seconds without a refusal ...
_PROBE_STEP = 1.02
_PROBE_EVERY = 10.0
# ... after this many seconds at the rate learned: a pace found a sliver under the limit is
# kept a while before it is probed past again (each probe past it costs a pause).
_PROBE_AFTER = 5.0


class Growth:
    """The rate as last learned (`base`), when (`at`: growth counts from there), and how it
    grows since."""

    def __init__(self, start: float) -> None:
        self.base: float | None = None
        self.at = start
        self.ramping = False
        self._probe = _PROBE_STEP  # halved at each probe that crossed the limit

    def rate(self, now: float, *, on_trial: bool) -> float | None:
        """The rate grown by `now` (None: none learned); `on_trial`: a bisection's pace."""
        if self.base is None:
            return None
        elapsed = max(0.0, now - self.at)
        if self.ramping:
            return self.base * math.pow(RAMP_GROWTH, elapsed / RAMP_STEP)
        if on_trial:
            return self.base
        probed = max(0.0, elapsed - _PROBE_AFTER)
        return self.base * math.pow(self._probe, probed / _PROBE_EVERY)

    def learn(self, rate: float, at: float) -> None:
        """`rate` is the pace from `at`, and grows from there."""
        self.base, self.at = rate, at

    def stop(self, grown: float | None, until: float) -> None:
        """No growth until `until`: the rate, `grown` by now, is kept until then."""
        if self.base is not None and until > self.at:
            self.base = grown or self.base
            self.at = until

    def probe_crossed(self) -> None:
        """A probe crossed the limit: the next is half as eager."""
        self._probe = 1 + (self._probe - 1) / 2
