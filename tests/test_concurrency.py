"""Concurrency: AIMD limit, and the ceiling a limit on requests in flight leaves, counted."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from harvester.concurrency import Concurrency, Flight
from harvester.config import ConcurrencyConfig
from harvester.ratelimit import Throttle
from harvester.stats import Stats
from tests.conftest import FakeTime


def concurrency(workers: int = 16, *, adaptive: bool = True) -> tuple[Concurrency, FakeTime]:
    fake = FakeTime()
    # The first wave at full width (slow start is tested on its own).
    limit = Concurrency(
        workers, adaptive=adaptive, stats=Stats(), clock=fake.clock, slow_start=False
    )
    return limit, fake


def throttle_on(fake: FakeTime) -> Throttle:
    """16 workers, the first wave at full width."""
    config = ConcurrencyConfig(workers=16)
    return Throttle(config, Stats(), clock=fake.clock, sleep=fake.sleep, slow_start=False)


def sent(limit: Concurrency, n: int) -> list[Flight]:
    return [limit.send() for _ in range(n)]


def test_refused_past_what_the_api_holds_the_ceiling_is_what_it_held() -> None:
    """An API that holds four at once: four in flight, the fifth and sixth refused at once."""
    limit, fake = concurrency()
    held, refused = sent(limit, 4), sent(limit, 2)

    assert limit.refused(refused[0], first=True) is None  # told once the four are answered
    assert limit.refused(refused[1], first=False) is None
    assert limit.limit == 8  # halved meanwhile

    for flight in held[:3]:
        limit.admitted(flight, fake.now)
        assert limit.verdict(fake.now) is None
    limit.admitted(held[3], fake.now)
    assert limit.verdict(fake.now) is True
    assert limit.limit == 4
    for _ in range(100):  # successes do not raise it past the ceiling
        limit.admitted(limit.send(), fake.now)
    assert limit.limit == 4


def test_requests_ahead_that_were_refused_too_are_not_counted_as_held() -> None:
    limit, fake = concurrency()
    sent(limit, 3)  # held, not answered yet
    refused = sent(limit, 5)
    for flight in refused:  # sent after the three held ones, refused in any order
        limit.refused(flight, first=flight is refused[0])

    assert limit.verdict(fake.now, force=True) is True  # the three in flight count as held
    assert limit.limit == 3


def test_a_refusal_with_one_other_in_flight_is_the_rates() -> None:
    """A rate with no burst (GCRA) refuses the second of two sent together: no ceiling of 1."""
    limit, fake = concurrency()
    first, second = sent(limit, 2)

    assert limit.refused(second, first=True) is False
    limit.admitted(first, fake.now)

    assert limit.limit == 8  # halved once, then free to grow back to every worker
    for _ in range(200):
        limit.admitted(limit.send(), fake.now)
    assert limit.limit == 16


def test_a_refusal_with_fewer_in_flight_than_the_api_once_admitted_together_is_the_rates() -> None:
    limit, fake = concurrency()
    together = sent(limit, 5)
    for flight in together:
        limit.admitted(flight, fake.now)
        limit.land(flight)
    three, refused = sent(limit, 3), limit.send()

    assert limit.refused(refused, first=True) is False
    limit.admitted(three[0], fake.now)
    assert limit.verdict(fake.now, force=True) is None  # nothing left to explain
    assert limit.limit == 8


def test_a_cool_down_halves_no_lower_than_the_pace_needs_unless_under_a_ceiling() -> None:
    """With a rate known, the pace holds requests back: halving those in flight below what it
    needs would slow it further at each refusal. A limit on requests in flight still wins."""
    limit, _ = concurrency()
    for _ in range(4):
        limit.refused(limit.send(), first=True, least=3)
    assert limit.limit == 3

    limit.told(2)  # the API states 2 at once: its ceiling
    limit.refused(limit.send(), first=True, least=3)
    assert limit.limit == 2


def test_a_success_raises_the_limit_at_once_to_what_the_pace_needs() -> None:
    """Answers that take long need many in flight for a pace the throttle keeps: one more per
    round trip took 18 s to reach 16 in flight for 10/s at 1.6 s an answer. Paced, more in
    flight adds no load; a queued answer (the API's own pace sets when answers come), the
    workers and a ceiling still bound it."""
    limit, fake = concurrency()
    for _ in range(3):
        limit.refused(limit.send(), first=True)
    assert limit.limit == 2

    limit.admitted(limit.send(), fake.clock(), queued=True, least=12)
    assert limit.limit == 2
    limit.admitted(limit.send(), fake.clock(), least=12)
    assert limit.limit == 12
    limit.admitted(limit.send(), fake.clock(), least=40)
    assert limit.limit == 16

    limit.told(5)
    limit.admitted(limit.send(), fake.clock(), least=12)
    assert limit.limit == 5


def refused_past(limit: Concurrency, fake: FakeTime, most: int) -> None:
    """`most` requests in flight, all admitted, and one more refused at once: a limit on
    requests in flight of `most`, told as such."""
    held, refused = sent(limit, most), limit.send()
    limit.refused(refused, first=True)
    for flight in held:
        limit.admitted(flight, fake.now)
    assert limit.verdict(fake.now) is True
    for flight in [*held, refused]:
        limit.land(flight)


def test_a_ceiling_is_forgotten_a_step_at_a_time() -> None:
    limit, fake = concurrency()
    refused_past(limit, fake, 4)

    fake.now += 31  # past the memory of the refusal
    for _ in range(50):
        limit.admitted(limit.send(), fake.now)

    assert limit.limit == 5


def test_each_growth_of_a_ceiling_refused_makes_the_next_wait_twice_as_long() -> None:
    """An API that holds four at once, its ceiling probed after 30 s of quiet: refused again
    at five, the next probe waits 60 s, then 120 s (each costs a pause for every worker; a
    queueing limiter probed every 30 s cost 1.6% of a long run)."""
    limit, fake = concurrency()

    def refused_past_four() -> None:
        refused_past(limit, fake, 4)

    def grown_after(seconds: float) -> int:
        fake.now += seconds
        for _ in range(50):
            flight = limit.send()
            limit.admitted(flight, fake.now)
            limit.land(flight)
        return limit.limit

    refused_past_four()
    assert grown_after(31) == 5
    refused_past_four()
    assert grown_after(31) == 4
    assert grown_after(30) == 5
    refused_past_four()
    assert grown_after(61) == 4
    assert grown_after(60) == 5
    assert grown_after(121) == 6  # not refused: kept, and the memory stays 120 s
    fake.now += 3600
    refused_past_four()  # long after: the API's limit came down, no growth of the ceiling's
    assert grown_after(121) == 5
    for wait in (240, 480, 600, 600):  # refused again each time: 600 s at most
        refused_past_four()
        assert grown_after(wait - 1) == 4
        assert grown_after(1) == 5


def test_a_ceiling_grows_on_an_answer_that_did_not_wait_in_a_queue() -> None:
    """A queueing limiter (nginx `limit_req`) answers at its own pace whatever is in flight:
    while its answers wait, one more in flight only draws a refusal past its queue (a pause for
    every worker, a whole second), so the ceiling grows once an answer comes back unqueued."""
    limit, fake = concurrency()
    refused_past(limit, fake, 4)

    fake.now += 31
    for _ in range(50):
        limit.admitted(limit.send(), fake.now, queued=True)
    assert limit.limit == 4

    limit.admitted(limit.send(), fake.now)
    for _ in range(50):
        limit.admitted(limit.send(), fake.now, queued=True)
    assert limit.limit == 5


def test_not_adaptive_never_sets_a_ceiling() -> None:
    limit, fake = concurrency(adaptive=False)
    held, refused = sent(limit, 4), limit.send()

    assert limit.refused(refused, first=True) is False
    limit.admitted(held[0], fake.now)

    assert limit.limit == 16


def test_answered_flights_let_go_of_those_ahead() -> None:
    """Each flight holds those sent before it only while in flight: no chain keeps a run's."""
    limit, _ = concurrency()
    flights = sent(limit, 3)
    for flight in flights:
        limit.land(flight)

    assert all(flight.ahead == [] for flight in flights)


def test_a_request_that_got_no_answer_does_not_hold_a_verdict_back() -> None:
    limit, fake = concurrency()
    held, lost, refused = sent(limit, 2), limit.send(), limit.send()
    limit.refused(refused, first=True)
    for flight in held:
        limit.admitted(flight, fake.now)
    assert limit.verdict(fake.now) is None  # one is still in flight

    limit.land(lost)  # it timed out: no answer

    assert limit.verdict(fake.now) is True
    assert limit.limit == 2


def cool_down_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("cool-down")]


