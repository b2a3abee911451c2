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


async def test_on_the_real_clock_a_slot_is_never_left_early() -> None:
    """The last stretch before a slot is spent yielding to the loop, not on a timer: however
    late the loop runs, no request leaves before its slot."""
    pacer = Pacer(1)
    rate = 400.0  # 2.5 ms apart: mostly inside the stretch spent yielding
    previous = None
    for _ in range(20):
        async with pacer.turn():
            assert await pacer.wait(rate, lambda: False)
        now = time.monotonic()
        if previous is not None:
            assert now - previous >= 0.9 / rate  # at most the make-up of a late one
        previous = now
