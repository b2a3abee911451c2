"""RateLearner: the rate an API bears, from when it admitted requests and when it refused."""

from __future__ import annotations

import math

import pytest

from harvester.rate_learning import RateLearner


def learned_once(per_second: float = 50) -> RateLearner:
    """A learner refused twice: ramping from 10/s at t = 1, then 2 s admitted at `per_second`."""
    learner = learner_with(10, 100)
    learner.refused(0.1, hold=0.9)
    for i in range(1, 2 * round(per_second) + 1):
        learner.admitted(1.0 + i / per_second)
    return learner


def learner_with(successes: int, per_second: float, start: float = 0.0) -> RateLearner:
    learner = RateLearner(start)
    for i in range(1, successes + 1):
        learner.admitted(start + i / per_second)
    return learner


def test_no_refusal_no_rate() -> None:
    assert learner_with(100, 50).rate(10.0) is None


def test_the_first_refusal_counts_the_pause_it_asks_for() -> None:
    learner = learner_with(50, 700)  # a window's quota of 50, spent in 71 ms

    learner.refused(50 / 700, hold=1 - 50 / 700)

    # 50 over the one-second window: exactly its rate, when the pause ends.
    assert learner.rate(1.0) == pytest.approx(50.0)


@pytest.mark.parametrize("hold", [0.5, 0.3])
def test_a_quota_paused_less_than_a_second_is_counted_over_a_whole_second(hold: float) -> None:
    """A Retry-After as an HTTP-date pauses to the next whole wall second, which may come a
    moment after the first window's 50 were spent: 50 over 0.6 s would be 83/s, where the
    window (and a sliding counter's decay) gives back 50 a second."""
    learner = learner_with(50, 700)

    learner.refused(50 / 700, hold=hold, sequential=46.5)

    assert learner.rate(50 / 700 + hold) == pytest.approx(50.0)


def test_a_quota_paused_in_whole_seconds_is_counted_a_second_shorter() -> None:
    """A one-second window's 50, spent in its first 90 ms, refused with `Retry-After: 1` (0.91 s
    rounded up), or an HTTP-date up to a second after the window's end: over 1.09 s that would
    be 46/s, a tenth under the limit for the rest of the run. Whole seconds are rounded up by
    up to one: the window is counted a second shorter (no less than a second), and paced a
    sliver under what that gives."""
    learner = learner_with(50, 550)

    learner.refused(50 / 550, hold=1.0, sequential=46.5, coarse=True)

    assert learner.rate(1.1) == pytest.approx(0.97 * 50, rel=1e-3)


def test_a_short_windows_quota_below_the_sequential_pace_is_the_rate() -> None:
    learner = learner_with(20, 700)  # 20 per one-second window, spent in 29 ms

    learner.refused(20 / 700, hold=1 - 20 / 700, sequential=46.5)

    # Not the sequential pace: every window overrun would cost a pause.
    assert learner.rate(1.0) == pytest.approx(20.0)


def test_a_long_windows_quota_is_spent_at_the_sequential_pace() -> None:
    learner = learner_with(1200, 46.5)  # 1,200 per 60 s window, spent in 26 s

    learner.refused(1200 / 46.5, hold=60 - 1200 / 46.5, sequential=46.5)

    # Its quota is better spent fast and waited out: one pause per minute.
    assert learner.rate(60.0) == pytest.approx(46.5)


def test_a_burst_tells_no_rate_the_sequential_pace_does() -> None:
    learner = learner_with(5, 700)  # a token bucket's burst of 5

    learner.refused(5 / 700, hold=1.0, sequential=46.5)

    assert learner.rate(1.0 + 5 / 700) == pytest.approx(46.5)


def test_after_the_first_refusal_the_rate_ramps_by_a_quarter_each_second() -> None:
    learner = learner_with(10, 100)
    learner.refused(0.1, hold=0.9)  # 10/s from t = 1

    assert learner.rate(1.0) == pytest.approx(10.0)
    assert learner.rate(2.0) == pytest.approx(12.5)
    assert learner.rate(3.5) == pytest.approx(10.0 * 1.25**2.5)


def test_the_ramp_starts_no_lower_than_a_sequential_client() -> None:
    learner = learner_with(5, 1000)  # a burst of 5, then refused for a whole second

    learner.refused(0.005, hold=1.0, sequential=45.0)

    assert learner.rate(1.005) == pytest.approx(45.0)


def test_a_refusal_a_step_into_the_ramp_goes_back_one_step() -> None:
    learner = learned_once(30)  # the ramp: 10/s at t = 1, 15.6/s at t = 3; all of it admitted
    pace = learner.rate(3.0)
    assert pace == pytest.approx(10 * 1.25**2)

    learner.refused(3.0, hold=1.0)

    assert learner.rate(4.0) == pytest.approx(pace / 1.25)  # the ramp a second before
    # No more ramp: kept for 5 s, then a probe.
    assert learner.rate(9.0) == pytest.approx(pace / 1.25)
    assert learner.rate(19.0) == pytest.approx(pace / 1.25 * 1.02)


