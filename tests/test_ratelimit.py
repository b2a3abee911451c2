"""Throttle (cool-down, AIMD concurrency, rate, learned rate) on a fake clock; parse_rate_limit."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import logging
import math
import time
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from harvester.config import ConcurrencyConfig
from harvester.ratelimit import RateLimitInfo, Throttle, parse_rate_limit
from harvester.stats import Stats
from tests.conftest import FakeTime

T0 = 1000.0  # FakeTime's starting point


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def throttle_on(
    fake: FakeTime,
    *,
    max_pause: float = 600.0,
    hold_long: bool = False,
    **concurrency: object,
) -> tuple[Throttle, Stats]:
    stats = Stats()
    config = ConcurrencyConfig(**concurrency)  # type: ignore[arg-type]
    throttle = Throttle(
        config,
        stats,
        clock=fake.clock,
        sleep=fake.sleep,
        max_pause=max_pause,
        hold_long=hold_long,
        slow_start=False,  # the first wave at full width (slow start: test_slow_start.py)
    )
    return throttle, stats


def headers(**values: str) -> CIMultiDict[str]:
    """Response headers; `Retry_After="5"` becomes `Retry-After: 5`."""
    return CIMultiDict({name.replace("_", "-"): value for name, value in values.items()})


async def answer(throttle: Throttle, status: int, **values: str) -> None:
    """One request through the throttle, answered with `status` and these headers."""
    async with throttle.request() as ticket:
        ticket.observe(status, headers(**values))


async def admitted_at(throttle: Throttle, fake: FakeTime, *, counted: bool = True) -> float:
    """The fake time at which one request is let through."""
    async with throttle.request(counted=counted):
        return fake.now


async def admit_all(throttle: Throttle, fake: FakeTime, n: int) -> list[float]:
    return list(await asyncio.gather(*(admitted_at(throttle, fake) for _ in range(n))))


# --- the cool-down ---------------------------------------------------------------------------


async def test_429_with_retry_after_holds_every_later_request(fake: FakeTime) -> None:
    throttle, stats = throttle_on(fake, workers=8)
    await answer(throttle, 429, Retry_After="5")

    times = await admit_all(throttle, fake, 6)

    assert times == [pytest.approx(T0 + 5)] * 6
    assert stats.cool_downs == 1
    assert stats.cool_down_seconds == pytest.approx(5)


async def test_requests_queued_for_a_place_are_held_by_a_cool_down_that_began_meanwhile(
    fake: FakeTime,
) -> None:
    throttle, _ = throttle_on(fake, workers=1, adaptive=False)
    async with throttle.request() as ticket:
        waiting = [asyncio.create_task(admitted_at(throttle, fake)) for _ in range(3)]
        await asyncio.sleep(0)  # they start, and queue for the one place
        ticket.observe(429, headers(Retry_After="5"))

    times = await asyncio.gather(*waiting)

    assert min(times) >= T0 + 5


async def test_503_with_retry_after_holds_every_request(fake: FakeTime) -> None:
    throttle, stats = throttle_on(fake, workers=4)
    await answer(throttle, 503, Retry_After="5")

    assert min(await admit_all(throttle, fake, 4)) >= T0 + 5
    assert stats.cool_downs == 1


async def untold_pauses(throttle: Throttle, fake: FakeTime, n: int) -> list[float]:
    """The pauses of `n` refusals without Retry-After, one after another, nothing through."""
    pauses = []
    for _ in range(n):
        await answer(throttle, 429)
        start = fake.now
        await admitted_at(throttle, fake)
        pauses.append(fake.now - start)
    return pauses


async def test_503_without_retry_after_pauses_briefly_as_a_429_without_one(
    fake: FakeTime,
) -> None:
    """nginx's limit_req answers 503 with no Retry-After; an overloaded server too. Both want
    fewer requests: a short pause for every worker, then on."""
    throttle, stats = throttle_on(fake, workers=4)
    await answer(throttle, 503)

    assert await admit_all(throttle, fake, 4) == [T0 + 0.25] * 4
    assert stats.cool_downs == 1


async def test_refusals_without_retry_after_and_nothing_through_pause_twice_as_long(
    fake: FakeTime,
) -> None:
    throttle, _ = throttle_on(fake, workers=4)
    pauses = await untold_pauses(throttle, fake, 4)

    assert pauses == pytest.approx([0.25, 0.5, 1.0, 2.0])


async def test_refusals_without_retry_after_probe_a_spent_window_every_4_s_at_most(
    fake: FakeTime,
) -> None:
    """Nothing says when a spent window ends: probed often enough to find its end within 4 s
    (one request a probe), not at 16 s, then 32 s, from its start."""
    throttle, _ = throttle_on(fake, workers=4)
    pauses = await untold_pauses(throttle, fake, 8)

    assert pauses == pytest.approx([0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0])


async def test_a_spent_window_at_a_fast_rate_pauses_from_a_quarter_second_up(
    fake: FakeTime,
) -> None:
    """A fast rate makes the first pause short (two intervals); while nothing gets through (a
    long window is spent), the pauses double from a quarter of a second, not from those few
    milliseconds: a 60 s window costs ten refusals, not thirty."""
    throttle, _ = throttle_on(fake, workers=4, rate_limit=500.0)
    pauses = await untold_pauses(throttle, fake, 4)

    assert pauses == pytest.approx([0.004, 0.25, 0.5, 1.0])


async def test_a_window_spent_again_is_probed_from_a_quarter_of_its_last_spent_stretch(
    fake: FakeTime,
) -> None:
    """A long window spent once (no Retry-After, no headers) is spent alike again: the next
    stretch of refusals starts its probes from a quarter of the last one's length, not from a
    quarter of a second, so each window costs a few refusals, not ten."""
    throttle, _ = throttle_on(fake, workers=4, rate_limit=500.0)
    first = await untold_pauses(throttle, fake, 7)  # 0.004 + 0.25 + 0.5 + 1 + 2 + 4 + 4 s
    await answer(throttle, 200)  # sent after the stretch began: the window is back
    stretch = fake.now - (T0 + 0.002)  # from the first refusal (its slot) to this success

    again = await untold_pauses(throttle, fake, 3)

    assert first == pytest.approx([0.004, 0.25, 0.5, 1.0, 2.0, 4.0, 4.0])
    assert again == pytest.approx([0.004, stretch / 4, 4.0], rel=0.01)


async def test_retry_after_beyond_max_pause_is_not_held(fake: FakeTime) -> None:
    throttle, stats = throttle_on(fake, workers=4, max_pause=60)
    await answer(throttle, 429, Retry_After="120")

    assert await admit_all(throttle, fake, 3) == [T0] * 3
    assert stats.cool_down_seconds == 0


async def test_a_long_quota_is_held_with_its_reset_told_where_the_run_waits(
    fake: FakeTime,
) -> None:
    throttle, stats = throttle_on(fake, max_pause=60.0, hold_long=True)
    before = time.time()

    await answer(throttle, 429, Retry_After="3600")

    assert await admitted_at(throttle, fake) == T0 + 3600
    assert stats.quota_reset_at is not None
    assert before + 3600 <= stats.quota_reset_at <= time.time() + 3600


async def test_a_long_reset_in_headers_is_held_too(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, max_pause=60.0, hold_long=True)

    await answer(throttle, 200, X_RateLimit_Remaining="0", X_RateLimit_Reset="1800")

    assert await admitted_at(throttle, fake) == T0 + 1800


async def test_overlapping_cool_downs_extend_to_the_later_end_never_shorten(
    fake: FakeTime,
) -> None:
    # Not adaptive: the three tickets held open must leave room for a fourth request.
    throttle, stats = throttle_on(fake, workers=4, adaptive=False)
    async with contextlib.AsyncExitStack() as stack:
        first, second, third = [await stack.enter_async_context(throttle.request()) for _ in "abc"]
        first.observe(429, headers(Retry_After="5"))  # until T0 + 5
        fake.now = T0 + 2
        second.observe(429, headers(Retry_After="1"))  # until T0 + 3: not shorter
        assert await admitted_at(throttle, fake) == pytest.approx(T0 + 5)
        fake.now = T0 + 6
        third.observe(429, headers(Retry_After="10"))  # until T0 + 16: longer
    assert await admitted_at(throttle, fake) == pytest.approx(T0 + 16)
    assert stats.cool_down_seconds == pytest.approx(5 + 10)


async def test_remaining_zero_holds_requests_until_the_reset(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=4)
    await answer(throttle, 200, RateLimit_Limit="50", RateLimit_Remaining="0", RateLimit_Reset="3")

    assert min(await admit_all(throttle, fake, 3)) == pytest.approx(T0 + 3)


async def test_remaining_zero_with_an_epoch_reset_holds_for_the_delay(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=4)
    reset = math.ceil(time.time()) + 3  # GitHub style: the Unix time when the budget is back
    await answer(throttle, 200, X_RateLimit_Remaining="0", X_RateLimit_Reset=str(reset))

    assert await admitted_at(throttle, fake) == pytest.approx(T0 + 3, abs=1)


async def test_a_refusal_with_retry_after_0_is_held_until_the_reset_read_with_it(
    fake: FakeTime,
) -> None:
    """Flask-Limiter truncates its Retry-After to whole seconds: "0" for a window that ends
    within the second. Its X-RateLimit-Reset then tells when: every worker waits for it."""
    throttle, _ = throttle_on(fake, workers=4)
    reset = math.ceil(time.time()) + 1
    await answer(
        throttle, 429, Retry_After="0", X_RateLimit_Remaining="0", X_RateLimit_Reset=str(reset)
    )

    assert await admitted_at(throttle, fake) == pytest.approx(T0 + reset - time.time(), abs=0.1)


@pytest.mark.parametrize(("remaining", "learns"), [("0", True), (None, False)])
async def test_retry_after_0_teaches_the_rate_only_where_nothing_remains(
    fake: FakeTime, remaining: str | None, learns: bool
) -> None:
    """Flask-Limiter's "Retry-After: 0" with nothing remaining is its window spent: the rate is
    learned from it, or a probe past the limit would be refused at every window from then on.
    A bare "0" asks for no pause: whatever refused the request, it was not the rate."""
    throttle, _ = throttle_on(fake, workers=8)
    await successes_at(throttle, fake, 80, 40)
    spent = {} if remaining is None else {"X_RateLimit_Remaining": remaining}
    reset = {} if remaining is None else {"X_RateLimit_Reset": str(math.ceil(time.time()) + 1)}

    await answer(throttle, 429, Retry_After="0", **spent, **reset)

    assert (throttle.rate is not None) is learns


async def test_a_refusals_retry_after_is_the_pause_not_a_later_reset_read_with_it(
    fake: FakeTime,
) -> None:
    """A sliding log as Flask-Limiter renders it: Retry-After 1, and X-RateLimit-Reset the Unix
    second after the oldest entry expires, so up to a second later. The Retry-After says when
    to come back; the reset, no sooner than the budget is back, says nothing against it."""
    throttle, stats = throttle_on(fake, workers=4)
    reset = math.ceil(time.time()) + 2
    await answer(
        throttle, 429, Retry_After="1", X_RateLimit_Remaining="0", X_RateLimit_Reset=str(reset)
    )

    assert await admitted_at(throttle, fake) == pytest.approx(T0 + 1)
    assert stats.cool_down_seconds == pytest.approx(1)


async def test_remaining_zero_under_a_stated_rate_holds_one_interval_not_the_rounded_reset(
    fake: FakeTime,
) -> None:
    throttle, _ = throttle_on(fake, workers=4)

    # A GCRA with a burst of 1 spends its one place on every answer, and rounds the 20 ms
    # until the next one up to a whole second.
    await answer(
        throttle, 200, RateLimit_Policy="50;w=1", RateLimit_Remaining="0", RateLimit_Reset="1"
    )

    assert throttle.rate is not None
    assert await admitted_at(throttle, fake) <= T0 + 1.0 / throttle.rate + 1e-9


async def test_remaining_zero_under_a_known_rate_keeps_queued_requests_in_their_places(
    fake: FakeTime,
) -> None:
    """`remaining: 0` under a known rate: no request goes sooner than one interval after the
    send that spent the last place. One already queued for the next slot keeps it, though the
    send lagged its own slot a little, as sends do in a real event loop (a hold there sent it
    behind every other queued request: against GCRA, the real matrix's pace halved)."""
    throttle, _ = throttle_on(fake, workers=4, rate_limit=10.0)
    async with throttle.request() as first:
        first.sent = T0 + 0.01  # it left 10 ms after its slot
        second = asyncio.create_task(admitted_at(throttle, fake))
        await asyncio.sleep(0)  # the second has taken the next slot, T0 + 0.1, and waits
        first.observe(200, headers(X_RateLimit_Remaining="0", X_RateLimit_Reset="1"))

    assert await second == pytest.approx(T0 + 0.1)
    assert await admitted_at(throttle, fake) == pytest.approx(T0 + 0.2)


async def test_remaining_above_zero_does_not_pause(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=4)
    await answer(throttle, 200, RateLimit_Remaining="1", RateLimit_Reset="3")

    assert await admitted_at(throttle, fake) == T0


# --- AIMD concurrency ------------------------------------------------------------------------


async def test_limit_starts_at_workers(fake: FakeTime) -> None:
    throttle, stats = throttle_on(fake, workers=16)

    assert throttle.limit == stats.concurrency_limit == 16


async def test_a_burst_of_429s_from_one_episode_halves_the_limit_once(fake: FakeTime) -> None:
    throttle, stats = throttle_on(fake, workers=16)
    async with contextlib.AsyncExitStack() as stack:
        tickets = [await stack.enter_async_context(throttle.request()) for _ in range(16)]
        for ticket in tickets:
            ticket.observe(429, headers())

    assert throttle.limit == stats.concurrency_limit == 8
    assert stats.cool_downs == 1

    await answer(throttle, 429)  # sent after the episode began: a new one

    assert throttle.limit == stats.concurrency_limit == 4
    assert stats.cool_downs == 2


async def test_successes_raise_the_limit_by_one_per_round(fake: FakeTime) -> None:
    throttle, stats = throttle_on(fake, workers=16)
    await answer(throttle, 429)
    assert throttle.limit == 8

    for _ in range(7):
        await answer(throttle, 200)
    assert throttle.limit == 8
    await answer(throttle, 200)
    assert throttle.limit == stats.concurrency_limit == 9

    for _ in range(9):
        await answer(throttle, 200)
    assert throttle.limit == stats.concurrency_limit == 10


async def test_the_limit_stays_between_1_and_workers(fake: FakeTime) -> None:
    throttle, stats = throttle_on(fake, workers=4)
    for _ in range(100):
        await answer(throttle, 200)
    assert throttle.limit == 4

    seen = []
    for _ in range(5):
        await answer(throttle, 429)
        seen.append(throttle.limit)
    assert seen == [2, 1, 1, 1, 1]
    assert stats.concurrency_limit == 1

    for _ in range(100):
        await answer(throttle, 200)
    assert throttle.limit == stats.concurrency_limit == 4


async def test_not_adaptive_never_changes_the_limit(fake: FakeTime) -> None:
    throttle, stats = throttle_on(fake, workers=8, adaptive=False)
    for _ in range(3):
        await answer(throttle, 429)
    assert throttle.limit == stats.concurrency_limit == 8
    assert stats.cool_downs == 3  # the cool-down itself still counts
    for _ in range(20):
        await answer(throttle, 200)
    assert throttle.limit == 8


async def max_in_flight(throttle: Throttle, tasks: int) -> int:
    """Start `tasks` requests at once, each yielding while it holds its place; the most at once."""
    in_flight = most = 0

    async def one() -> None:
        nonlocal in_flight, most
        async with throttle.request():
            in_flight += 1
            most = max(most, in_flight)
            for _ in range(3):
                await asyncio.sleep(0)  # the request "runs": others get their turn
            in_flight -= 1

    await asyncio.gather(*(one() for _ in range(tasks)))
    return most


async def test_the_limit_bounds_requests_in_flight(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=3)

    assert await max_in_flight(throttle, 12) == 3


async def test_a_halved_limit_bounds_requests_in_flight(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=8)
    await answer(throttle, 429)
    assert throttle.limit == 4

    assert await max_in_flight(throttle, 20) <= 5  # 4, and perhaps one more as it grows back


@pytest.mark.parametrize(
    "told",
    [
        {"X_RateLimit_Limit": "4", "X_RateLimit_Remaining": "3"},
        {"RateLimit": "limit=4, remaining=3"},
    ],
    ids=["x", "ietf"],
)
async def test_a_limit_with_no_reset_nor_window_bounds_requests_in_flight(
    fake: FakeTime, told: dict[str, str]
) -> None:
    """A limit and what remains, and no time when it comes back: a limit on requests in flight.
    Read from the first page, it bounds the fan-out before any refusal, and stays."""
    throttle, stats = throttle_on(fake, workers=16)
    await answer(throttle, 200, **told)

    assert throttle.limit == stats.concurrency_limit == 4
    assert await max_in_flight(throttle, 40) == 4
    fake.now += 3600.0  # past the memory of a refusal's ceiling: a stated one is not forgotten
    for _ in range(100):
        await answer(throttle, 200, **told)
    assert throttle.limit == 4


async def test_a_limit_with_a_reset_is_no_limit_on_requests_in_flight(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=16)
    await answer(
        throttle, 200, X_RateLimit_Limit="4", X_RateLimit_Remaining="3", X_RateLimit_Reset="1"
    )

    assert throttle.limit == 16


async def test_token_requests_do_not_take_a_place(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=1)
    async with throttle.request():
        # The one place is taken; a token request still goes.
        assert await asyncio.wait_for(admitted_at(throttle, fake, counted=False), 1) == T0


# --- the rate --------------------------------------------------------------------------------


async def test_rate_limit_spaces_requests_evenly(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=8, rate_limit=10, burst=1)

    times = [await admitted_at(throttle, fake) for _ in range(6)]

    assert times == pytest.approx([T0 + 0.1 * i for i in range(6)])


async def test_rate_limit_holds_concurrent_requests_to_the_rate(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=8, rate_limit=10, burst=1)

    await admit_all(throttle, fake, 8)

    # Eight requests at 10/s: the first at once, the last 0.7 s later, never sooner.
    assert fake.now == pytest.approx(T0 + 0.7)


async def test_a_retry_takes_the_next_slot_ahead_of_first_attempts(fake: FakeTime) -> None:
    """Five first attempts queue for slots at 10/s; a retry that comes after them goes at the
    next slot free (page 1 already waits in its own), not behind them all: the page it
    refetches holds the ordered output back."""
    throttle, _ = throttle_on(fake, workers=8, rate_limit=10, burst=1)
    order: list[str] = []

    async def send(name: str, again: bool) -> None:
        async with throttle.request(again=again):
            order.append(name)

    # Tasks run in the order they are made: page 0 goes at once, page 1 waits in its slot,
    # pages 2-4 wait for their turn, and then comes the retry.
    first = [asyncio.create_task(send(f"page {i}", False)) for i in range(5)]
    retry = asyncio.create_task(send("retry", True))
    await asyncio.gather(*first, retry)

    assert order == ["page 0", "page 1", "retry", "page 2", "page 3", "page 4"]


async def test_burst_lets_the_first_requests_go_at_once(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=8, rate_limit=10, burst=5)

    times = [await admitted_at(throttle, fake) for _ in range(8)]

    assert times == pytest.approx([T0] * 5 + [T0 + 0.1, T0 + 0.2, T0 + 0.3])


async def test_burst_comes_back_after_idle_time(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=8, rate_limit=10, burst=3)
    for _ in range(6):
        await admitted_at(throttle, fake)
    fake.now += 10

    times = [await admitted_at(throttle, fake) for _ in range(4)]

    assert times == pytest.approx([fake.now - 0.1] * 3 + [fake.now])


async def test_token_requests_share_the_rate(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=8, rate_limit=10, burst=1)

    times = [await admitted_at(throttle, fake, counted=i % 2 == 0) for i in range(6)]

    assert times == pytest.approx([T0 + 0.1 * i for i in range(6)])


async def test_a_fixed_rate_is_not_changed_by_429s_or_headers(fake: FakeTime) -> None:
    throttle, stats = throttle_on(fake, workers=8, rate_limit=10)
    for _ in range(20):
        await answer(throttle, 200)
    await answer(throttle, 429, Retry_After="1", RateLimit_Policy="2;w=1")

    assert throttle.rate == stats.rate_limit == 10


class SteppedTime:
    """A clock the test moves by hand: a sleeper wakes once the clock has passed its deadline.

    FakeTime moves its clock at each sleep, which is exact for one sleeper at a time; this one
    keeps concurrent sleepers apart, to see when each is let through.
    """

    def __init__(self) -> None:
        self.now = T0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + seconds, woken))
        await woken

    async def run(self, tasks: list[asyncio.Task[float]]) -> list[float]:
        """Move the clock from deadline to deadline until every task is done."""
        while not all(task.done() for task in tasks):
            # Let every task run on until it sleeps, waits for its turn behind a sleeper, or
            # finishes (nothing else can hold it).
            for _ in range(100):
                await asyncio.sleep(0)
            if not all(task.done() for task in tasks):
                assert self._sleepers, "a task neither slept, waited its turn, nor finished"
                deadline = min(d for d, _ in self._sleepers)
                self.now = max(self.now, deadline)
                for sleeper in [s for s in self._sleepers if s[0] <= self.now]:
                    self._sleepers.remove(sleeper)
                    sleeper[1].set_result(None)
        return [task.result() for task in tasks]


