"""How far a refusal after the first steps the learned rate down, by what came before it.

The rules of rate_learning.py's refusals past the first, as one function of what the learner
knows when the refusal comes (`Refusal`); the learner keeps the state, and applies the `Step`.
A limit with no burst is bisected instead (rate_bisection.py), and the same overload, or a
refusal within a second of the last step down, is not stepped for (rate_learning.refused).
"""

from __future__ import annotations

from dataclasses import dataclass

from harvester.first_refusal import WHOLE_SPAN
from harvester.rate_growth import RAMP_GROWTH, RAMP_STEP

# The share of a measured rate kept: a little under the limit costs a little speed, a little
# over costs a pause per overshoot.
SHARE = 0.97
# What a refusal lowers the rate it was drawn at to: right after a first guess, and at a steady
# pace (see step_down).
STEP_DOWN = 0.9
_STEADY_STEP = 0.97
_SETTLED = 10.0  # seconds without a refusal after which a pace is settled
# A refusal asking for less than this share of an interval of the pace: a limit a sliver under
# the pace (see step_down).
SLIVER = 0.25


@dataclass(frozen=True, kw_only=True)
class Refusal:
    """What the learner knows as a refusal comes in."""

    pace: float  # the rate it was drawn at
    hold: float  # the pause it asks for, if told (else 0: the pause is harvester's own)
    ramping: bool  # the rate was ramping up
    learned_for: float  # seconds since the rate was last learned (or its pause ended)
    # What the API admitted since the last pause (over at most a horizon; in a ramp, its last
    # step), per second; None: too few, or too short a stretch, to tell.
    measured: float | None
    span: float  # the seconds that stretch lasted
    seen: int  # the successes sent in it
    slivers: int  # the refusals in it asking for under SLIVER of an interval
    fallback: float | None  # the first guess's fallback, if it stands now (Fallback.take)

    @property
    def floor(self) -> float:
        """Refused a slot at a time (a pause of an interval or two: a bucket's next place), the
        requests it refused took slots of the pace the API would have admitted: what it
        admitted is low by as many, so one step goes no further than two of STEP_DOWN."""
        return self.pace * STEP_DOWN**2 if self.hold * self.pace <= 2 else 0.0


@dataclass(frozen=True)
class Step:
    """The rate to keep after the refusal, and what else it changes."""

    rate: float
    restart: bool = False  # the ramp starts again, from the fallback
    guessing: bool = False  # a step within the ramp, on no measure of its own
    crossed: bool = False  # a probe at a settled pace crossed the limit
    keep_fallback: bool = False  # the fallback stands past this refusal (a sliver's)


def step_down(r: Refusal) -> Step:
    """The step a refusal takes, before the bounds of what was measured (`bounded`)."""
    if r.ramping and r.learned_for >= RAMP_STEP:
        # The ramp crossed the limit within its last step: back to where it was then.
        return Step(r.pace / RAMP_GROWTH)
    if not r.ramping and r.learned_for >= _SETTLED:
        # After a long clean stretch at a pace the probe raised a little at a time (or bunched
        # arrivals overran): a small step down, and a probe half as eager (each probe past the
        # limit costs a pause for every worker, often a whole second).
        return Step(r.pace * _STEADY_STEP, crossed=True)
    if r.measured is not None and r.span >= WHOLE_SPAN:
        # Soon after the last refusal, but what the API bore over a second or more tells,
        # unless it refused a request for every two or fewer it admitted, each asking for a
        # pause under a quarter of an interval: a limit with no burst (GCRA) a sliver under
        # the pace, at which every refusal takes a slot it would have admitted, admits half the
        # pace however close to it its rate is. (Twice over it, it admits half the pace too,
        # but asks for a whole interval.)
        halved = 2 * r.slivers >= r.seen
        return Step(max(min(r.pace, r.measured) * SHARE, r.floor if halved else 0.0))
    # Right after the ramp began (the first guess was high), or soon after the last refusal:
    # the pace is still being found. A start guessed above the sequential pace
    # (first_refusal.FirstGuess.fallback) and refused at once (Fallback.take) was a big burst's
    # next place: a step down a tenth at a time, a pause of a few intervals each, took 13
    # refusals in 1.2 s to find a bucket of 10/s with a burst of 100.
    if r.fallback is None:
        return Step(r.pace * STEP_DOWN, guessing=r.ramping)
    if 0 < r.hold * r.pace < SLIVER:
        # Unless asked for a sliver of an interval: a pace a sliver over the limit (a sliding
        # counter still counting the quota that drew the first refusal), not far over a
        # bucket's rate, whose next place is a random part of its interval away. Back at the
        # sequential pace, a 50/s counter at 100 ms an answer took 8 s to reach its rate again
        # (81%). The fallback waits for a refusal asking for more, within the ramp's first
        # step (rate_learning's _falls_back).
        return Step(r.pace * STEP_DOWN, restart=True, guessing=r.ramping, keep_fallback=True)
    # From the fallback (the sequential pace), the ramp starts again, as it would have.
    return Step(min(r.pace, r.fallback), restart=True, guessing=r.ramping)


def bounded(rate: float, r: Refusal, drained: float | None) -> float:
    """`rate` kept a sliver under what the API was measured to bear: since the pause, and the
    rate a drained bucket refilled at (`drained`, admissions.Refill)."""
    if drained is not None:
        rate = min(rate, drained * SHARE)
    if r.measured is not None:
        rate = min(rate, max(r.measured * SHARE, r.floor))
    return rate