def test_a_refusal_keeps_a_sliver_under_what_the_api_admitted_since_the_pause() -> None:
    learner = learned_once(5)  # paced at 10/s to 15.6/s, the API admitted 5/s of it
    learner.refused(3.0, hold=1.0)
    for i in range(1, 11):
        learner.admitted(4.0 + i / 4)  # then 4/s for 2.5 s, paced a step under 15.6/s

    learner.refused(6.5, hold=1.0)

    # Two seconds back (_HORIZON), t = 4.5 to 6.5: nine admitted (both ends counted).
    assert learner.rate(7.5) == pytest.approx(0.97 * 4.5, rel=0.01)


def test_a_refusal_in_the_ramp_measures_its_last_step_only() -> None:
    learner = learned_once(5)  # the ramp from 10/s at t = 1; the API admitted 5/s of it

    learner.refused(3.0, hold=1.0)

    # In the last second, t = 2.0 to 3.0: six admitted (both ends counted).
    assert learner.rate(4.0) == pytest.approx(0.97 * 6, rel=0.01)


def test_a_later_refusal_is_at_least_a_step_below_the_pace_that_drew_it() -> None:
    learner = learner_with(10, 100)
    learner.refused(0.1, hold=0.9)
    pace = learner.rate(1.5)
    assert pace is not None
    for i in range(1, 50):
        learner.admitted(1.0 + i / 100)  # a saved-up burst right after the pause

    learner.refused(1.5, hold=0.0)

    assert learner.rate(1.5) == pytest.approx(0.9 * pace)


def test_refusals_with_no_success_between_lower_the_rate_once() -> None:
    learner = learned_once()
    learner.refused(3.0, hold=0.2)
    once = learner.rate(3.2)

    for k in range(10):
        learner.refused(3.2 + 0.2 * k, hold=0.2)

    assert learner.rate(3.2) == pytest.approx(once)


def test_a_learned_rate_is_probed_upwards_slowly() -> None:
    learner = learned_once()
    learner.refused(3.0, hold=1.0)
    learned = learner.rate(4.0)
    assert learned is not None

    assert learner.rate(9.0) == pytest.approx(learned)  # kept a while first
    assert learner.rate(19.0) == pytest.approx(learned * 1.02)


def test_each_probe_that_crosses_the_limit_makes_the_next_half_as_eager() -> None:
    """A probe past the limit costs a pause for every worker: once it has found the limit, it
    looks past it less and less often."""
    learner = learned_once()
    learner.refused(3.0, hold=1.0)
    at = 4.0
    for probe in (1.02, 1.01, 1.005):
        learned = learner.rate(at)
        assert learned is not None
        assert learner.rate(at + 15.0) == pytest.approx(learned * probe)
        for i in range(1, 1701):  # 17 s admitted, then the probe crosses the limit
            learner.admitted(at + i / 100)
        at += 17.0
        learner.refused(at, hold=1.0)
        at += 1.0


def test_under_a_stated_rate_a_first_refusal_paces_at_the_statement() -> None:
    learner = learner_with(10, 100)
    learner.state(30.0, 0.0)
    learner.refused(0.1, hold=0.9)  # the burst sent before the statement was read

    assert learner.rate(1.0) == pytest.approx(30.0)
    assert learner.rate(100.0) == pytest.approx(30.0)  # never probed past


def test_a_stated_rate_caps_the_ramp() -> None:
    learner = learner_with(10, 100)
    learner.refused(0.1, hold=0.9)
    learner.state(12.0, 0.1)

    assert learner.rate(1.0) == pytest.approx(10.0)
    assert learner.rate(10.0) == pytest.approx(12.0)


def test_no_burst_is_judged_by_the_sends_since_an_in_flight_pause() -> None:
    """Four sent together, one admitted, three refused by a limit on requests in flight; after
    its pause, one at a time, five admitted 20 ms apart, then refused: a bucket's burst, which
    one at a time cannot tell from no burst. The four together came before the count began."""
    learner = RateLearner(0.0)
    for _ in range(4):
        learner.begin(0.0)
    learner.admitted(0.02, 50.0, sent=0.0)
    learner.paused(0.02, 1.0)
    at = 1.02
    for _ in range(5):
        learner.begin(at)
        learner.admitted(at + 0.02, 50.0, sent=at)
        at += 0.02
    learner.begin(at)
    learner.refused(at + 0.02, 1.0, 50.0)

    assert not learner.no_burst


def test_a_stated_rate_alone_is_the_pace() -> None:
    learner = RateLearner(0.0)
    learner.state(48.5, 0.0)

    assert learner.rate(0.0) == 48.5