@pytest.mark.parametrize(
    "queued",
    [
        pytest.param(4, id="slots-within-the-cool-down"),
        pytest.param(20, id="slots-past-its-end"),
    ],
)
async def test_requests_queued_for_the_rate_stay_spaced_after_a_cool_down(queued: int) -> None:
    stepped = SteppedTime()
    config = ConcurrencyConfig(workers=32, rate_limit=10, burst=1, adaptive=False)
    throttle = Throttle(config, Stats(), clock=stepped.clock, sleep=stepped.sleep)

    async def admitted() -> float:
        async with throttle.request():
            return stepped.now

    async with throttle.request() as first:  # at T0; the next slots are T0 + 0.1, + 0.2, ...
        tasks = [asyncio.create_task(admitted()) for _ in range(queued)]
        await asyncio.sleep(0)  # they reserve their slots and sleep
        first.observe(429, headers(Retry_After="1"))  # a cool-down until T0 + 1
    times = sorted(await stepped.run(tasks))

    assert times[0] >= T0 + 1
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.1 - 1e-9, times


async def late_wake_times(burst: int) -> list[float]:
    """Five requests at 10/s; the second one's worker wakes 60 ms after its slot."""
    stepped = SteppedTime()
    late = iter([0.06])  # the first to sleep (the second request) wakes 60 ms after its slot

    async def sleep(seconds: float) -> None:
        await stepped.sleep(seconds + next(late, 0.0))

    config = ConcurrencyConfig(workers=8, rate_limit=10, burst=burst, adaptive=False)
    throttle = Throttle(config, Stats(), clock=stepped.clock, sleep=sleep)

    async def admitted() -> float:
        async with throttle.request():
            return stepped.now

    return sorted(await stepped.run([asyncio.create_task(admitted()) for _ in range(5)]))


