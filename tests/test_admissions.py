"""Admissions: the successes a learned rate is measured over."""

from __future__ import annotations

import pytest

from harvester.admissions import MEMORY, Admissions, Refill


def test_a_stretch_of_sends_is_counted_a_lag_later() -> None:
    """Sent from t = 1 to t = 2 at 10/s, each answered 200 ms later."""
    admissions = Admissions()
    for i in range(11):
        admissions.add(1.0 + i / 10 + 0.2)

    assert admissions.answered(1.0, 2.0) == 9  # the first two answers came after 1.0 + 0.2
    admissions.lag = 0.2
    assert admissions.of_sends(1.0, 2.0) == 11


def test_a_drained_bucket_tells_the_upper_end_of_its_rate() -> None:
    """A burst of 5 held at t = 0, then 25 admitted of what was sent over a second: 20/s to
    21/s refilled; 21/s is kept (the learner takes a share of it)."""
    admissions = Admissions()
    for i in range(25):
        admissions.add(i / 25)

    assert admissions.drained(0.0, 1.0, 5) == pytest.approx(21.0)
    assert admissions.drained(0.0, 1.0, 30) is None  # no more than the burst: nothing drained


def test_only_the_last_minute_is_remembered_and_measured() -> None:
    admissions = Admissions()
    for i in range(3000):
        admissions.add(i / 10)

    assert len(admissions) <= MEMORY * 10 + 1
    assert admissions.drained(0.0, 299.9, 5) is None  # longer than remembered


def test_a_refill_tells_a_buckets_rate_only_after_a_pause_that_refilled_its_burst() -> None:
    admissions = Admissions()
    for i in range(25):
        admissions.add(i / 25)
    refill = Refill()
    assert refill.rate(admissions, 0.0, 1.0, under=100.0) is None  # no burst seen
    refill.burst, refill.pause = 5, 0.1
    assert refill.rate(admissions, 0.0, 1.0, under=100.0) is None  # too short to refill it

    refill.pause = 1.0

    assert refill.rate(admissions, 0.0, 1.0, under=100.0) == pytest.approx(21.0)
    assert refill.rate(admissions, 0.0, 1.0, under=20.0) is None  # not paced well above it
