"""The rate an API bears, learned from when it admitted requests and when it refused them.

No header need say it. What a refusal teaches depends on what came before it:

- The first refusal of a run (first_refusal.py; its count, first_count.py): what the API
  admitted from the start until then, over that time and the pause it asks for, or a
  sequential client's pace if that is higher, ramped up by a quarter each second until the
  next refusal (unless a short window's quota was measured). Refused before any answer came
  back, with a long pause to wait: the first success tells that pace (a second wave at no
  pace would cost a second long pause). A refusal by a limit on requests in flight
  (concurrency.py) teaches nothing here; the first refusal is then counted from its pause.
- A refusal a step or more into the ramp: the ramp crossed the limit within its last step, so
  the rate goes back to where the ramp was a step before.
- A refusal right after the ramp began (the first guess was high), or soon after the last
  refusal: a tenth under the pace that drew it, or, where a second or more since the pause
  tells what the API bore, a sliver under that; after a long clean stretch (the probe crossed
  the limit by a sliver, or arrivals bunched): 3% under it. Either way, a sliver under what the
  API admitted since the pause before (over at most `_HORIZON` seconds; in a ramp, its last
  step). A ramp stepped down with nothing measured since the pause ramps on. Where the first
  refusal found a bucket's burst, a stretch after a pause that refilled it, paced well above
  the rate from its start, tells the rate at once (see `_drained`).
- Where the first refusal came from a limit with no burst (GCRA: one request admitted; or, of
  requests sent together or paced under a stated rate, a few, none of them sent together:
  rate_bisection.no_burst), a refusal right after a pause starts a bisection
  instead (rate_bisection.py): over its rate, a pace is refused at its second request; under
  it, never.
- A refusal with no success since the last pause is the same overload (a storm): nothing new.
  Nor is one within a second of a step down after a short pause: what the API still counts
  was sent before the step.

The steps down past the first refusal are rate_steps.step_down's, from what the learner
knows as each comes in; the learner keeps that state.

Between refusals the rate grows (rate_growth.py): a ramp's by a quarter a second; once steady,
by a slow probe, half as eager after each that crossed the limit.

A rate the API states (RateLimit-Policy) caps all of it, and is the pace after a first refusal
(which, under a stated rate, comes from the requests sent before the statement was read).
"""

from __future__ import annotations

import math
from collections import deque

from harvester.admissions import Admissions, Refill
from harvester.first_count import FirstCount
from harvester.first_refusal import MIN_SPAN, WHOLE_SPAN, Fallback
from harvester.rate_bisection import Bisection, held_after
from harvester.rate_growth import RAMP_STEP, Growth
from harvester.rate_steps import SHARE, SLIVER, STEP_DOWN, Refusal, bounded, step_down

# The longest look back at what the API admitted.
_HORIZON = 2.0
# The fewest successes a rate is measured over (and the shortest stretch: MIN_SPAN).
_MIN_SAMPLE = 5
# A first pause this long is not risked again on a rate still unknown: see refused().
_LONG_PAUSE = 0.5
_SLOWEST = 0.1  # requests per second: the floor of any learned rate