async def test_a_worker_woken_late_does_not_pull_the_next_one_much_closer() -> None:
    """A busy loop wakes a worker after its slot: the next makes up the lag, but no closer to
    it than 90% of an interval, or the two would reach a rate with no burst (GCRA) together."""
    times = await late_wake_times(burst=1)

    # 0, 0.16, then 90 ms apart until the lag is made up: 10 ms a slot.
    assert times == pytest.approx([T0, T0 + 0.16, T0 + 0.25, T0 + 0.34, T0 + 0.43])


async def test_with_a_burst_a_late_wake_is_made_up_as_the_burst_allows() -> None:
    times = await late_wake_times(burst=2)

    # Two at once, the third late (its slot was T0 + 0.1), then back on the schedule at once.
    assert times == pytest.approx([T0, T0, T0 + 0.16, T0 + 0.2, T0 + 0.3])


# --- the learned rate ------------------------------------------------------------------------


async def successes_at(throttle: Throttle, fake: FakeTime, per_second: float, n: int) -> None:
    """n successful requests, one every 1/per_second seconds of fake time."""
    for _ in range(n):
        fake.now += 1 / per_second
        await answer(throttle, 200)


async def test_a_429_sets_the_rate_the_api_bore_over_the_run_and_its_pause(
    fake: FakeTime,
) -> None:
    throttle, stats = throttle_on(fake, workers=8)
    assert throttle.rate is None
    await successes_at(throttle, fake, 20, 40)  # 20/s for two seconds, answered at once

    await answer(throttle, 429, Retry_After="1")

    # 40 admitted from the first request (sent at 50 ms) over the 1.95 s since and the 1 s
    # asked for: 13.6/s when the pause ends, and the rate ramps up from there (rate_learning).
    fake.now = T0 + 3
    assert throttle.rate == pytest.approx(40 / 2.95, rel=0.01)
    assert stats.rate_limit == pytest.approx(40 / 2.95, abs=0.01)


