"""What the first refusal of a run teaches: the rate to start from, and whether to ramp past it.

The API admitted `seen` requests from the start until the refusal, `elapsed` seconds, and asks
for `hold` seconds more. `seen / (elapsed + hold)` is what it bore over that time: exact for a
window limiter (its quota over its window), low for a token bucket with a small burst (its
burst over the pause). A few admitted (a bucket's burst) tell no rate: the ramp starts no lower
than a sequential client's pace, which most limits allow, and which one refusal corrects where
not. A short window's quota tells it, even one below that pace (there, every window overrun
costs a pause), unless it is a few (under 16) near that pace: where answers take long, the slow
start's first round trips span long enough for a bucket to refill its burst between them, so
that is ramped as a guess. A long window's quota is better spent at that pace, then waited out:
one pause per long window. A told pause too short to count a window over, but longer than a
bucket's next place, is a window's end: what the API bore over a second starts the ramp, and
a refusal right after it was a big burst's instead (the ramp starts over at the sequential
pace). Otherwise, a quota spent in under a second (past the slow start's round trips) at
over four times the sequential pace starts the ramp at half of it, with the same fallback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

QUOTA_SEEN = 10  # admitted before a first refusal: a window's quota, not a burst
_GUESSED = 0.8  # a quota's rate under this share of the sequential pace may be a burst's
_FEW_FOR_A_QUOTA = 16  # ... as may a quota of fewer: see first_guess
_SHORT_WINDOW = 2.0  # seconds
# Round trips of a slow start (concurrency.py: from 4 in flight, 8, 16, with two to spare for
# answers that wait): a quota spent within a second of them was spent fast, whatever the
# API's time.
_SLOW_START_ROUNDS = 5
MIN_SPAN = 0.25  # the shortest stretch a rate is measured over
WHOLE_SPAN = 1.0  # a measure over this long spans a whole second's window


@dataclass(frozen=True)
class FirstGuess:
    rate: float
    ramping: bool  # a guess, ramped up from until the next refusal; else measured
    burst: int | None = None  # what was admitted at once: a token bucket's burst
    # A start guessed above the sequential pace (a window's end from a short pause, or half
    # a quota spent fast): where the next refusal comes right after the ramp begins, it was a
    # big burst's instead (a bucket's next place), and the ramp starts again from here.
    fallback: float | None = None


def first_guess(
    seen: int,
    elapsed: float,
    hold: float,
    sequential: float | None,
    *,
    told: bool,
    coarse: bool,
    share: float,
) -> FirstGuess | None:
    """`told`: the API said how long (Retry-After), else `hold` is harvester's own pause;
    `coarse`: in whole seconds, rounded up; `share`: of a quota's rate kept when it is coarse.
    None: nothing admitted and no sequential pace known (no answer came back yet)."""
    if seen == 0 and sequential is None:
        return None
    if told and hold >= MIN_SPAN:
        span = elapsed + hold
        if seen >= QUOTA_SEEN and span <= _SHORT_WINDOW:
            # Over no less than a second: limits count in whole seconds, and a pause to the
            # next whole wall second (an HTTP-date), or a sliding counter's first decay, ends
            # before a quota spent in its first moments is back. A pause in whole seconds
            # (`coarse`: rounded up, by up to one) may be a second over the window's end:
            # counted a second shorter, and paced a sliver under it.
            span = max(span - (1.0 if coarse else 0.0), WHOLE_SPAN)
            # A short window's quota over the window: measured, not guessed, where one request
            # after another would nearly have found it. Well below that pace it may be a
            # bucket's burst over the pause instead: ramped, as a guess. So may a quota of a
            # few where answers take long: a slow start's first round trips span long enough
            # for a bucket to refill its burst between them (50/s with a burst of 5, at 100 ms
            # an answer, admitted 11 in two; kept at 11/s, 23% of its rate). A window of so
            # few costs one more pause, the ramp's.
            ramping = (
                sequential is None or seen / span < _GUESSED * sequential or seen < _FEW_FOR_A_QUOTA
            )
            return FirstGuess(seen / span * (share if coarse else 1.0), ramping)
        burst = seen if 0 < seen < QUOTA_SEEN else None
        return FirstGuess(max(seen / span, sequential or 0.0), True, burst)
    # A pause of harvester's own, or a short one (a bucket's next place: an interval or two at
    # what the API bore), says nothing of a window: what the burst held tells no rate. A told
    # pause longer than that is a window's end near (the next wall-clock second): what the API
    # bore over a second is its quota, a better start for the ramp than a sequential client's
    # pace where answers take long (10/s at 100 ms, whose ramp took 7 s to reach 50/s).
    bore = seen / max(elapsed + hold, WHOLE_SPAN)
    if told and hold * bore > 2 and bore > (sequential or 0.0):
        return FirstGuess(bore, True, fallback=sequential)
    if (
        seen >= QUOTA_SEEN
        and sequential
        and elapsed < WHOLE_SPAN + _SLOW_START_ROUNDS / sequential
        and bore / 4 > sequential
    ):
        # A quota spent in under a second past the slow start's round trips (a short
        # window's, or a burst's) far above the sequential pace where answers take long: half
        # of it starts the ramp, which from the sequential pace took 7 s to reach 50/s at
        # 100 ms an answer (80% of a 1 s window of 50 without Retry-After, in the simulation;
        # 93% from half). Where half was still a burst's, the next refusal comes at once and
        # the ramp starts over from the sequential pace. A quota that took longer to spend is
        # a long window's: spent at that pace.
        return FirstGuess(bore / 2, True, fallback=sequential)
    return FirstGuess(sequential or bore, True)


class Fallback:
    """FirstGuess.fallback, until the next refusal takes it. A refusal that does not use it may
    keep it a while longer (rate_learning: one asking for a sliver of an interval)."""

    def __init__(self) -> None:
        self._rate: float | None = None
        self._until = math.inf

    def stand(self, rate: float | None, until: float = math.inf) -> None:
        """`rate` (None: none) stands as the fallback until `until`, or the next refusal."""
        self._rate, self._until = rate, until

    def at(self, now: float) -> float | None:
        """The fallback, if it still stands at `now`."""
        return self._rate if now <= self._until else None

    def take(self, now: float, *, measured_over: float | None, pause: float) -> float | None:
        """The fallback, if it still stands at `now`; gone after.

        For a refusal that measured what the API admitted over `measured_over` seconds since
        the end of a pause `pause` long (None: too little to measure). Not where that spans
        twice the pause or more: a bucket's refill during the pause inflates such a measure by
        half its rate at most (and the measure caps the step), so the guess was no burst's next
        place, and the ramp crossed the limit.
        """
        rate, self._rate = self.at(now), None
        if measured_over is not None and measured_over >= 2 * pause:
            # A 1 s window's quota, spent at the guess grown: back at the sequential pace, a
            # 50/s window at 100 ms an answer took 7 s to reach its rate again (82%).
            return None
        return rate

    @property
    def kept(self) -> bool:
        """Whether one stands (or stood, until its expiry)."""
        return self._rate is not None
