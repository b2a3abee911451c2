"""ApiTime: the API's own time for a request, and the figures the throttle takes from it."""

from __future__ import annotations

import pytest

from harvester.api_time import ApiTime


def test_the_shortest_success_is_the_apis_time() -> None:
    api = ApiTime()
    assert api.sequential() is None and api.needed(50.0) == 1
    assert api.settled_in() == pytest.approx(0.3)  # a guess: 0.1 s each

    for seconds in (0.05, 0.02, 0.04):  # a queue lengthens some answers, never shortens
        api.took(seconds)

    assert api.shortest == 0.02
    assert api.sequential() == pytest.approx(50.0)
    assert api.settled_in() == pytest.approx(0.06)


def test_a_pace_needs_twice_its_rate_times_the_apis_time_in_flight() -> None:
    api = ApiTime()
    api.took(0.021)

    assert api.needed(48.5) == 3  # 2 x 48.5 x 0.021 = 2.04
    assert api.needed(10.0) == 1
    assert api.needed(None) == 1


def test_answers_too_quick_to_time_tell_no_sequential_pace() -> None:
    api = ApiTime()
    api.took(0.0)

    assert api.sequential() is None


def test_an_answer_well_over_the_apis_time_waited_in_a_queue() -> None:
    api = ApiTime()
    assert not api.queued(5.0)  # no time known yet: nothing to compare with

    api.took(0.02)

    assert not api.queued(0.045)  # a busy loop or network: within 10 ms of twice it
    assert api.queued(0.06)
    api.took(0.001)  # loopback: a few milliseconds more is noise, not a queue
    assert not api.queued(0.008)


def test_a_pace_near_one_at_a_time_is_within_a_sixth_under_it_to_a_quarter_over() -> None:
    api = ApiTime()
    assert not api.near_sequential(50.0)  # no time known

    api.took(0.02)  # one at a time: 50/s

    assert [api.near_sequential(r) for r in (40.0, 43.0, 50.0, 62.0, 63.0)] == [
        False,
        True,
        True,
        True,
        False,  # one at a time would cap it: a limit of 100/s was held to 50/s
    ]
    assert not api.near_sequential(None)


def test_one_at_a_time_is_near_a_typical_answers_pace_not_the_fastest() -> None:
    """One fast answer among slow ones: one at a time would give one over the typical time
    (25/s here), not over the fastest (50/s); a rate of 45/s is not near it."""
    api = ApiTime()
    api.took(0.02)
    for _ in range(20):
        api.took(0.04)

    assert not api.near_sequential(45.0)
    assert api.near_sequential(25.0)