async def test_a_cool_downs_line_tells_the_rate_it_leads_to(
    fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    """One INFO line per cool-down, with the rate learned from it: told once the learner has
    heard of the refusal, when the requests in flight with it have been answered."""
    caplog.set_level(logging.INFO, logger="harvester")
    throttle, _ = throttle_on(fake, workers=8)
    await successes_at(throttle, fake, 20, 40)

    def cool_downs() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("cool-down")]

    async with throttle.request() as in_flight:
        await answer(throttle, 429, Retry_After="1")
        assert cool_downs() == []  # not heard yet: one request in flight with it
        in_flight.observe(200, headers())

    assert throttle.rate == pytest.approx(41 / 2.95, rel=0.02)  # the one in flight admitted too
    assert cool_downs() == [
        f"cool-down: 429 Too Many Requests, every worker waits 1.0 s; rate {throttle.rate:.2f}/s, "
        f"{throttle.limit} workers at once"
    ]


@pytest.mark.parametrize(
    ("retry_after", "rate"),
    [
        ("1", 0.97 * 40),
        ("1.000", 40 / (1.5 - 1 / 80)),
        (email.utils.formatdate(T0 + 1.5), 0.97 * 40),
    ],
)
async def test_a_retry_after_in_whole_seconds_is_read_as_rounded_up(
    fake: FakeTime, retry_after: str, rate: float
) -> None:
    """A short window's 40, spent in 0.45 s: `Retry-After: 1` (or an HTTP-date) is rounded up,
    by up to a second, so the window is counted a second shorter, no less than one; a
    fractional one is exact."""
    throttle, _ = throttle_on(fake, workers=8)
    await successes_at(throttle, fake, 80, 40)  # 40 in 0.5 s, the first sent at 12.5 ms

    class Now(datetime.datetime):  # the HTTP-date is read against the fake clock
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> Now:  # type: ignore[override]
            return cls.fromtimestamp(fake.now, tz)

    with mock.patch("harvester.retry.datetime", Now):
        await answer(throttle, 429, Retry_After=retry_after)

    assert throttle.rate == pytest.approx(rate, rel=0.02)


