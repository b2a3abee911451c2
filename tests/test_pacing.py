"""Pacer: slots spaced to a rate, deferred by a pause, and never left early on the real clock."""

from __future__ import annotations

import time

import pytest

from harvester.pacing import Pacer
from tests.conftest import FakeTime


async def slots(pacer: Pacer, fake: FakeTime, rate: float, n: int) -> list[float]:
    times = []
    for _ in range(n):
        async with pacer.turn():
            assert await pacer.wait(rate, lambda: False)
        times.append(fake.now)
    return times


async def test_slots_are_an_interval_apart() -> None:
    fake = FakeTime()
    pacer = Pacer(1, clock=fake.clock, sleep=fake.sleep)

    times = await slots(pacer, fake, 10.0, 4)

    assert times == pytest.approx([1000.0, 1000.1, 1000.2, 1000.3])


async def test_a_burst_goes_back_to_back_after_a_quiet_spell() -> None:
    fake = FakeTime()
    pacer = Pacer(3, clock=fake.clock, sleep=fake.sleep)

    times = await slots(pacer, fake, 10.0, 5)

    assert times == pytest.approx([1000.0, 1000.0, 1000.0, 1000.1, 1000.2])


class LateTime(FakeTime):
    """A clock whose sleeps end `late` seconds after their moment: a busy loop."""

    late = 0.0

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds + self.late)


@pytest.mark.parametrize(("strict", "next_at"), [(False, 1000.22), (True, 1000.23)])
async def test_a_late_wake_is_made_up_for_unless_the_api_admits_no_burst(
    strict: bool, next_at: float
) -> None:
    """A request let through 30 ms after its slot (the loop woke it late): the next one makes
    up part of the lag, never closer than 0.9 of an interval; where the API admits no burst (a
    GCRA, which refuses any two requests closer than its interval) it goes a whole interval
    after the late one."""
    fake = LateTime()
    pacer = Pacer(1, clock=fake.clock, sleep=fake.sleep)
    pacer.strict = strict
    await slots(pacer, fake, 10.0, 1)  # at 1000.0; the next slot is 1000.1
    fake.late = 0.03
    late = await slots(pacer, fake, 10.0, 1)
    fake.late = 0.0

    assert late + await slots(pacer, fake, 10.0, 1) == pytest.approx([1000.13, next_at])


async def test_no_slot_before_a_deferral() -> None:
    fake = FakeTime()
    pacer = Pacer(1, clock=fake.clock, sleep=fake.sleep)
    pacer.defer(1005.0)

    assert await slots(pacer, fake, 10.0, 2) == pytest.approx([1005.0, 1005.1])


async def test_a_wait_interrupted_on_waking_takes_no_slot() -> None:
    fake = FakeTime()
    pacer = Pacer(1, clock=fake.clock, sleep=fake.sleep)
    await slots(pacer, fake, 10.0, 1)

    async with pacer.turn():
        assert not await pacer.wait(10.0, lambda: True)
    assert await slots(pacer, fake, 10.0, 1) == pytest.approx([1000.1])


async def test_on_the_real_clock_a_wait_never_ends_before_its_moment() -> None:
    """The last stretch before a slot is spent yielding to the loop, not on a timer (which
    rounds to the millisecond): however the loop runs, the wait ends at its moment or after."""
    pacer = Pacer(1)
    for delay in (0.0, 0.0005, 0.001, 0.0015, 0.002, 0.004):
        moment = time.monotonic() + delay
        await pacer._sleep_until(moment)
        assert time.monotonic() >= moment


def test_only_the_real_clock_is_waited_on_precisely() -> None:
    """A test's fake clock (or a simulation's) is slept on as it is: yielding to the loop would
    not move it on."""
    fake = FakeTime()

    assert Pacer(1)._precise
    assert not Pacer(1, clock=fake.clock, sleep=fake.sleep)._precise