def paced_for(seconds: float) -> tuple[RateLearner, float]:
    """A learner back a ramp step at t = 4 (steady from then), then `seconds` admitted at 20/s,
    as fast as the pace allowed; and its pace at the end."""
    learner = learned_once()
    learner.refused(3.0, hold=1.0)
    for i in range(1, round(seconds * 20) + 1):
        learner.admitted(4.0 + i / 20)
    pace = learner.rate(4.0 + seconds)
    assert pace is not None
    return learner, pace


def test_after_a_long_clean_stretch_a_refusal_steps_down_a_little() -> None:
    learner, pace = paced_for(15.0)

    learner.refused(19.0, hold=1.0)

    # Not a tenth: the probe crossed the limit by a sliver, or arrivals bunched.
    assert learner.rate(20.0) == pytest.approx(0.97 * min(pace, 20.0), rel=0.01)


def test_soon_after_a_refusal_another_steps_down_a_tenth() -> None:
    learner, pace = paced_for(0.5)

    learner.refused(4.5, hold=1.0)  # half a second after the pause: too short to measure by

    assert learner.rate(5.5) == pytest.approx(0.9 * pace, rel=0.01)


def test_soon_after_a_refusal_a_second_measured_steps_down_to_a_sliver_under_it() -> None:
    learner, pace = paced_for(2.0)

    learner.refused(6.0, hold=1.0)

    # Two seconds of what the API bore tell more than a fixed step would.
    assert learner.rate(7.0) == pytest.approx(0.97 * min(pace, 20.0), rel=0.01)


def test_refusals_within_a_second_of_a_step_down_after_a_short_pause_step_once() -> None:
    learner = learned_once()
    learner.refused(3.0, hold=0.02)  # an exact Retry-After: a short pause
    for i in range(1, 11):
        learner.admitted(3.02 + i / 40)
    pace = learner.rate(3.3)

    learner.refused(3.3, hold=0.02)  # what the API still counts was sent before the step

    assert learner.rate(3.32) == pytest.approx(pace, rel=0.01)


def test_refusals_with_short_pauses_after_a_step_down_leave_a_second_to_measure() -> None:
    """A sliding counter refuses every few requests with an exact, short Retry-After while the
    pace is over it. Those short pauses leave no gap to keep out of the measure: a second
    after the step down, what the API admitted over that second is the rate, not one more
    tenth off a pace far above it."""
    learner = learner_with(80, 700)  # a first window's 80, spent in 0.11 s: 80/s learned
    learner.refused(80 / 700, hold=1 - 80 / 700, sequential=46.5)
    for i in range(1, 11):
        learner.admitted(1.0 + i / 50)
    learner.refused(1.2, hold=0.02)  # a tenth off: 72/s, where the API admits 50/s
    assert learner.rate(1.22) == pytest.approx(72.0, rel=0.01)
    for i in range(1, 51):  # a second at 50/s admitted, a short refusal every 0.1 s
        learner.admitted(1.22 + i / 50)
        if i % 5 == 0 and i < 50:
            learner.refused(1.22 + i / 50, hold=0.02)

    learner.refused(2.25, hold=0.02)

    assert learner.rate(2.27) == pytest.approx(0.97 * 50, rel=0.03)


@pytest.mark.parametrize(
    ("hold", "told", "share_of_step"), [(0.1, True, 1.0), (1.0, False, 1.0), (1.0, True, None)]
)
def test_refused_a_slot_at_a_time_a_step_goes_no_lower_than_two_tenths(
    hold: float, told: bool, share_of_step: float | None
) -> None:
    """Just over a GCRA's rate with a burst of 1, about every other request is refused, each
    with a pause of an interval: what the API admitted is half the pace though its limit is
    just under it. A step after such a refusal goes no lower than 0.81 of the pace; after a
    long pause (a window's), what the API admitted is the measure."""
    learner = learner_with(10, 100)
    learner.refused(0.1, hold=0.9)  # the ramp from 10/s at t = 1
    for i in range(1, 6):
        learner.admitted(1.5 + i / 5)  # 5/s admitted in the last step
    pace = learner.rate(2.5)
    assert pace is not None

    learner.refused(2.5, hold=hold, told=told)  # untold: a pause of harvester's own

    learned = learner.rate(2.5 + hold)
    if share_of_step is None:
        assert learned == pytest.approx(0.97 * 5, rel=0.01)  # t = 1.5 .. 2.5
    else:
        assert learned == pytest.approx(pace / 1.25)


def test_the_ramp_does_not_grow_while_a_spent_window_is_waited_out() -> None:
    """Refusals with nothing through between them hold every worker: the ramp grows with what
    is sent at it, not through the pauses, or a 10 s window would reopen at many times the rate
    that spent it."""
    learner = learner_with(10, 100)
    learner.refused(0.1, hold=0.9)  # the ramp from 10/s at t = 1; nothing admitted since

    learner.refused(1.5, hold=4.0)
    learner.refused(5.5, hold=4.0)

    assert learner.rate(9.5) == pytest.approx(10 * 1.25**0.5)