async def test_a_learned_rate_spaces_the_requests_after_the_cool_down(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=8)
    await successes_at(throttle, fake, 20, 40)
    await answer(throttle, 429, Retry_After="1")
    resumed = fake.now + 1

    times = [await admitted_at(throttle, fake) for _ in range(5)]

    assert times[0] >= resumed
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    # About 1/13.3 s apart: the ramp (doubling each second) shortens them a little.
    assert all(0.06 < gap <= 0.076 for gap in gaps), gaps


async def test_a_429_storm_lowers_the_rate_once_not_at_every_429(fake: FakeTime) -> None:
    """The 429s of a storm come with no success between them: after the first, they tell
    nothing new about the rate the API bears, and must not drive it down and down."""
    throttle, _ = throttle_on(fake, workers=8)
    await successes_at(throttle, fake, 20, 40)
    await answer(throttle, 429, Retry_After="1")
    fake.now += 1
    await successes_at(throttle, fake, 6, 12)
    await answer(throttle, 429, Retry_After="0.2")  # learned from the 2 s since the pause
    learned = throttle.rate
    for _ in range(10):
        fake.now += 0.2
        await answer(throttle, 429, Retry_After="0.2")

    assert learned == pytest.approx(0.97 * 6, rel=0.05)
    assert throttle.rate == pytest.approx(learned, rel=0.01)


async def test_a_later_429_learns_from_the_successes_since_the_last_pause(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=8)
    await successes_at(throttle, fake, 20, 40)
    await answer(throttle, 429, Retry_After="1")  # 13.3/s, ramping
    fake.now += 1
    await successes_at(throttle, fake, 6, 12)  # then the API bears only 6/s

    await answer(throttle, 429, Retry_After="5")

    # 12 successes in the 2 s since the pause ended, not spread over the 5 s asked for.
    assert throttle.rate == pytest.approx(0.97 * 6, rel=0.05)


async def test_the_first_429_starts_the_rate_no_lower_than_a_sequential_client(
    fake: FakeTime,
) -> None:
    throttle, _ = throttle_on(fake, workers=8)
    for _ in range(5):  # a burst of 5, each answered in 50 ms
        async with throttle.request() as ticket:
            fake.now += 0.05
            ticket.observe(200, headers())

    await answer(throttle, 429, Retry_After="1")

    fake.now += 1
    assert throttle.rate == pytest.approx(1 / 0.05, rel=0.01)  # not 5 over 1.25 s


