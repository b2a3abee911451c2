"""Slow start: a run begins with four data requests in flight and one more per success (twice
as many each round trip), until a refusal or an answer that waited in a queue at the API.

A queueing limiter (nginx `limit_req`) answers at its own pace however many wait: a first wave
of 16 overran its queue of 10 and drew a refusal whose rounded-up Retry-After held every worker
a whole second, half of it idle, which left harvester behind a sequential client at 20/s.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import pytest
from multidict import CIMultiDict

from harvester.api_time import ApiTime
from harvester.concurrency import Concurrency
from harvester.config import ConcurrencyConfig
from harvester.rate_learning import RateLearner
from harvester.ratelimit import Throttle, Ticket
from harvester.stats import Stats
from tests.conftest import FakeTime


def slow(workers: int = 16) -> tuple[Concurrency, FakeTime]:
    fake = FakeTime()
    return Concurrency(workers, adaptive=True, stats=Stats(), clock=fake.clock), fake


def round_trip(limit: Concurrency, fake: FakeTime, *, queued: bool = False) -> int:
    """As many requests as the limit lets go, each admitted; the limit after."""
    flights = [limit.send() for _ in range(limit.limit)]
    fake.now += 0.02
    for flight in flights:
        limit.admitted(flight, fake.now, queued=queued)
        limit.land(flight)
    return limit.limit


def test_a_run_starts_with_four_in_flight_and_doubles_each_round_trip() -> None:
    limit, fake = slow()

    assert limit.limit == 4
    assert [round_trip(limit, fake) for _ in range(3)] == [8, 16, 16]


def test_fewer_workers_than_it_starts_with_start_at_workers() -> None:
    limit = Concurrency(2, adaptive=True, stats=Stats(), clock=FakeTime().clock)

    assert limit.limit == 2


def test_an_answer_that_waited_in_a_queue_ends_it_then_one_more_per_round_trip() -> None:
    limit, fake = slow()
    round_trip(limit, fake)

    assert round_trip(limit, fake, queued=True) == 8
    assert [round_trip(limit, fake, queued=True) for _ in range(3)] == [9, 10, 11]


async def test_a_fast_first_page_does_not_hold_the_limit_down() -> None:
    """No rate limit, every request served in parallel: a first page answered in 5 ms, the rest
    in 40 ms, each of which took over twice the fastest (the shortest is never forgotten). The
    slow start ends there; one more per round trip still reaches every worker (a rule that
    counted no answer that seemed to wait held a run at 5 in flight, 3.2 times slower)."""
    fake = FakeTime()
    throttle = Throttle(ConcurrencyConfig(workers=16), Stats(), clock=fake.clock, sleep=fake.sleep)
    page = await send(throttle)
    fake.now += 0.005
    await page.answer(200)
    for _ in range(20):
        pages = [await send(throttle) for _ in range(throttle.limit)]
        fake.now += 0.04
        for page in pages:
            await page.answer(200)

    assert throttle.limit == 16


def test_a_refusal_ends_it_halving_the_limit_then_one_more_per_round_trip() -> None:
    limit, fake = slow()
    round_trip(limit, fake)
    assert limit.limit == 8

    limit.refused(limit.send(), first=True)

    assert limit.limit == 4
    assert [round_trip(limit, fake) for _ in range(3)] == [5, 6, 7]


@pytest.mark.parametrize(("adaptive", "slow_start"), [(False, True), (True, False)])
def test_without_it_a_run_starts_at_workers(adaptive: bool, slow_start: bool) -> None:
    limit = Concurrency(
        16, adaptive=adaptive, stats=Stats(), clock=FakeTime().clock, slow_start=slow_start
    )

    assert limit.limit == 16


def test_successes_sent_before_a_pause_tell_nothing_of_what_the_api_bears_after_it() -> None:
    """Requests in flight when a refusal paused every worker are answered after the pause: a
    refusal then, with no success sent since, is the same overload, not news of a lower rate."""
    learner = RateLearner(0.0)
    for i in range(5):
        learner.admitted(0.02 + i * 0.01, 50.0, sent=i * 0.01)
    learner.refused(0.07, 0.5, 50.0)  # a bucket's burst of five; paced from 0.57
    pace = learner.rate(0.6)
    learner.admitted(0.58, 50.0, sent=0.06)  # sent before the pause, answered after

    assert learner.refused(0.6, 0.5, 50.0) == pytest.approx(pace)


class Sent:
    """A request through the throttle, in flight until answered."""

    def __init__(self, place: AbstractAsyncContextManager[Ticket], ticket: Ticket) -> None:
        self._place, self._ticket = place, ticket

    async def answer(self, status: int, **values: str) -> None:
        headers = CIMultiDict({name.replace("_", "-"): value for name, value in values.items()})
        self._ticket.observe(status, headers)
        await self._place.__aexit__(None, None, None)


async def send(throttle: Throttle) -> Sent:
    place = throttle.request()
    return Sent(place, await place.__aenter__())


async def test_a_refusal_of_a_request_sent_before_the_last_was_heard_teaches_nothing() -> None:
    """A first refusal with a short Retry-After is heard only once the requests in flight with
    it are answered; its pause may end before that, and requests then go at no pace (none is
    known yet). A refusal of one of those tells of that unpaced wave, not of the pace the first
    refusal teaches: the pace stays (it was cut by a tenth, from the sequential client's pace:
    85% of a token bucket's 50/s in the simulation)."""
    fake = FakeTime()
    throttle = Throttle(
        ConcurrencyConfig(workers=16), Stats(), clock=fake.clock, sleep=fake.sleep, slow_start=False
    )
    first = [await send(throttle) for _ in range(3)]  # three admitted together
    fake.now += 0.02
    for request in first:
        await request.answer(200)
    # Of three more, the third refused: a bucket's burst of five spent (fewer held than were
    # admitted together: the rate's, not a limit on requests in flight's).
    wave = [await send(throttle) for _ in range(3)]
    await wave[2].answer(429, Retry_After="0.016")
    fake.now += 0.017  # the pause is over; the refusal not heard yet
    late = [await send(throttle) for _ in range(2)]
    fake.now += 0.003
    for request in wave[:2]:
        await request.answer(200)  # heard now: a pace learned
    pace = throttle.rate
    assert pace is not None
    await late[0].answer(429, Retry_After="0.016")
    fake.now += 0.017
    await late[1].answer(200)  # a success since its pause: the refusal is heard

    assert throttle.rate is not None
    assert throttle.rate >= pace


async def test_a_token_requests_refusal_ends_it() -> None:
    """A token request refused first begins the cool-down; the data requests refused with it
    are of the same episode, which the slow start must not outlive."""
    fake = FakeTime()
    throttle = Throttle(ConcurrencyConfig(workers=16), Stats(), clock=fake.clock, sleep=fake.sleep)
    token = throttle.request(counted=False)
    ticket = await token.__aenter__()
    ticket.observe(429, CIMultiDict({"Retry-After": "1"}))
    await token.__aexit__(None, None, None)
    for _ in range(2):
        pages = [await send(throttle) for _ in range(throttle.limit)]
        fake.now += 0.02
        for page in pages:
            await page.answer(200)

    assert throttle.limit < 8


def test_a_queue_first_seen_and_then_lengthened_stops_the_growth() -> None:
    """A queueing limiter's answers wait longer with each one more in flight; a cheap first
    page's successors take what the first of them took."""
    queue, cheap = ApiTime(), ApiTime()
    for took in (0.02, 0.05, 0.1):  # the third waited: the first queued
        queue.took(took)
    for took in (0.005, 0.04):
        cheap.took(took)

    assert queue.lengthened(0.25) and not queue.lengthened(0.2)
    assert cheap.queued(0.04) and not cheap.lengthened(0.04)


def test_answers_that_wait_longer_than_the_first_that_waited_hold_the_limit() -> None:
    """A queueing limiter (nginx `limit_req`): its queue's length varies as answers come, so a
    few answers wait less, but a run of successes long enough to grow the limit never comes
    without one that waited longer (the real 50/s rows drew one refusal past the queue when
    the few counted across those)."""
    limit, fake = slow()
    round_trip(limit, fake)
    round_trip(limit, fake, queued=True)
    for i in range(200):
        flight = limit.send()
        limit.admitted(flight, fake.now, queued=True, lengthened=i % 5 != 0)
        limit.land(flight)
        fake.now += 0.02

    assert limit.limit == 9  # one more on the round that found the queue, then none


async def test_a_pages_time_starts_when_it_is_sent_not_when_let_through() -> None:
    """A worker let through the throttle may still wait for a token refresh (a cool-down
    outlasted the token): counted from the throttle, its page looked queued at the API,
    which ends the slow start, and sent before a pause it never met."""
    fake = FakeTime()
    throttle = Throttle(ConcurrencyConfig(workers=16), Stats(), clock=fake.clock, sleep=fake.sleep)
    first = await send(throttle)
    fake.now += 0.02
    await first.answer(200)
    limit = throttle.limit

    async with throttle.request() as ticket:
        fake.now += 1.0  # the token refresh
        ticket.sending()
        fake.now += 0.02
        ticket.observe(200, CIMultiDict())

    assert throttle.limit == limit + 1  # not queued: the slow start goes on
