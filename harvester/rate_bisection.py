"""A limit with no burst (GCRA): how it is told from a first refusal, and its rate bisected.

Such a limit refuses any two requests closer than its interval, however slow the pace between
them, and admits every request at a pace under its rate: a pace over the rate is refused at its
second request after a pause, a pace under it never. So each pace tried tells on which side of
the rate it lies, a refused one at the price of a pause (often a whole second, for every
worker), a held one at the price of a few requests sent slower than need be.

A tenth a pause, a GCRA of 20/s met at a sequential client's 48/s took nine pauses to get under
(77% of the limit over 1,000 requests, the real matrix). Bisected: halved while no pace has
held, then halfway (geometrically) between the fastest pace held and the slowest refused, until
they are within `_FOUND`; a sliver under the one held is kept.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection

from harvester.first_refusal import QUOTA_SEEN

_STEP = 0.5  # while no pace has held
# Successes at a pace, none refused, that tell it is under the rate: a few, as the requests'
# way varies by a few milliseconds, or a second's worth where that is fewer (an interval so
# long that a few milliseconds are nothing to it), but no fewer than _HELD_FEWEST.
_HELD = 8
_HELD_FEWEST = 3
_FOUND = 1.05
_WAVE = 64  # sends remembered before the first rate is learned (a first wave's, and more)


def no_burst(
    seen: int,
    sent: Collection[float],
    wave: Collection[float],
    sequential: float | None,
    *,
    stated: bool = False,
) -> bool:
    """Whether a first refusal came from a limit with no burst: of the requests sent since the
    count began (`wave`: when each was sent, admitted or not), some together, it admitted
    `seen`, one, or a few sent one at a time (`sent`: when the last successes were sent), none
    together. (Against GCRA 50/s at 20 ms, the first wave spreads over 30 ms: it admits two, the
    second sent after the first was answered.) Requests never sent together (one worker, or one
    in flight at a time) tell nothing by their spacing, as a bucket's burst comes one at a time
    too; unless they were paced under a rate the API states (`stated`), all of which a bucket
    admits."""
    if not sent or not (stated or _together(wave, sequential)):  # one admitted tells
        return seen == 1
    return 0 < seen < QUOTA_SEEN and not _together(sent, sequential)


class Sends:
    """What the sends before the first rate was learned tell of a burst (no_burst): when each
    data request was sent, when the last successes were, and when the API first stated its
    rate."""

    def __init__(self) -> None:
        self._wave: deque[float] = deque(maxlen=_WAVE)
        self._admitted: deque[float] = deque(maxlen=QUOTA_SEEN)
        self._stated_at: float | None = None

    def sent(self, now: float) -> None:
        self._wave.append(now)

    def admitted(self, sent: float) -> None:
        self._admitted.append(sent)

    def stated(self, now: float) -> None:
        if self._stated_at is None:
            self._stated_at = now

    def no_burst(self, seen: int, since: float, sequential: float | None) -> bool:
        """no_burst, for a first refusal counted from `since` that found `seen` admitted."""
        wave = [t for t in self._wave if t >= since]
        # Paced under a statement: every send but the first came after it was read (one read
        # with the refusal paced nothing).
        at = self._stated_at
        stated = at is not None and sum(1 for t in wave if t < at) <= 1
        return no_burst(seen, self._admitted, wave, sequential, stated=stated)


def _together(sent: Collection[float], sequential: float | None) -> bool:
    """Whether two of these requests were sent together: closer than a quarter of the API's
    time (unknown: together, as a burst's are)."""
    if sequential is None:
        return True
    ordered = sorted(sent)
    return any(b - a < 0.25 / sequential for a, b in zip(ordered, ordered[1:], strict=False))


def held_after(pace: float) -> int:
    """How many successes at `pace`, none refused, tell that it is under the rate."""
    return max(_HELD_FEWEST, min(_HELD, math.ceil(pace)))


class Bisection:
    """The fastest pace held and the slowest refused, while the rate is between them."""

    def __init__(self, share: float) -> None:
        self._share = share  # of the pace held, kept once found
        self._held: float | None = None
        self._over: float | None = None
        self.done = False  # found: a later refusal is a probe's, a sliver over it

    @property
    def active(self) -> bool:
        return self._over is not None

    def refused(self, pace: float) -> float:
        """Refused at `pace`: the next pace to try."""
        self._over = pace if self._over is None else min(self._over, pace)
        if self._held is not None and self._held >= self._over:
            self._held = None  # held by luck (the requests' way varies): no bound
        if self._held is None:
            return pace * _STEP
        if self._over <= self._held * _FOUND:
            return self._found(self._held)
        return math.sqrt(self._held * self._over)

    def held(self, pace: float) -> float:
        """`pace` held (held_after): the next pace to try, or the one found."""
        self._held = max(self._held or 0.0, pace)
        if self._over is None or self._over <= self._held * _FOUND:
            return self._found(self._held)
        return math.sqrt(self._held * self._over)

    def _found(self, held: float) -> float:
        self._held = self._over = None
        self.done = True
        return held * self._share