@pytest.mark.parametrize(
    ("burst", "apart", "strict"),
    [(1, 0.0, True), (2, 0.0, False), (5, 0.0, False), (2, 0.02, True), (3, 0.002, False)],
)
async def test_an_api_that_admitted_no_burst_is_paced_a_whole_interval_apart(
    fake: FakeTime, burst: int, apart: float, strict: bool
) -> None:
    """The first refusal came after one request admitted, or a few sent one at a time (a GCRA
    with no burst, which refuses any two closer than its interval; against GCRA 50/s the first
    wave admits two, 20 ms apart): a request woken late is no longer made up for by the next
    (pacing.py). After a burst of two or more sent together (closer than a quarter of the
    API's time), it is."""
    throttle, _ = throttle_on(fake, workers=8)
    async with contextlib.AsyncExitStack() as stack:
        refused = await stack.enter_async_context(throttle.request())  # sent with the first
        tickets = []
        for _ in range(burst):
            tickets.append(await stack.enter_async_context(throttle.request()))
            fake.now += apart
        fake.now += 0.02
        for ticket in tickets:
            ticket.observe(200, headers())
        refused.observe(429, headers(Retry_After="1"))

    assert throttle._pacer.strict is strict


async def test_a_token_request_sent_with_the_first_wave_is_no_part_of_its_spacing(
    fake: FakeTime,
) -> None:
    """A GCRA's first wave: two data requests sent together, one admitted, one refused. A
    token request sent with them (to the token endpoint, another budget) and answered is not
    one of the API's admitted requests sent together."""
    throttle, _ = throttle_on(fake, workers=8)
    async with contextlib.AsyncExitStack() as stack:
        refused = await stack.enter_async_context(throttle.request())
        admitted = await stack.enter_async_context(throttle.request())
        token = await stack.enter_async_context(throttle.request(counted=False))
        fake.now += 0.02
        token.observe(200, headers())
        admitted.observe(200, headers())
        refused.observe(429, headers(Retry_After="1"))

    assert throttle._pacer.strict


async def test_one_worker_admitted_a_burst_one_at_a_time_is_not_taken_for_no_burst(
    fake: FakeTime,
) -> None:
    """A token bucket of burst 5 met by one worker at 20 ms: five admitted 20 ms apart, as a
    limit with no burst's would be, but never two sent together, so the spacing tells
    nothing; five admitted tell a burst."""
    throttle, _ = throttle_on(fake, workers=1)
    for _ in range(5):
        async with throttle.request() as ticket:
            fake.now += 0.02
            ticket.observe(200, headers())

    await answer(throttle, 429, Retry_After="1")

    assert not throttle._pacer.strict


@pytest.mark.parametrize(("on_200", "strict"), [(False, False), (True, True)])
async def test_one_worker_paced_under_a_stated_rate_tells_no_burst_only_if_paced_so(
    fake: FakeTime, on_200: bool, strict: bool
) -> None:
    """Five admitted 20 ms apart, one at a time, then refused. Where the API stated its rate
    on every answer, they were paced under it, which a bucket admits all of: no burst. Where
    it stated it only with the refusal, nothing was paced by it: a bucket's burst of 5."""
    throttle, _ = throttle_on(fake, workers=1)
    policy = {"RateLimit_Policy": "100;w=1"}  # over the pace: paced at it, never held back
    for _ in range(5):
        async with throttle.request() as ticket:
            fake.now += 0.02
            ticket.observe(200, headers(**(policy if on_200 else {})))

    await answer(throttle, 429, Retry_After="1", **policy)

    assert throttle._pacer.strict is strict


async def test_a_429_with_retry_after_0_does_not_set_a_rate(fake: FakeTime) -> None:
    throttle, stats = throttle_on(fake, workers=8)
    await successes_at(throttle, fake, 20, 40)

    await answer(throttle, 429, Retry_After="0")

    assert throttle.rate is None
    assert stats.rate_limit is None


async def test_a_429_before_any_success_does_not_set_a_rate(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=8)

    await answer(throttle, 429, Retry_After="1")

    assert throttle.rate is None


async def test_rate_limit_policy_sets_the_rate_a_little_under_the_stated_one(
    fake: FakeTime,
) -> None:
    throttle, stats = throttle_on(fake, workers=8)

    await answer(throttle, 200, RateLimit_Policy="50;w=1")

    # 0.9 x 50 in the brief; a later change keeps 0.97 x 50 for a stated (exact) rate.
    assert throttle.rate is not None
    assert 0.9 * 50 <= throttle.rate < 50
    await admitted_at(throttle, fake)  # the pace shows in the stats as requests go
    assert stats.rate_limit == pytest.approx(throttle.rate, abs=0.01)
    assert stats.cool_downs == 0


async def test_a_shard_takes_its_share_of_a_stated_rate_and_in_flight_limit(
    fake: FakeTime,
) -> None:
    """Three shards at once splitting one client's budget (concurrency.scope: run): what the
    API states for the client is divided among them."""
    throttle = Throttle(
        ConcurrencyConfig(workers=8),
        Stats(),
        clock=fake.clock,
        sleep=fake.sleep,
        share=1 / 3,
        slow_start=False,
    )
    await answer(throttle, 200, RateLimit_Policy="30;w=1")
    assert throttle.rate == pytest.approx(30 * 0.97 / 3)
    await answer(throttle, 200, RateLimit_Limit="9", RateLimit_Remaining="8")
    assert throttle.limit <= 3


async def test_an_hourly_policy_is_a_quota_spent_as_it_comes_not_a_pace(fake: FakeTime) -> None:
    """5,000 an hour (GitHub's size): paced at 5000/3600 a harvest of 800 requests would take ten
    minutes; spent as it comes it takes seconds, and the reset is waited out if it runs dry."""
    throttle, stats = throttle_on(fake, workers=8)
    await answer(
        throttle,
        200,
        RateLimit_Policy="5000;w=3600",
        RateLimit="limit=5000, remaining=4999, reset=3600",
    )

    assert throttle.rate is None
    assert await admit_all(throttle, fake, 8) == [T0] * 8

    await answer(throttle, 200, RateLimit="limit=5000, remaining=0, reset=30")
    assert await admitted_at(throttle, fake) == pytest.approx(T0 + 30)
    assert stats.cool_down_seconds == pytest.approx(30)


async def test_a_stated_rate_is_never_probed_past(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=8)
    await answer(throttle, 200, RateLimit_Policy="50;w=1")
    stated = throttle.rate
    assert stated is not None

    for _ in range(600):  # then answers that do not repeat it, for over ten seconds
        await answer(throttle, 200)

    assert fake.now - T0 > 10  # long past the point where probing would begin
    assert throttle.rate == stated < 50