class RateLearner:
    """Rates learned at refusals; `rate(now)` is the pace to keep now (None: no limit seen)."""

    def __init__(self, start: float) -> None:
        self._admitted = Admissions()
        self._sent_ok = -math.inf  # when the latest success was sent
        # When recent refusals came (one per pause), and the pause each asked for (untold: inf).
        self._refusals: deque[tuple[float, float]] = deque()
        self._count = FirstCount(start)  # what the first refusal is counted over
        self._growth = Growth(start)  # the rate as last learned, and since when
        self._stepped_at = start  # when the rate was last stepped down
        # Successes from before this moment were drawn on already: the end of the last pause,
        # and how long that pause was.
        self._since = start
        self._pause = 0.0
        self.stated: float | None = None  # RateLimit-Policy, less a sliver
        self._refill = Refill()  # a bucket's burst, and the pause since (see _drained)
        self._fallback = Fallback()  # FirstGuess.fallback (kept past a sliver's: _again)
        # The last step down kept the ramp going (nothing measured, or a sliver's): the next
        # refusal within a second of it is what the API still counted from before it.
        self._kept_ramping = False
        # Against a limit with no burst (no_burst), the rate is bisected (rate_bisection.py).
        self._bisection = Bisection(SHARE)

    def admitted(
        self,
        now: float,
        sequential: float | None = None,
        *,
        sent: float | None = None,
    ) -> None:
        """A data request's success came back at `now`, `sent` when (None: unknown, taken as
        `now`); `sequential` as for refused()."""
        self._admitted.add(now)
        # A success sent before the last pause ended tells nothing of what the API bears after.
        self._sent_ok = max(self._sent_ok, now if sent is None else sent)
        if self._growth.base is None and sent is not None:
            self._count.sends.admitted(sent)
        base = self._growth.base
        if (
            base is not None
            and self._bisection.active
            and self._admitted.answered(self._growth.at, now) >= held_after(base)
        ):  # the pace tried held: the next, or the rate found
            self._growth.learn(self._bisection.held(base), now)
        if self._count.undecided is not None and sequential is not None:
            at, hold = self._count.undecided
            self._count.undecided = None
            self._learn(self._first(at, hold, sequential, True, at), at, hold)

    def rate(self, now: float) -> float | None:
        """The pace now: the learned rate, grown by the ramp or the probe since; under `stated`."""
        grown = self._growth.rate(now, on_trial=self._bisection.active)
        if grown is None:
            return self.stated
        return grown if self.stated is None else min(grown, self.stated)

    def refused(
        self,
        now: float,
        hold: float,
        sequential: float | None = None,
        *,
        told: bool = True,
        coarse: bool = False,
        in_flight_for: float = 0.0,
        lag: float = 0.0,
    ) -> float | None:
        """Learn from a refusal at `now` that asks for `hold` seconds; the new rate, if any.
        `sequential` is the pace of one request after another (one over the latency); `told`:
        the API said how long (Retry-After), else `hold` is harvester's own short pause;
        `coarse`: it said so in whole seconds (delta-seconds, an HTTP-date), rounded up. Heard
        late, successes up to `in_flight_for` after it were in flight when it came (a refusal
        comes back at once, an admitted request takes the API's time). `lag`: the API's time with no
        queue (what is sent at t is answered from t + lag)."""
        self._refusals.append((now, hold if told else math.inf))
        self._admitted.lag = lag
        while self._refusals[0][0] < now - _HORIZON:  # no measure looks back further
            self._refusals.popleft()
        if self._growth.base is None:
            learned = self._first(now, hold, sequential, told, now + in_flight_for, coarse)
            if learned is None:
                if hold >= _LONG_PAUSE:
                    # Refused before any answer came back, and another wave of requests would
                    # cost another long pause: the first success tells a pace (its latency).
                    self._count.undecided = (now, hold)
                return self.stated
        elif self._sent_ok < self._since:
            # No success since the last pause: the same overload (a storm of 429s), which has
            # been learned from already, once per overload, not once per 429.
            self.held(now, hold)
            return self.rate(now)
        elif (
            (not self._growth.ramping or self._kept_ramping)
            and now - self._stepped_at < WHOLE_SPAN
            and not self._falls_back(now, hold if told else 0.0)
        ):
            # Within a second of the last step down, after a short pause: what the API still
            # counts (a sliding log's last second) was sent before it; one step down per
            # second, as TCP takes one per round trip. What it admits meanwhile is measured
            # on: a pause this short leaves no gap to keep out of the measure.
            if hold >= MIN_SPAN:
                self._paused_until(now, hold)
            return self.rate(now)
        else:
            # An untold pause is harvester's own: the refusals came a place at a time.
            learned = self._again(now, hold if told else 0.0)
        self._stepped_at = now
        self._learn(learned, now, hold)
        return self.rate(self._growth.at)

    def held(self, now: float, hold: float) -> None:
        """Every worker was held from `now` for `hold` seconds by a refusal that teaches
        nothing new. The rate does not grow meanwhile (it grows with what was sent at it), and
        what came back before the pause's end is no news of what the API bears after it."""
        self._growth.stop(self.rate(now), now + hold)
        self._paused_until(now, hold)

    def _paused_until(self, now: float, hold: float) -> None:
        """What comes back before the end of a pause of `hold` from `now` is drawn on already."""
        if now + hold > self._since:
            self._since, self._pause = now + hold, hold

    def begin(self, now: float) -> None:
        """A data request was sent at `now`. The first: what came before (a token, a
        connection) is no window's."""
        if self._growth.base is None:
            self._count.begin(now)

    def paused(self, now: float, hold: float) -> None:
        """A refusal that tells nothing of the rate (a limit on requests in flight's) paused
        every worker until `now + hold`."""
        if self._growth.base is None:
            self._count.paused(now, hold)

    def _learn(self, learned: float | None, now: float, hold: float) -> None:
        """`learned` is the rate to keep from the end of the pause (`hold` from `now`)."""
        if learned is None:
            return
        self._refill.pause = hold
        self._growth.learn(max(_SLOWEST, learned), now + hold)
        self._since, self._pause = now + hold, hold

    def _first(
        self,
        now: float,
        hold: float,
        sequential: float | None,
        told: bool,
        answered_by: float,
        coarse: bool = False,
    ) -> float | None:
        guess = self._count.guess(
            self._admitted,
            now,
            hold,
            sequential,
            told=told,
            answered_by=answered_by,
            coarse=coarse,
            stated=self.stated,
            share=SHARE,
        )
        if guess is None:
            return None
        self._growth.ramping = guess.ramping
        if guess.burst is not None:
            self._refill.burst = guess.burst
        self._fallback.stand(guess.fallback)
        return guess.rate

    def _again(self, now: float, hold: float) -> float:
        pace = self.rate(now) or 0.0
        # What the API admitted since the pause (over at most _HORIZON seconds; in a ramp, over
        # its last step, its pace below the limit before): a burst it saved up during the pause
        # inflates it; a pace not kept up lowers it.
        since = max(self._since, now - (RAMP_STEP if self._growth.ramping else _HORIZON))
        seen = self._admitted.of_sends(since, now)
        span = now - since
        measured = seen / span if seen >= _MIN_SAMPLE and span >= MIN_SPAN else None
        fallback = self._fallback.take(
            now, measured_over=None if measured is None else span, pause=self._pause
        )
        bisecting = self._bisection.active or (measured is None and not self._bisection.done)
        if self.no_burst and bisecting:
            # A limit with no burst, refused at once after the pause, or while bisecting: what
            # it admitted over slower paces tried before tells nothing more.
            self._growth.ramping = self._kept_ramping = False
            return self._bisection.refused(pace)
        refusal = Refusal(
            pace=pace,
            hold=hold,
            ramping=self._growth.ramping,
            learned_for=now - self._growth.at,
            measured=measured,
            span=span,
            seen=seen,
            slivers=sum(1 for t, held in self._refusals if since <= t and held * pace < SLIVER),
            fallback=fallback,
        )
        step = step_down(refusal)
        if step.crossed:
            self._growth.probe_crossed()
        if step.keep_fallback:
            self._fallback.stand(fallback, until=now + hold + RAMP_STEP)
        drained = self._drained(now)
        # A ramp stepped down blind (nothing measured since the pause) ramps on: a refusal right
        # after a short pause may be what the API still counted from before it (a bucket a
        # burst overran, refused its next place at the sequential pace), and a ramp stopped
        # there would hold the run at a tenth under that pace, growing 2% in ten seconds (at
        # 100 ms an answer, 20% of a 50/s bucket with a burst of 100). Either step, blind or a
        # sliver's, is then taken once a second, as at a steady pace (refused every 0.13 s,
        # stepped each time, 10/s fell to 5/s in a second); still over the limit, the ramp
        # is refused again after it and measured then.
        blind = measured is None and drained is None
        self._kept_ramping = self._fallback.kept or (step.guessing and blind and not step.restart)
        self._growth.ramping = step.restart or self._kept_ramping
        return bounded(step.rate, refusal, drained)

    def _falls_back(self, now: float, hold: float) -> bool:
        """Whether a refusal asking for `hold` (told; else 0) takes the fallback kept past a
        sliver's: one asking for more than a sliver of an interval, before its expiry."""
        pace = self.rate(now) or 0.0
        return self._fallback.at(now) is not None and hold * pace >= SLIVER

    @property
    def no_burst(self) -> bool:
        """The first refusal came from a limit with no burst (GCRA; rate_bisection.no_burst),
        which refuses any two requests closer than its interval."""
        return self._count.no_burst

    def _drained(self, now: float) -> float | None:
        """The rate a bucket refills at, from the stretch since the last pause, if it drained
        the bucket's burst (Refill.rate); None: no such stretch."""
        if self._growth.base is None:
            return None
        return self._refill.rate(self._admitted, self._since, now, self._growth.base * STEP_DOWN)

    def state(self, rate: float, now: float) -> None:
        """The API states its rate (RateLimit-Policy), read at `now`: never paced past."""
        self._count.sends.stated(now)
        self.stated = rate
        if self._growth.base is not None and math.isfinite(rate):
            self._growth.base = min(self._growth.base, rate)
