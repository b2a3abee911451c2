"""Growth: how a learned rate grows until the next refusal."""

from __future__ import annotations

import pytest

from harvester.rate_growth import Growth


def learned(rate: float, at: float, *, ramping: bool) -> Growth:
    growth = Growth(0.0)
    growth.learn(rate, at)
    growth.ramping = ramping
    return growth


def test_nothing_learned_no_rate() -> None:
    assert Growth(0.0).rate(10.0, on_trial=False) is None


def test_a_ramp_grows_by_a_quarter_each_second() -> None:
    growth = learned(10.0, 1.0, ramping=True)

    assert growth.rate(0.5, on_trial=False) == 10.0  # not before it was learned
    assert growth.rate(3.0, on_trial=False) == pytest.approx(10.0 * 1.25**2)


def test_a_pace_on_trial_does_not_grow() -> None:
    assert learned(10.0, 1.0, ramping=False).rate(60.0, on_trial=True) == 10.0


def test_a_steady_rate_is_probed_after_five_seconds_two_percent_per_ten() -> None:
    growth = learned(10.0, 0.0, ramping=False)

    assert growth.rate(5.0, on_trial=False) == 10.0
    assert growth.rate(15.0, on_trial=False) == pytest.approx(10.2)


def test_each_probe_that_crossed_the_limit_makes_the_next_half_as_eager() -> None:
    growth = learned(10.0, 0.0, ramping=False)

    growth.probe_crossed()
    assert growth.rate(15.0, on_trial=False) == pytest.approx(10.1)
    growth.probe_crossed()
    assert growth.rate(15.0, on_trial=False) == pytest.approx(10.05)


def test_a_pause_keeps_the_rate_grown_so_far_until_it_ends() -> None:
    growth = learned(10.0, 0.0, ramping=True)
    grown = growth.rate(1.0, on_trial=False)

    growth.stop(grown, until=3.0)

    assert growth.rate(2.0, on_trial=False) == pytest.approx(12.5)
    assert growth.rate(4.0, on_trial=False) == pytest.approx(12.5 * 1.25)


def test_a_pause_that_ends_before_the_rate_was_learned_changes_nothing() -> None:
    growth = learned(10.0, 5.0, ramping=True)

    growth.stop(20.0, until=4.0)

    assert growth.rate(6.0, on_trial=False) == pytest.approx(12.5)