async def test_a_learned_rate_is_still_probed_upwards(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=8)
    for _ in range(20):
        await answer(throttle, 200)
        fake.now += 0.05
    await answer(throttle, 429, Retry_After="1")
    learned = throttle.rate
    assert learned is not None

    for _ in range(200):
        await answer(throttle, 200)

    assert throttle.rate is not None and throttle.rate > learned


async def test_rate_limit_policy_over_a_short_window_sets_a_per_second_rate(
    fake: FakeTime,
) -> None:
    throttle, _ = throttle_on(fake, workers=8)

    await answer(throttle, 200, RateLimit_Limit="20", RateLimit_Policy="20;w=2")

    assert throttle.rate is not None
    assert 0.9 * 10 <= throttle.rate < 10


async def test_rate_limit_policy_over_a_minute_is_a_quota_not_a_pace(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=8)

    await answer(throttle, 200, RateLimit_Limit="600", RateLimit_Policy="600;w=60")

    assert throttle.rate is None


async def test_the_record_of_successes_stays_bounded_without_cool_downs(fake: FakeTime) -> None:
    throttle, _ = throttle_on(fake, workers=8)

    await successes_at(throttle, fake, 10, 3000)  # 300 s of successes, no 429

    # Only the last 60 s are kept (rate_learning looks back at most that far).
    assert len(throttle._learner._admitted) <= 60 * 10 + 1


# --- parse_rate_limit ------------------------------------------------------------------------

NOW = 1_700_000_000.0


def parse(**values: str) -> RateLimitInfo | None:
    return parse_rate_limit(headers(**values), now=NOW)


def test_x_ratelimit_reset_as_unix_time_is_a_delay() -> None:
    info = parse(
        X_RateLimit_Limit="5000", X_RateLimit_Remaining="4999", X_RateLimit_Reset=str(int(NOW) + 30)
    )

    assert info == RateLimitInfo(limit=5000, remaining=4999, reset=30.0)


def test_x_ratelimit_reset_in_milliseconds_is_a_delay() -> None:
    info = parse(X_RateLimit_Remaining="0", X_RateLimit_Reset=str(int(NOW) * 1000 + 30_000))

    assert info == RateLimitInfo(remaining=0, reset=30.0)


def test_x_ratelimit_reset_in_the_past_is_no_delay() -> None:
    info = parse(X_RateLimit_Remaining="0", X_RateLimit_Reset=str(int(NOW) - 30))

    assert info is not None and info.reset == 0.0


def test_x_ratelimit_reset_as_delta_seconds() -> None:
    info = parse(X_RateLimit_Limit="60", X_RateLimit_Remaining="0", X_RateLimit_Reset="42")

    assert info == RateLimitInfo(limit=60, remaining=0, reset=42.0)


def test_ietf_fields_and_policy_window() -> None:
    info = parse(
        RateLimit_Limit="100",
        RateLimit_Remaining="7",
        RateLimit_Reset="12",
        RateLimit_Policy="100;w=60",
    )

    assert info == RateLimitInfo(limit=100, remaining=7, reset=12.0, window=60.0)


def test_policy_alone_gives_limit_and_window() -> None:
    assert parse(RateLimit_Policy="100;w=60") == RateLimitInfo(limit=100, window=60.0)


def test_combined_ratelimit_field() -> None:
    info = parse(RateLimit="limit=50, remaining=3, reset=1")

    assert info == RateLimitInfo(limit=50, remaining=3, reset=1.0)


def test_newer_structured_ratelimit_fields() -> None:
    info = parse(RateLimit='"default";r=3;t=1', RateLimit_Policy='"default";q=50;w=1')

    assert info == RateLimitInfo(limit=50, remaining=3, reset=1.0, window=1.0)


def test_ietf_wins_over_x_when_both_are_sent() -> None:
    info = parse(
        X_RateLimit_Limit="10",
        X_RateLimit_Remaining="9",
        X_RateLimit_Reset=str(int(NOW) + 100),
        RateLimit_Limit="20",
        RateLimit_Remaining="5",
        RateLimit_Reset="2",
    )

    assert info == RateLimitInfo(limit=20, remaining=5, reset=2.0)


def test_x_fills_in_what_ietf_does_not_say() -> None:
    info = parse(X_RateLimit_Reset="30", RateLimit_Limit="20", RateLimit_Remaining="5")

    assert info == RateLimitInfo(limit=20, remaining=5, reset=30.0)


@pytest.mark.parametrize(
    "values",
    [{}, {"Content-Type": "application/json", "Retry-After": "5", "X-Total-Count": "100"}],
)
def test_absent_headers_give_none(values: dict[str, str]) -> None:
    assert parse_rate_limit(CIMultiDict(values), now=NOW) is None


@pytest.mark.parametrize("garbage", ["", "soon", "NaN", "inf", "-", "abc", "; ;", "=;w="])
def test_garbage_values_are_ignored(garbage: str) -> None:
    names = ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "RateLimit-Limit"]
    names += ["RateLimit-Remaining", "RateLimit-Reset", "RateLimit", "RateLimit-Policy"]

    assert parse_rate_limit(CIMultiDict({name: garbage for name in names}), now=NOW) is None


def test_garbage_next_to_good_values_leaves_the_good_ones() -> None:
    info = parse(RateLimit_Limit="100", RateLimit_Remaining="lots", RateLimit_Reset="later")

    assert info == RateLimitInfo(limit=100)


def test_an_absurdly_long_number_is_ignored_without_an_exception() -> None:
    info = parse(X_RateLimit_Limit="9" * 400, X_RateLimit_Remaining="5")

    assert info is not None and info.remaining == 5


def test_header_names_are_case_insensitive() -> None:
    lower = CIMultiDict(
        {
            "x-ratelimit-remaining": "0",
            "ratelimit-limit": "100",
            "ratelimit-reset": "12",
            "ratelimit-policy": "100;w=60",
        }
    )
    upper = CIMultiDict({"X-RATELIMIT-REMAINING": "0", "RATELIMIT": "limit=100, reset=12"})

    assert parse_rate_limit(lower, now=NOW) == RateLimitInfo(
        limit=100, remaining=0, reset=12.0, window=60.0
    )
    assert parse_rate_limit(upper, now=NOW) == RateLimitInfo(limit=100, remaining=0, reset=12.0)


