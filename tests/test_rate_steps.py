"""The step a refusal past the first takes, by what came before it (rate_steps.py)."""

from __future__ import annotations

from typing import Any

import pytest

from harvester.rate_steps import Refusal, Step, bounded, step_down


def refusal(**changes: Any) -> Refusal:
    """A refusal at 50/s, 0.5 s after the rate was learned, steady, nothing measured."""
    facts: dict[str, Any] = {
        "pace": 50.0,
        "hold": 1.0,
        "ramping": False,
        "learned_for": 0.5,
        "measured": None,
        "span": 0.5,
        "seen": 0,
        "slivers": 0,
        "fallback": None,
    }
    return Refusal(**{**facts, **changes})


def test_a_ramp_refused_a_step_or_more_in_goes_back_a_step() -> None:
    assert step_down(refusal(ramping=True, learned_for=2.0)) == Step(40.0)


def test_a_settled_pace_steps_down_a_sliver_and_its_probe_crossed() -> None:
    step = step_down(refusal(learned_for=12.0))
    assert step == Step(pytest.approx(48.5), crossed=True)


def test_a_second_measured_keeps_a_sliver_under_what_the_api_bore() -> None:
    step = step_down(refusal(measured=40.0, span=1.5, seen=60))
    assert step.rate == pytest.approx(40.0 * 0.97)
    assert not (step.restart or step.guessing or step.crossed)


def test_refused_a_sliver_of_an_interval_as_often_as_admitted_is_a_limit_with_no_burst() -> None:
    """Half the pace admitted, each refusal asking for under a quarter interval: the API's rate
    is near the pace, not near what it admitted; two steps down at most."""
    sliver = 0.1 / 50.0
    step = step_down(refusal(hold=sliver, measured=25.0, span=1.0, seen=25, slivers=13))
    assert step.rate == pytest.approx(50.0 * 0.9**2)
    assert bounded(step.rate, refusal(hold=sliver, measured=25.0), None) == pytest.approx(40.5)


def test_a_blind_step_in_the_ramp_is_a_tenth_and_a_guess() -> None:
    assert step_down(refusal(ramping=True)) == Step(45.0, guessing=True)


def test_a_first_guess_refused_at_once_falls_back_and_ramps_again() -> None:
    step = step_down(refusal(ramping=True, fallback=44.0))
    assert step == Step(44.0, restart=True, guessing=True)


def test_a_slivers_refusal_keeps_the_fallback_standing() -> None:
    step = step_down(refusal(ramping=True, fallback=44.0, hold=0.002))
    assert step == Step(45.0, restart=True, guessing=True, keep_fallback=True)


def test_bounded_by_what_was_measured_and_a_drained_buckets_refill() -> None:
    measured = refusal(measured=40.0)
    assert bounded(45.0, measured, None) == pytest.approx(38.8)
    assert bounded(45.0, refusal(), 30.0) == pytest.approx(29.1)
    assert bounded(45.0, refusal(), None) == 45.0
