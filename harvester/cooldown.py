"""The global cool-down: when the API refuses, every worker waits, not only the one that was told.

A refusal's Retry-After is held as it says, never shortened; rate-limit headers saying nothing
remains are held until their reset. A refusal without Retry-After is held briefly (every request
sent meanwhile would be refused too), and twice as long each time nothing got through since (a
window is spent): waited out, not stormed. A pause longer than `max_pause` is a long quota (an
hourly budget), held with one line that says so where the run waits for it
(`retry.on_long_quota: wait`), else not held at all: the request that got it fails the run.

Cool-downs come in episodes: the refusals of requests sent before one began are the same
overload, counted once (Throttle reads `episode`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from harvester.pacing import Pacer
from harvester.stats import Stats

log = logging.getLogger("harvester")

# A refusal without Retry-After pauses every worker for this many intervals of the rate (or, with
# no rate known, for _UNTOLD_PAUSE seconds): the API's budget comes back a place at a time. While
# nothing gets through, the pause doubles, from no less than _UNTOLD_PAUSE, up to _UNTOLD_LONGEST:
# the window's end is unknown, so it is found within that long, for one request per probe. At 30 s,
# a 20 s quota spent in its first second was probed at 17 s, then at 33 s: slower than a
# sequential client that backs off from 1 s.
_UNTOLD_INTERVALS = 2.0
_UNTOLD_PAUSE = 0.25
_UNTOLD_LONGEST = 4.0
_UNTOLD_GROWTH = 2.0


class CoolDown:
    """Until when every worker waits, and how long a refusal makes them."""

    def __init__(
        self,
        stats: Stats,
        pacer: Pacer,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_pause: float,
        hold_long: bool,
    ) -> None:
        self._stats = stats
        self._pacer = pacer
        self._clock = clock
        self._sleep = sleep
        self._max_pause = max_pause
        self._hold_long = hold_long
        self.until = 0.0
        self.episode = 0  # cool-downs so far: a request sent during episode N is refused once
        # The pause of the last refusal without Retry-After: it grows while nothing succeeds.
        self._untold_pause = _UNTOLD_PAUSE
        self._refused_since_success = False
        # Refusals without Retry-After in a row: when the first came (None: ended, by the
        # success of a request sent after it), and how long the last such streak lasted (a
        # window's spent part: the next is alike).
        self._streak_from: float | None = None
        self._last_streak = 0.0

    def active(self) -> bool:
        return self.until > self._clock()

    def left(self, now: float) -> float:
        return max(0.0, self.until - now)

    async def wait(self) -> None:
        # Re-checked after every sleep: another worker may have extended the cool-down.
        while (left := self.until - self._clock()) > 0:
            await self._sleep(left)

    def succeeded(self, sent: float) -> None:
        """A request sent at `sent` got through: the next untold pause starts short again."""
        self._refused_since_success = False
        if self._streak_from is not None and sent >= self._streak_from:
            self._last_streak = self._clock() - self._streak_from
            self._streak_from = None

    def refused(
        self, episode: int, retry_after: float | None, now: float, rate: float | None
    ) -> bool:
        """A refusal of a request sent in `episode`, held as it asks: its Retry-After, or, told
        nothing, briefly (`rate`: the pace now). Whether it begins a new episode."""
        first = episode == self.episode
        if retry_after is not None:
            if retry_after and self.holds(retry_after):
                self.hold_until(now + retry_after)
        else:
            if first:
                if self._refused_since_success:
                    # Nothing got through since the last pause: a window is spent. The pause
                    # doubles, from no less than _UNTOLD_PAUSE whatever the rate, or a quarter
                    # of the last such streak: a window spent once is spent alike again.
                    grown = _UNTOLD_GROWTH * self._untold_pause
                    least = max(_UNTOLD_PAUSE, self._last_streak / 4)
                    self._untold_pause = min(_UNTOLD_LONGEST, max(least, grown))
                else:
                    self._untold_pause = _UNTOLD_PAUSE if rate is None else _UNTOLD_INTERVALS / rate
                    self._streak_from = now
                self._refused_since_success = True
            self.hold_until(now + self._untold_pause)
        if first:
            self.episode += 1
            self._stats.cool_downs += 1
        return first

    def holds(self, pause: float) -> bool:
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

    def hold_until(self, until: float) -> None:
        if until > self.until:
            self._stats.cool_down_seconds += until - max(self.until, self._clock())
            self.until = until
            self._pacer.defer(until)