def test_a_first_refusal_before_any_answer_is_learned_from_the_first_success() -> None:
    learner = RateLearner(0.0)

    assert learner.refused(0.001, hold=1.0) is None  # nothing to tell a rate from yet
    learner.admitted(0.02, sequential=50.0)  # the burst's answers come back: 20 ms each

    # A second wave at an unknown pace would cost another whole-second pause: from the pause's
    # end, the sequential pace, ramping.
    assert learner.rate(1.001) == pytest.approx(50.0, rel=0.01)
    assert learner.rate(2.001) == pytest.approx(62.5, rel=0.01)


def test_a_short_first_pause_waits_for_a_refusal_with_more_to_tell() -> None:
    learner = RateLearner(0.0)

    learner.refused(0.001, hold=0.02)
    learner.admitted(0.02, sequential=50.0)

    assert learner.rate(1.0) is None  # another short pause is cheap: no guess yet


def test_a_first_refusal_without_retry_after_starts_at_the_sequential_pace() -> None:
    """49 admitted in 90 ms, then refused with no Retry-After: harvester's own short pause says
    nothing of a window, so 49 over it is no rate (it would be 144/s)."""
    learner = learner_with(49, 49 / 0.09)

    learner.refused(0.09, hold=0.25, sequential=46.0, told=False)

    assert learner.rate(0.34) == pytest.approx(46.0)


def test_a_first_refusal_with_a_very_short_retry_after_starts_at_the_sequential_pace() -> None:
    """A bucket's next place comes back in a few ms: that is no window to spread a burst over."""
    learner = learner_with(100, 100 / 0.15)

    learner.refused(0.15, hold=0.007, sequential=46.0)

    assert learner.rate(0.157) == pytest.approx(46.0)


def test_a_pause_nothing_was_learned_from_restarts_what_a_first_refusal_counts() -> None:
    """Refused by a limit on requests in flight (five admitted), then by the rate: the first
    five are not a window's quota with the second burst."""
    learner = learner_with(5, 500)
    learner.paused(0.025, hold=0.6)
    for i in range(1, 7):
        learner.admitted(0.625 + i / 500)

    learner.refused(0.655, hold=0.975, sequential=46.0)

    # 6 over 1.005 s, or the sequential pace: not 11 over 1.63 s as a quota (6.7/s).
    assert learner.rate(1.63) == pytest.approx(46.0)


def test_a_short_windows_quota_near_the_sequential_pace_is_not_ramped_past() -> None:
    """50 in a one-second window, then refused for the rest of it: 48/s is measured, and a ramp
    past it would cost a second pause."""
    learner = learner_with(50, 700)

    learner.refused(50 / 700, hold=1 - 50 / 700 + 0.04, sequential=46.5)

    assert learner.rate(1.04) == pytest.approx(50 / 1.04)
    assert learner.rate(2.04) == pytest.approx(50 / 1.04)  # no ramp; a probe only later
    assert learner.rate(7.04) == pytest.approx(50 / 1.04 * 1.02**0.1)


def test_a_quota_well_under_the_sequential_pace_is_ramped_as_a_guess() -> None:
    """10 admitted, then a whole second refused: a bucket's burst of 10 looks the same as a
    window of 10, and the first guess must not hold a 50/s bucket at 10/s."""
    learner = learner_with(10, 700)

    learner.refused(10 / 700, hold=1.0, sequential=46.5)

    rate = 10 / (1.0 + 10 / 700)
    assert learner.rate(1.0 + 10 / 700) == pytest.approx(rate)
    assert learner.rate(2.0 + 10 / 700) == pytest.approx(1.25 * rate)


def bucket_stretch(
    learner: RateLearner,
    start: float,
    pace: float | None,
    rate: float,
    burst: int,
    latency: float = 0.02,
) -> float:
    """From `start` (a pause's end, the bucket full), requests at `pace` (None: the learner's
    own, as it grows) to a token bucket of `burst` refilled at `rate`: the admitted ones told
    to the learner, each `latency` after it was sent. When one is refused."""
    tokens, last, sent = float(burst), start, start
    while True:
        tokens = min(burst, tokens + (sent - last) * rate)
        last = sent
        if tokens < 1:
            return sent
        tokens -= 1
        learner.admitted(sent + latency)
        sent += 1 / (pace or learner.rate(sent) or 1.0)


@pytest.mark.parametrize(("rate", "burst"), [(20.0, 5), (20.0, 8), (10.0, 5), (30.0, 3)])
def test_a_stretch_that_drained_a_buckets_burst_tells_its_rate(rate: float, burst: int) -> None:
    """A token bucket with a small burst, refused for a whole second each time: the burst the
    first refusal found, and how soon the pace after the pause drained it, tell the rate within
    two pauses, not a tenth a pause at a time (20/s was found from 48/s over 12 pauses). A
    short stretch tells it to within a request over its length: the upper end is kept, and the
    next, longer stretch, tells it closer."""
    learner = learner_with(burst, 700)
    learner.refused(burst / 700, hold=1.0, sequential=48.0, coarse=True)
    resume = burst / 700 + 1.0
    assert learner.rate(resume) == pytest.approx(48.0)

    for _ in range(2):
        pace = learner.rate(resume) or 0.0
        if pace <= rate:
            break
        refused_at = bucket_stretch(learner, resume, pace, rate, burst)
        learner.refused(refused_at, hold=1.0, sequential=48.0, coarse=True)
        resume = refused_at + 1.0

    # A sliver over (the upper end of a stretch's bounds) draws one more refusal, after a
    # stretch long enough to tell the rate closer still; under, it would be kept under.
    assert 0.9 * rate <= (learner.rate(resume) or 0.0) <= 1.01 * rate


