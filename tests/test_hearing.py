"""Hearing: a refusal reaches the rate learner once those in flight with it are answered."""

from __future__ import annotations

from harvester.api_time import ApiTime
from harvester.concurrency import Concurrency
from harvester.hearing import Hearing
from harvester.rate_learning import RateLearner
from harvester.stats import Stats


def hearing() -> tuple[Hearing, Concurrency, list[float]]:
    heard, limit, learned, _ = hearing_and_learner()
    return heard, limit, learned


def hearing_and_learner() -> tuple[Hearing, Concurrency, list[float], RateLearner]:
    limit = Concurrency(16, adaptive=True, stats=Stats(), clock=lambda: 0.0, slow_start=False)
    api_time = ApiTime()
    api_time.took(0.02)
    learned: list[float | None] = []
    learner = RateLearner(0.0)
    for i in range(1, 11):
        learner.admitted(i / 100)
    heard = Hearing(learner, limit, api_time, on_learned=learned.append)
    return heard, limit, learned, learner


def test_a_refusal_is_heard_once_those_in_flight_with_it_are_answered() -> None:
    heard, limit, learned = hearing()
    flying = [limit.send() for _ in range(3)]
    heard.refused(0.1, 0.1, 1.0, told=True, coarse=True, at_once=False)

    heard.settle(0.1)
    assert learned == []  # three still in flight: what the API admitted is not known yet
    for flight in flying:
        limit.admitted(flight, 0.12)
    heard.settle(0.12)

    assert len(learned) == 1


def test_a_refusal_of_a_request_sent_before_the_last_was_heard_is_not() -> None:
    heard, _, learned = hearing()
    heard.refused(0.1, 0.1, 1.0, told=True, coarse=True, at_once=False)
    heard.settle(1.2)
    assert len(learned) == 1

    heard.refused(1.0, 1.3, 1.0, told=True, coarse=True, at_once=False)  # sent at 1.0
    heard.settle(1.4)

    assert len(learned) == 1


def test_a_refusal_still_waiting_long_after_is_overdue() -> None:
    heard, limit, _ = hearing()
    limit.send()
    heard.refused(0.1, 0.1, 1.0, told=True, coarse=True, at_once=False)

    assert not heard.overdue(0.12)
    assert heard.overdue(0.2)  # a few of the API's times: those in flight were admitted


def test_a_refusal_that_teaches_nothing_still_holds_the_ramp() -> None:
    """A refusal of a request sent before the last was heard is not learned from, but every
    worker waited out its pause: the ramp does not grow through it (a learner that kept
    growing measured its next stretch over the idle pause: 4.8/s against 16.8/s)."""
    heard, _, learned, learner = hearing_and_learner()
    heard.refused(0.1, 0.1, 1.0, told=True, coarse=True, at_once=False)
    heard.settle(1.2)
    assert (learner.rate(3.0) or 0.0) > (learner.rate(2.0) or 0.0)  # ramping
    before = learner.rate(2.0) or 0.0

    heard.refused(1.0, 2.0, 1.0, told=True, coarse=True, at_once=False)  # sent at 1.0

    assert len(learned) == 1
    assert learner.rate(3.0) == before
