"""When the rate learner hears of a refusal: once the requests in flight with it are answered.

Only then is it known what the API admitted before it, and whether it was a limit on requests
in flight's (concurrency.py), which teaches the rate nothing. One refusal waits at a time: with
no success since, a later one is the same overload. A refusal of a request sent before the
learner last heard of one was drawn by a pace it has learned from already.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from harvester.api_time import ApiTime
from harvester.concurrency import Concurrency, Flight, answered
from harvester.rate_learning import RateLearner


@dataclass
class _Unheard:
    """A refusal the learner has not heard of yet."""

    at: float
    hold: float
    told: bool  # the API said how long (Retry-After)
    coarse: bool  # in whole seconds (delta-seconds, an HTTP-date): up to a second over
    flying: list[Flight]
    at_once: bool | None = None  # a limit on requests in flight's; None: not told yet


class Hearing:
    """The refusal waiting to be heard, and when the learner last heard one."""

    def __init__(
        self,
        learner: RateLearner,
        concurrency: Concurrency,
        api_time: ApiTime,
        *,
        on_learned: Callable[[float | None], None],
    ) -> None:
        """`on_learned`: told what each refusal heard taught (None: no rate yet)."""
        self._learner = learner
        self._concurrency = concurrency
        self._api_time = api_time
        self._on_learned = on_learned
        self._unheard: _Unheard | None = None
        self._heard_at = -math.inf
        self.timed = False  # rate-limit headers told when a budget comes back: a rate's limit

    def refused(
        self,
        sent: float,
        now: float,
        hold: float,
        *,
        told: bool,
        coarse: bool,
        at_once: bool | None,
    ) -> bool:
        """A refusal at `now`, of a request `sent` then, that may teach the rate: the first of
        its cool-down, asking for `hold`; `at_once` as Concurrency.refused tells. Whether it
        waits to be heard (`on_learned` is told once it is)."""
        if sent < self._heard_at:
            # Drawn by a pace learned from already: it teaches nothing, but held every worker.
            self.pause(now, hold)
            return False
        if self._unheard is not None:
            return False
        self._unheard = _Unheard(
            at=now,
            hold=hold,
            told=told,
            coarse=coarse,
            flying=self._concurrency.flying(),
            at_once=at_once,
        )
        return True

    def pause(self, now: float, hold: float) -> None:
        """Every worker is held from `now` for `hold` by a refusal that teaches no rate: the
        learner's rate does not grow through it (RateLearner.held). Not while a refusal waits to
        be heard: what it teaches is measured up to it, and the pause would hide that."""
        if self._unheard is None:
            self._learner.held(now, hold)

    def not_at_once(self) -> None:
        """A refusal meanwhile came with fewer in flight than a limit on them would refuse at."""
        if self._unheard is not None:
            self._unheard.at_once = False

    def overdue(self, now: float) -> bool:
        """Whether the refusal waiting was long enough ago that those still in flight with it
        were admitted."""
        unheard = self._unheard
        return unheard is not None and now - unheard.at > self._api_time.settled_in()

    def settle(self, now: float, *, force: bool = False) -> None:
        """Hear the refusal waiting once those in flight with it have been answered (`force`:
        those still in flight count as admitted)."""
        at_once = self._concurrency.verdict(now, force=force)  # sets the ceiling, if told
        unheard = self._unheard
        if unheard is None:
            return
        if at_once is not None:
            unheard.at_once = at_once
        if not force and not answered(unheard.flying):
            return
        self._unheard = None
        self._heard_at = now
        # An API whose headers tell when its budget comes back limits a rate.
        if unheard.at_once and not self.timed:
            self._learner.paused(unheard.at, unheard.hold)
            self._on_learned(None)  # no rate taught
            return
        learned = self._learner.refused(
            unheard.at,
            unheard.hold,
            self._api_time.sequential(),
            told=unheard.told,
            coarse=unheard.coarse,
            in_flight_for=self._api_time.settled_in(),
            lag=self._api_time.shortest or 0.0,
        )
        self._on_learned(learned)