@pytest.mark.parametrize(("latency", "rate"), [(0.2, 10.0), (0.5, 5.0), (0.1, 50.0)])
def test_a_drained_bucket_is_measured_by_when_its_requests_were_sent(
    latency: float, rate: float
) -> None:
    """Answers take `latency`: what a stretch sent from the pause's end is answered from a
    latency later, and what was in flight at the refusal a latency after it. Counted by when
    the answers came over the stretch, a bucket of 10/s at 200 ms looked like 7/s."""
    burst = 5
    learner = learner_with(burst, 700)
    learner.refused(burst / 700, hold=1.0, sequential=3 * rate, coarse=True)
    resume = burst / 700 + 1.0
    refused_at = bucket_stretch(learner, resume, 1.5 * rate, rate, burst, latency)

    learner.refused(refused_at, hold=1.0, sequential=1 / latency, coarse=True, lag=latency)

    assert 0.93 * rate <= (learner.rate(refused_at + 1.0) or 0.0) <= 1.01 * rate


def test_a_quota_of_a_few_near_the_sequential_pace_is_ramped_as_a_guess() -> None:
    """At 100 ms an answer, a token bucket of 50/s with a burst of 5 admitted 11 in the slow
    start's first two round trips, then asked for a whole second. Taken as a window's quota of
    11/s near the sequential pace (10/s), it was kept, not ramped: 23% of the limit."""
    learner = learner_with(11, 55)

    learner.refused(0.2, hold=1.0, sequential=10.0, coarse=True)

    assert learner.rate(1.2) == pytest.approx(11 * 0.97)
    assert learner.rate(2.2) == pytest.approx(11 * 0.97 * 1.25)


def test_a_guessed_windows_end_refused_at_once_ramps_again_from_the_sequential_pace() -> None:
    """A bucket of 10/s with a burst of 100, at 100 ms an answer, refusing a place at a time
    with an exact Retry-After of 0.1 s, looks like a window's end: the ramp starts at the 100/s
    it bore. Refused again at once, that was a burst, and the ramp starts over from the
    sequential pace (a tenth off at a time took 13 refusals in 1.2 s)."""
    learner = learner_with(100, 330)
    learner.refused(0.31, hold=0.1, sequential=10.0)
    assert learner.rate(0.41) == pytest.approx(100.0)
    learner.admitted(0.52, 10.0, sent=0.42)  # the bucket's next place, taken

    learner.refused(0.46, hold=0.1, sequential=10.0)

    assert learner.rate(0.56) == pytest.approx(10.0)
    assert learner.rate(1.56) == pytest.approx(12.5)


def test_a_guessed_windows_end_refused_for_a_sliver_steps_down_a_tenth_and_ramps_on() -> None:
    """A sliding counter of 50/s at 100 ms an answer: its quota over a second starts the ramp,
    and the next refusal, which asks for a sliver of an interval, is the counter still counting
    that quota, not a burst's next place: a tenth down, not back to the sequential pace (8 s of
    ramp to 50/s). A refusal right after that with a pause of several intervals was a
    burst's. (Successes come before refusals that came earlier: a refusal is heard once the
    requests in flight with it are answered.)"""
    learner = learner_with(50, 100)
    learner.refused(0.5, hold=0.17, sequential=10.0)
    learner.admitted(0.78, 10.0, sent=0.68)
    pace = learner.rate(0.85)

    learner.refused(0.85, hold=0.001, sequential=10.0)

    assert learner.rate(0.851) == pytest.approx(0.9 * pace)
    assert learner.rate(1.851) == pytest.approx(0.9 * pace * 1.25)
    learner.admitted(0.96, 10.0, sent=0.86)

    learner.refused(0.9, hold=0.1, sequential=10.0)

    assert learner.rate(1.0) == pytest.approx(10.0)


