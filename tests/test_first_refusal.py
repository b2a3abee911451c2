"""first_refusal: the first guess, and the fallback kept with it."""

from __future__ import annotations

from harvester.first_refusal import Fallback, first_guess


def test_a_fallback_stands_until_a_refusal_takes_it() -> None:
    fallback = Fallback()
    fallback.stand(10.0)

    assert fallback.at(100.0) == 10.0
    assert fallback.take(100.0, measured_over=None, pause=0.2) == 10.0
    assert fallback.take(100.0, measured_over=None, pause=0.2) is None
    assert not fallback.kept


def test_a_refusal_measured_over_twice_the_pause_does_not_take_the_fallback() -> None:
    """What the API admitted over twice the pause or more is no burst refilled meanwhile: the
    guess was not a burst's next place. Gone all the same."""
    fallback = Fallback()
    fallback.stand(10.0)
    assert fallback.take(1.0, measured_over=0.39, pause=0.2) == 10.0
    fallback.stand(10.0)
    assert fallback.take(1.0, measured_over=0.4, pause=0.2) is None
    assert not fallback.kept


def test_a_fallback_kept_a_while_longer_expires() -> None:
    fallback = Fallback()
    fallback.stand(10.0, until=2.0)

    assert fallback.at(2.0) == 10.0
    assert fallback.take(2.5, measured_over=None, pause=0.2) is None  # expired, taken all the same


def test_half_a_quota_spent_fast_starts_the_ramp_with_the_sequential_pace_to_fall_back_to() -> None:
    """50 admitted in 0.6 s where one request after another goes at 10/s (100 ms an answer)."""
    guess = first_guess(50, 0.6, 0.0, 10.0, told=False, coarse=False, share=0.97)

    assert guess is not None
    assert (guess.rate, guess.ramping, guess.fallback) == (25.0, True, 10.0)
