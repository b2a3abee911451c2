"""Bisection: the rate of a limit with no burst, from which paces it refused and which held."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from harvester.rate_bisection import Bisection, no_burst


def bisect(rate: float, start: float) -> tuple[float, int]:
    """Paces tried from `start` against a limit of `rate` that refuses any pace over it and
    holds any pace under it: the pace found, and how many were refused (each a pause)."""
    bisection, pace, refused = Bisection(0.97), start, 0
    while True:
        if pace > rate:
            refused += 1
            pace = bisection.refused(pace)
        else:
            pace = bisection.held(pace)
        if bisection.done:
            return pace, refused


@given(st.floats(min_value=0.5, max_value=47.0))
def test_the_rate_is_found_within_five_percent_in_few_refusals(rate: float) -> None:
    found, refused = bisect(rate, 48.0)

    assert 0.97 * rate / 1.05 <= found <= 0.97 * rate
    # Halving to under the rate, then bisecting a factor of two down to 5%: log2(log 2 /
    # log 1.05) = 3.8 steps, about half of them refused.
    assert refused <= math.ceil(math.log2(48.0 / rate)) + 4


def test_a_pace_held_by_luck_over_one_refused_is_no_bound() -> None:
    """The requests' way varies: a pace may hold for a few requests over the rate, and a pace
    under it be refused. What held is dropped where a slower pace was refused since."""
    bisection = Bisection(0.97)
    bisection.refused(40.0)  # 20/s next
    assert bisection.held(20.0) == math.sqrt(20.0 * 40.0)
    assert bisection.refused(18.0) == 9.0  # under what held: the bound is dropped, halved
    assert not bisection.done


def test_a_limit_with_no_burst_admits_no_two_sent_together() -> None:
    """As measured on loopback at 20 ms (a sequential pace of 46/s): GCRA 50/s admitted the
    first request and one sent 22 ms later; a token bucket of burst 5 admitted five sent within
    a millisecond; a window, ten or more however sent."""
    wave = [0.0] * 16  # sixteen workers' first requests
    assert no_burst(1, [], wave, None)  # sends not told: one admitted
    assert not no_burst(2, [], wave, None)
    assert no_burst(2, [0.0, 0.0216], wave, 46.0)
    assert not no_burst(6, [0.0, 0.0244, 0.0248, 0.0252, 0.0256, 0.0259, 0.0472], wave, 46.0)
    assert not no_burst(10, [i * 0.03 for i in range(10)], wave, 46.0)
    assert not no_burst(2, [0.0, 0.0216], wave, None)  # the API's time unknown: together


def test_requests_never_sent_together_tell_nothing_of_a_burst_by_their_spacing() -> None:
    """One worker against a token bucket of burst 5 at 20 ms: five admitted one after
    another, as far apart as a limit with no burst's would be; only one admitted tells."""
    one_at_a_time = [i * 0.05 for i in range(6)]
    assert not no_burst(5, one_at_a_time[:5], one_at_a_time, 20.0)
    assert no_burst(1, one_at_a_time[:1], one_at_a_time[:2], 20.0)


def test_requests_paced_under_a_stated_rate_and_refused_tell_no_burst() -> None:
    """GCRA 50/s stating its rate (IETF RateLimit-Policy) at 20 ms, as simulated: sent under
    the statement, 21.6 ms apart (a page's time: one at a time), eight admitted and the ninth
    refused (its way shorter than the one before's). A bucket admits every request paced under
    its rate."""
    paced = [i * 0.0216 for i in range(9)]
    assert no_burst(8, paced[:8], paced, 46.0, stated=True)
    assert not no_burst(8, paced[:8], paced, 46.0)