def test_a_ramp_refused_right_after_it_began_with_nothing_measured_ramps_on() -> None:
    """Traced at 100 ms an answer against a 50/s bucket with a burst of 100: after the ramp
    started over at the sequential pace, its first request was refused (the requests sent at
    130/s just before had taken the bucket's places). Stepped down blind and kept there, the
    run went at 9/s, growing 2% in ten seconds: 23% of the limit."""
    learner = learner_with(100, 330)
    learner.refused(0.31, hold=0.1, sequential=10.0)
    learner.admitted(0.52, 10.0, sent=0.42)
    learner.refused(0.46, hold=0.01, sequential=10.0)  # a burst's: from the sequential pace
    assert learner.rate(0.47) == pytest.approx(10.0)

    pace = learner.rate(0.56)
    learner.admitted(0.6, 10.0, sent=0.5)

    learner.refused(0.56, hold=0.01, sequential=10.0)  # 0.09 s into the ramp: nothing measured

    assert learner.rate(0.57) == pytest.approx(0.9 * pace)
    assert learner.rate(1.57) == pytest.approx(0.9 * pace * 1.25)  # the ramp goes on


def test_a_ramp_refused_right_after_it_began_with_a_measure_stops_there() -> None:
    """The same refusal, with a quarter second of successes since the pause to measure: the
    rate a sliver under what the API bore, not ramped past."""
    learner = learner_with(100, 330)
    learner.refused(0.31, hold=0.1, sequential=10.0)
    learner.admitted(0.52, 10.0, sent=0.42)
    learner.refused(0.46, hold=0.01, sequential=10.0)
    for i in range(6):
        learner.admitted(0.58 + i / 20, 10.0, sent=0.48 + i / 20)

    pace = learner.rate(0.8)

    learner.refused(0.8, hold=0.01, sequential=10.0, lag=0.1)

    assert learner.rate(0.81) == learner.rate(3.0)  # not ramped
    # Sent over 0.47-0.8 s, 6 admitted: 18/s, over the pace; a tenth under the pace, then.
    assert learner.rate(0.81) == pytest.approx(0.9 * pace)


def test_after_a_step_that_kept_the_ramp_a_refusal_within_a_second_steps_no_further() -> None:
    """A blind step keeps the ramp going; refusals right after it, each with a success or two
    between, are what the API still counted from before it: one step a second, as at a
    steady pace (stepped a tenth at each, the pace fell from 10/s to 5/s in a second)."""
    learner = learner_with(100, 330)
    learner.refused(0.31, hold=0.1, sequential=10.0)
    learner.admitted(0.52, 10.0, sent=0.42)
    learner.refused(0.46, hold=0.01, sequential=10.0)
    learner.admitted(0.6, 10.0, sent=0.5)
    learner.refused(0.56, hold=0.01, sequential=10.0)  # blind: a tenth down, ramping on
    pace = learner.rate(0.57)

    for i in range(1, 6):
        learner.admitted(0.6 + i * 0.13 + 0.05, 10.0, sent=0.6 + i * 0.13 - 0.05)
        learner.refused(0.6 + i * 0.13, hold=0.01, sequential=10.0)

    assert learner.rate(0.57) == pytest.approx(pace)
    assert learner.rate(1.57) == pytest.approx(pace * 1.25)


def test_a_fallback_kept_past_a_slivers_refusal_expires_after_the_ramps_first_step() -> None:
    """The fallback kept at a sliver's refusal is for the refusal right after it; one long
    after (a pause that taught nothing between) is the ramp's crossing, not a burst's."""
    learner = learner_with(50, 100)
    learner.refused(0.5, hold=0.17, sequential=10.0)
    learner.admitted(0.78, 10.0, sent=0.68)
    learner.refused(0.85, hold=0.001, sequential=10.0)  # a sliver's: the fallback kept
    for i in range(1, 21):
        learner.admitted(0.86 + i / 25, 10.0, sent=0.76 + i / 25)
    learner.held(1.7, 5.0)
    learner.admitted(6.8, 10.0, sent=6.75)

    learner.refused(7.0, hold=0.1, sequential=10.0)

    assert learner.rate(7.1) > 20.0


def test_a_quota_spent_fast_where_answers_take_long_starts_the_ramp_at_half_of_it() -> None:
    """50 admitted in half a second at 100 ms an answer, no Retry-After: the ramp starts at
    25/s, half of what the API bore over a second, not at the sequential 10/s (7 s of ramp to
    a window of 50/s). Refused again at once, that was a burst: back to the sequential pace."""
    learner = learner_with(50, 100)

    learner.refused(0.5, hold=0.25, sequential=10.0, told=False)

    assert learner.rate(0.75) == pytest.approx(25.0)
    learner.admitted(0.9, 10.0, sent=0.8)
    learner.refused(0.85, hold=0.25, sequential=10.0, told=False)
    assert learner.rate(1.1) == pytest.approx(10.0)


def test_a_quota_spent_within_the_slow_starts_round_trips_counts_as_spent_fast() -> None:
    """At 300 ms an answer the slow start alone takes 1.5 s to fill 16 workers: 50 admitted in
    1.8 s was spent as fast as it could be, and the ramp starts at half of what it bore, not at
    the sequential 3.3/s (12 s of ramp to 50/s)."""
    learner = learner_with(50, 50 / 1.8)

    learner.refused(1.8, hold=0.25, sequential=1 / 0.3, told=False)

    assert learner.rate(2.05) == pytest.approx(50 / 2.05 / 2)