def test_several_policies_pair_each_limit_with_its_own_window() -> None:
    info = parse(RateLimit_Policy="100;w=60, 1000;w=3600")

    assert info is not None
    assert (info.limit, info.window) in {(100, 60.0), (1000, 3600.0)}


# --- Retry-After is never shortened ----------------------------------------------------------

ANSWER = st.one_of(
    st.tuples(st.just(200), st.none()),
    st.tuples(st.just(429), st.none()),
    st.tuples(st.sampled_from([429, 503]), st.sampled_from(["1", "2", "0.05", "0.5", "3"])),
)


@settings(max_examples=200, deadline=None)
@given(
    answers=st.lists(st.tuples(ANSWER, st.floats(0.0, 0.3)), min_size=1, max_size=60),
    workers=st.integers(1, 8),
)
def test_no_request_goes_before_a_retry_after_has_passed(
    answers: list[tuple[tuple[int, str | None], float]], workers: int
) -> None:
    """Whatever the answers and the learning, every request sent after a refusal with
    Retry-After: s was told goes at least s after that refusal came back."""

    async def scenario() -> None:
        fake = FakeTime()
        throttle, _ = throttle_on(fake, workers=workers)
        held_until = 0.0
        for (status, retry_after), gap in answers:
            fake.now += gap
            async with throttle.request() as ticket:
                assert fake.now >= held_until - 1e-9
                values = {} if retry_after is None else {"Retry_After": retry_after}
                ticket.observe(status, headers(**values))
            if retry_after is not None:
                held_until = max(held_until, fake.now + float(retry_after))

    asyncio.run(scenario())


async def test_a_tokens_time_is_not_the_apis_time_for_a_page(fake: FakeTime) -> None:
    """The token endpoint answering in a millisecond says nothing of how long a page takes:
    taken for the API's time, it made a sequential client's pace 1,000/s (where a rate is
    first guessed) and every page look queued (where a ceiling grows)."""
    throttle, _ = throttle_on(fake)
    async with throttle.request(counted=False) as ticket:
        fake.now += 0.001
        ticket.observe(200, headers())
    async with throttle.request() as ticket:
        fake.now += 0.02
        ticket.observe(200, headers())

    await answer(throttle, 429)  # untold: the ramp starts at a sequential client's pace

    assert throttle.rate == pytest.approx(50.0)


@pytest.mark.parametrize(
    ("burst", "policy", "single"),
    [(1, {}, True), (2, {}, False), (1, {"RateLimit_Policy": "50;w=1"}, True)],
)
async def test_a_limit_with_no_burst_near_the_sequential_pace_is_met_one_at_a_time(
    fake: FakeTime, burst: int, policy: dict[str, str], single: bool
) -> None:
    """GCRA 50/s at 20 ms: paced 21 ms apart with several in flight, requests arrive closer
    than 20 ms now and then, each refused (real matrix: 66-86% of the limit; 58-64% where it
    states its rate). One at a time, each goes once the one before is answered, so arrives
    20 ms or more after it. After a burst of two admitted together, several go at once."""
    throttle, _ = throttle_on(fake, workers=8)
    async with contextlib.AsyncExitStack() as stack:
        tickets = [await stack.enter_async_context(throttle.request()) for _ in range(burst)]
        fake.now += 0.02
        for ticket in tickets:
            ticket.observe(200, headers(**policy))
    await answer(throttle, 429, Retry_After="1")  # refused: the pace is a sequential client's
    fake.now += 1.0

    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(throttle.request())
        second = asyncio.create_task(admitted_at(throttle, fake))
        for _ in range(10):
            await asyncio.sleep(0)

        assert second.done() is not single  # one in flight at a time
        first.observe(200, headers())
    await second


async def test_a_token_requests_refusal_holds_every_request_but_teaches_no_rate(
    fake: FakeTime,
) -> None:
    """The token endpoint is often another server with a budget of its own (a few requests a
    minute at some identity providers): its 429 holds every worker (none goes without a
    token), but the pace of pages is not learned from it."""
    throttle, _ = throttle_on(fake)
    for _ in range(20):
        async with throttle.request() as ticket:
            fake.now += 0.02
            ticket.observe(200, headers())

    async with throttle.request(counted=False) as ticket:
        ticket.observe(429, headers(Retry_After="2"))
    refused_at = fake.now

    assert await admitted_at(throttle, fake) == pytest.approx(refused_at + 2)
    for _ in range(5):
        await answer(throttle, 200)
    assert throttle.rate is None


async def test_a_token_requests_success_is_no_news_of_the_pages_rate(fake: FakeTime) -> None:
    """A token endpoint has a budget of its own: its success after a pause is not a page the
    API admitted, and a page's refusal after it is the same overload as before the pause."""
    throttle, _ = throttle_on(fake)
    for _ in range(10):
        async with throttle.request() as ticket:
            fake.now += 0.02
            ticket.observe(200, headers())
    await answer(throttle, 429, Retry_After="1")
    await admitted_at(throttle, fake)  # the pause waited out
    rate = throttle.rate
    async with throttle.request(counted=False) as ticket:
        ticket.observe(200, headers())

    await answer(throttle, 429, Retry_After="1")

    assert (throttle.rate or 0.0) >= (rate or 0.0)  # a storm: nothing new, no step down


async def test_a_token_requests_refusal_holds_the_ramp_through_its_pause(fake: FakeTime) -> None:
    """Every worker waits out a token request's refusal: the rate does not grow meanwhile (it
    grows with what is sent at it), as through any pause that teaches nothing."""
    throttle, _ = throttle_on(fake)
    for _ in range(10):
        async with throttle.request() as ticket:
            fake.now += 0.02
            ticket.observe(200, headers())
    await answer(throttle, 429)  # untold: the ramp from a sequential client's pace
    fake.now += 0.5
    rate = throttle.rate

    async with throttle.request(counted=False) as ticket:
        ticket.observe(429, headers(Retry_After="2"))
    fake.now += 2.0

    assert throttle.rate == pytest.approx(rate)