async def test_a_limit_on_requests_in_flight_teaches_the_throttle_no_rate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nor is its cool-down's line told before the answers that tell what refused it."""
    caplog.set_level(logging.INFO, logger="harvester")
    fake = FakeTime()
    throttle = throttle_on(fake)
    async with contextlib.AsyncExitStack() as stack:
        held = [await stack.enter_async_context(throttle.request()) for _ in range(4)]
        refused = [await stack.enter_async_context(throttle.request()) for _ in range(4)]
        for ticket in refused:
            ticket.observe(429, {"Retry-After": "1"})
        assert cool_down_lines(caplog) == []
        fake.now += 0.05
        for ticket in held:
            ticket.observe(200, {})
        assert cool_down_lines(caplog) == [
            "cool-down: 429 Too Many Requests, every worker waits 1.0 s; rate not set, "
            "8 workers at once"
        ]

    assert throttle.rate is None
    assert throttle.limit == 4


async def test_a_cool_downs_line_is_told_when_those_in_flight_end_unanswered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Requests in flight with a refusal that time out, or are cancelled as the run ends, tell
    it as an answer would: the line is not lost."""
    caplog.set_level(logging.INFO, logger="harvester")
    fake = FakeTime()
    throttle = throttle_on(fake)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(2):
            await stack.enter_async_context(throttle.request())
        refused = await stack.enter_async_context(throttle.request())
        refused.observe(429, {"Retry-After": "1"})
        assert cool_down_lines(caplog) == []
    assert len(cool_down_lines(caplog)) == 1


async def test_a_refusal_is_learned_once_those_in_flight_tell_it_was_the_rates() -> None:
    """While others are in flight, a refusal may be a limit on requests in flight's; the rate
    learns of it once their answers tell it was not."""
    fake = FakeTime()
    throttle = throttle_on(fake)
    for _ in range(5):  # one at a time, 50 ms each: a sequential pace of 20/s
        async with throttle.request() as ticket:
            fake.now += 0.05
            ticket.observe(200, {})
    async with contextlib.AsyncExitStack() as stack:
        # Two in flight, a third refused: perhaps an API that holds two at once.
        ahead = [await stack.enter_async_context(throttle.request()) for _ in range(2)]
        refused = await stack.enter_async_context(throttle.request())
        refused.observe(429, {"Retry-After": "1"})
        assert throttle.rate is None  # not yet told
        ahead[1].observe(429, {"Retry-After": "1"})  # refused too: it held one, not two
        fake.now += 0.05
        ahead[0].observe(200, {})

    # One held, not two: the rate's. It starts at the sequential pace (5 admitted tell none).
    assert throttle.rate == pytest.approx(20, rel=0.05)
    assert throttle.limit == 8


async def test_many_in_flight_wait_for_a_place() -> None:
    limit, _ = concurrency(workers=2)
    entered = 0

    async def one() -> None:
        nonlocal entered
        await limit.enter()
        entered += 1

    tasks = [asyncio.create_task(one()) for _ in range(3)]
    for _ in range(10):
        await asyncio.sleep(0)
    assert entered == 2
    await limit.leave()
    await asyncio.gather(*tasks)
    assert entered == 3


async def test_a_retry_takes_the_next_place_before_first_attempts_waiting() -> None:
    """A retried page holds the reorder window back until it is written: the next place is
    its, ahead of first attempts that waited longer (turn.py)."""
    limit, _ = concurrency(2)
    order: list[str] = []
    await limit.enter()
    await limit.enter()  # both places taken

    async def take(name: str, again: bool) -> None:
        await limit.enter(again=again)
        order.append(name)

    waiting = [asyncio.create_task(take("first attempt", False))]
    await asyncio.sleep(0)
    waiting.append(asyncio.create_task(take("retry", True)))
    await asyncio.sleep(0)
    await limit.leave()
    await asyncio.sleep(0)
    assert order == ["retry"]
    await limit.leave()
    await asyncio.gather(*waiting)
    assert order == ["retry", "first attempt"]