@pytest.mark.parametrize(
    ("successes", "per_second", "sequential"),
    [(50, 100, 46.0), (1200, 700, 10.0), (8, 100, 1.0)],
    ids=["fast answers", "a long window", "a few"],
)
def test_a_quota_spent_slowly_or_near_the_sequential_pace_starts_there(
    successes: int, per_second: float, sequential: float
) -> None:
    """At 20 ms an answer the sequential pace is near what a window of 50 bore; a quota that
    took over a second to spend is a long window's; a few admitted are a burst's."""
    learner = learner_with(successes, per_second)

    learner.refused(successes / per_second, hold=0.25, sequential=sequential, told=False)

    assert learner.rate(successes / per_second + 0.25) == pytest.approx(sequential)


def test_a_short_told_pause_after_a_windows_quota_starts_at_what_it_bore() -> None:
    """50 admitted in half a second at 100 ms an answer, then asked to wait 0.1 s (to the next
    wall-clock second): too long for a bucket's next place at what the API bore (an interval
    or two), so a window's end. Its quota over a second is a better start than a sequential
    client's 10/s, from which the ramp took 7 s to reach 50/s."""
    learner = learner_with(50, 100)

    learner.refused(0.5, hold=0.1, sequential=10.0)

    assert learner.rate(0.6) == pytest.approx(50.0)
    assert learner.rate(1.6) == pytest.approx(62.5)


def test_a_ramp_that_crossed_a_buckets_rate_from_below_steps_back_a_ramp_step() -> None:
    """The ramp began under the rate (the bucket stayed full a while): what the stretch
    admitted is no drained bucket's, and the ramp steps back as before."""
    learner = learner_with(5, 700)
    learner.refused(5 / 700, hold=1.0, sequential=46.0, coarse=True)
    # The ramp's pace, growing by a quarter a second, against 50/s with burst 5.
    sent = bucket_stretch(learner, 5 / 700 + 1.0, None, 50.0, 5)
    pace = learner.rate(sent) or 0.0

    learner.refused(sent, hold=1.0, sequential=46.0, coarse=True)

    assert learner.rate(sent + 1.0) == pytest.approx(pace / 1.25)


@pytest.mark.parametrize("clean", [30.0, 59.0, 75.0, 120.0, 600.0])
def test_a_refusal_after_a_clean_stretch_longer_than_remembered_steps_down_a_little(
    clean: float,
) -> None:
    """A GCRA of 20/s, found, then paced under for `clean` seconds until a probe crosses it: the
    step down is a sliver, however long the stretch. The successes of a stretch longer than the
    learner remembers are not all counted: taken for a drained bucket's, the few it remembered
    over the whole stretch stepped 19/s down to 12/s after 90 s (the real matrix, run four times
    as long), and to under 2/s after ten minutes (the last case here)."""
    learner = learner_with(1, 700)
    learner.refused(1 / 700, hold=1.0, sequential=48.0, coarse=True)  # a burst of 1
    resume = 1 / 700 + 1.0
    while (learner.rate(resume) or 0.0) > 20.0:
        refused_at = bucket_stretch(learner, resume, learner.rate(resume), 20.0, 1)
        learner.refused(refused_at, hold=1.0, sequential=48.0, coarse=True)
        resume = refused_at + 1.0
    for i in range(round(clean * 19)):  # 95% of the rate: every request admitted
        learner.admitted(resume + i / 19)
    crossed = resume + clean
    pace = learner.rate(crossed) or 0.0

    learner.refused(crossed, hold=1.0, sequential=48.0, coarse=True)

    assert (learner.rate(crossed + 1.0) or 0.0) >= 0.97 * min(pace, 19.0) * 0.99


@pytest.mark.parametrize(
    ("limit", "low", "high"), [(70.0, 0.81 * 72 * 0.99, 72.0), (36.0, 0.85 * 36, 0.97 * 36)]
)
def test_refused_every_other_request_for_a_second_the_pauses_tell_how_far_over(
    limit: float, low: float, high: float
) -> None:
    """A GCRA with no burst paced at 72/s, with exact Retry-Afters: it admits every other
    request, half the pace, whether its rate is a sliver under the pace or half of it. Just
    under (70/s), each refusal asks for a sliver of an interval, and a second of that measured
    at face value halved the pace, which the probe took minutes to climb back (52% of the limit
    in the simulation's matrix, 59% over four times the requests): the step goes no lower than
    0.81 of the pace. Twice over (36/s), each asks for a whole interval: what was admitted is
    the rate."""
    learner = learner_with(80, 700)  # a first window's 80, spent in 0.11 s: 80/s learned
    learner.refused(80 / 700, hold=1 - 80 / 700, sequential=46.5)
    for i in range(1, 11):
        learner.admitted(1.0 + i / 50)
    learner.refused(1.2, hold=0.02)  # a tenth off: 72/s
    pace = learner.rate(1.22) or 0.0
    assert pace == pytest.approx(72.0, rel=0.01)
    # 1.5 s at the pace, every other request admitted; none refused in the 20 ms before a
    # second has passed since the pause (the first refusal heard counts that whole second).
    for i in range(1, 109):
        sent = 1.2528 + i / pace
        if i % 2:
            learner.admitted(sent + 0.02)
        else:
            learner.refused(sent, hold=1 / limit - 1 / pace)

    assert low <= (learner.rate(2.9) or 0.0) <= high


