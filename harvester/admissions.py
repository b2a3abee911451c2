"""What the API admitted, and when: the successes a learned rate is measured over."""

from __future__ import annotations

from collections import deque

MEMORY = 60.0  # seconds: no measure looks back further
# A pause this long refills a bucket's burst, as far as one can tell from the burst alone.
REFILLS = 0.5


class Admissions:
    """When recent successes came back, counted over a stretch of answers or of sends."""

    def __init__(self) -> None:
        self._at: deque[float] = deque()
        # The API's time for a request with no queue, as of the last refusal: what is sent at
        # t is answered from t + lag, so what it admitted of a stretch of sends is counted a
        # lag later (at 200 ms an answer, a 10/s bucket counted over the stretch looked 7/s).
        self.lag = 0.0

    def add(self, now: float) -> None:
        """A success came back at `now`."""
        self._at.append(now)
        while self._at[0] < now - MEMORY:
            self._at.popleft()

    def __len__(self) -> int:
        """How many successes are remembered."""
        return len(self._at)

    def answered(self, start: float, end: float) -> int:
        """How many successes came back from `start` to `end`."""
        return sum(1 for t in self._at if start <= t <= end)

    def of_sends(self, start: float, end: float) -> int:
        """How many of the requests sent from `start` to `end` were admitted."""
        return self.answered(start + self.lag, end + self.lag)

    def drained(self, start: float, now: float, burst: int) -> float | None:
        """The rate a bucket refills at, from a stretch that drained it: it held its burst
        `b` at `start` (the end of a pause long enough to refill it), and admitted `n` of what
        was sent over the `s` seconds since, but not one more, so b + rate x s lies between n
        and n + 1: the upper end. None: a stretch that admitted no more than the burst, or one
        longer than the successes remembered (counted short, it would pass for a drained
        bucket's: a probe that crossed 20/s after 90 clean seconds stepped down to 12/s)."""
        span = now - start
        if span <= 0 or span > MEMORY:
            return None
        seen = self.of_sends(start, now)
        return (seen + 1 - burst) / span if seen > burst else None


class Refill:
    """A token bucket's burst, as a first refusal found it (admitted at once), and the last
    pause: a stretch after a pause that refilled the burst, paced well above the bucket's rate
    from its start, drains it, and tells that rate (Admissions.drained)."""

    def __init__(self) -> None:
        self.burst: int | None = None
        self.pause = 0.0

    def rate(self, admitted: Admissions, start: float, now: float, under: float) -> float | None:
        """The bucket's rate from the stretch since `start`, the end of the last pause. None: no
        burst seen, the pause too short to refill it, or a rate of `under` or more (the stretch
        was not paced well above it from its start: the bucket did not drain all along)."""
        if self.burst is None or self.pause < REFILLS:
            return None
        rate = admitted.drained(start, now, self.burst)
        return rate if rate is not None and rate < under else None