def gcra_run(learner: RateLearner, start: float, rate: float, seconds: float) -> tuple[int, float]:
    """From `start`, requests at the learner's pace to a GCRA of `rate` with no burst, each
    refusal answered with a Retry-After in whole seconds (the wait rounded up) and paused so
    long, for `seconds`: how many pauses it cost, and the pace at the end."""
    sent, last, pauses = start, -math.inf, 0
    while sent < start + seconds:
        if sent - last >= 1 / rate:
            last = sent
            learner.admitted(sent + 0.02, sequential=48.0)
            sent += 1 / (learner.rate(sent) or 48.0)
        else:
            hold = float(math.ceil(last + 1 / rate - sent))
            learner.refused(sent, hold=hold, sequential=48.0, coarse=True)
            pauses += 1
            sent += hold
    return pauses, learner.rate(sent) or 0.0


def test_a_limit_with_no_burst_is_bisected_not_stepped_down_a_tenth_a_pause() -> None:
    """A GCRA of 20/s with no burst, met at a sequential client's 48/s: every pace over it is
    refused at its second request, each refusal a whole second's pause for every worker. A
    tenth a pause took nine pauses to get under it (the real matrix: 77% of the limit); a pace
    held tells the rate is over it, so it is bisected between the fastest held and the slowest
    refused."""
    learner = learner_with(1, 700)
    learner.refused(1 / 700, hold=1.0, sequential=48.0, coarse=True)  # a burst of 1

    pauses, pace = gcra_run(learner, 1 / 700 + 1.0, 20.0, 10.0)

    # Refused at 48/s and 24/s; held at 12/s and 17/s; refused at 20.3/s; held at 18.6/s and
    # 19.4/s: 18.8/s kept.
    assert pauses <= 5
    assert 0.92 * 20 <= pace <= 20  # a sliver under the fastest pace held


@pytest.mark.parametrize(("rate", "pauses"), [(0.2, 14), (2.0, 11), (45.0, 6)])
def test_a_slow_or_fast_limit_with_no_burst_is_bisected_to_its_end(
    rate: float, pauses: int
) -> None:
    """Under the probe, a pace on trial a sliver under a slow rate was pushed over it before
    it could hold (8 successes at 0.2/s take 40 s): refused each time, the bisection never
    ended. A pace on trial is not probed, and a second's worth of successes (three at least)
    tells a slow one held. Over 300 s: halved from 48/s to under the rate, bisected, then
    probed past now and then (at 0.2/s, 19 pauses and no end before)."""
    learner = learner_with(1, 700)
    learner.refused(1 / 700, hold=1.0, sequential=48.0, coarse=True)

    paid, pace = gcra_run(learner, 1 / 700 + 1.0, rate, 300.0)

    assert paid <= pauses
    assert 0.92 * rate <= pace <= rate


def ramp_refused(after: float) -> float | None:
    """At 100 ms an answer (sequential: 10/s), 50 admitted in half a second and refused with a
    pause of 0.2 s: a start well above the sequential pace, with it as the fallback. After the
    pause, admitted at 55/s, and refused `after` seconds into the ramp: what it learns then."""
    learner = RateLearner(0.0)
    for i in range(50):
        sent = 0.01 * i
        learner.begin(sent)
        learner.admitted(sent + 0.1, 10.0, sent=sent)
    learner.refused(0.6, hold=0.2, sequential=10.0, in_flight_for=0.3, lag=0.1)
    assert learner.rate(0.8) == pytest.approx(50.0)
    for i in range(int(after * 55)):
        sent = 0.8 + i / 55
        learner.begin(sent)
        learner.admitted(sent + 0.1, 10.0, sent=sent)
    return learner.refused(0.8 + after, hold=0.09, sequential=10.0, in_flight_for=0.3, lag=0.1)


def test_a_ramp_refused_after_it_was_measured_over_twice_the_pause_keeps_the_measure() -> None:
    """The guess was near the API's rate (a 1 s window's quota), and the ramp crossed it: a
    sliver under what the API bore since the pause, not the sequential pace, from which the
    ramp took 7 s back to 50/s at 100 ms an answer."""
    assert ramp_refused(0.918) == pytest.approx(0.97 * 50 / 0.918, rel=0.02)


def test_a_ramp_refused_within_twice_the_pause_falls_back_to_the_sequential_pace() -> None:
    """Measured over less than twice the pause, what the API admitted may be a bucket's burst,
    refilled meanwhile: the sequential pace, ramped from."""
    assert ramp_refused(0.35) == pytest.approx(10.0)
