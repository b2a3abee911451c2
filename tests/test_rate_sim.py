"""The throttle against real limiters, in virtual time (benchmarks/rate_sim.py).

Each case runs harvester's own Throttle and retry policy, 16 workers and no rate_limit, against
one limiter of benchmarks/limiter_server.py (the `limits` library's strategies among them) for
1,000 requests at 20 ms latency (and up to 1 ms more at random, seeded), on an event loop whose
clock jumps: a second of the API's time costs a few milliseconds. The bar is issue 10's: at
least 90% of the limit, at most 2% refused.
The rows listed are those the throttle meets today: a change that loses one fails here, long
before anyone runs the hour-long real matrix.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import rate_sim  # noqa: E402
from rate_matrix import Row, matrix  # noqa: E402

ROWS = {row.name: row for row in matrix(quick=False, full=False)}

MET = [
    "token bucket 50/s b5 / headers none / RA ceil",
    "token bucket 50/s b5 / headers none / RA date",
    "token bucket 50/s b5 / headers none / RA exact",
    "token bucket 50/s b5 / headers none / RA none",
    "token bucket 50/s b5 / headers x / RA ceil",
    "token bucket 50/s b5 / headers ietf / RA ceil",
    "token bucket 50/s b5 / headers ietf / RA none",
    "token bucket 50/s b100 / headers none / RA ceil",
    "token bucket 50/s b100 / headers none / RA date",
    "token bucket 50/s b100 / headers none / RA exact",
    "token bucket 50/s b100 / headers none / RA none",
    "token bucket 50/s b100 / headers x / RA ceil",
    "token bucket 50/s b100 / headers ietf / RA ceil",
    "token bucket 50/s b100 / headers ietf / RA none",
    "gcra 50/s b1 / headers none / RA exact",
    "fixed 1s wall 50/s / headers none / RA ceil",
    "fixed 1s wall 50/s / headers none / RA date",
    "fixed 1s wall 50/s / headers none / RA exact",
    "fixed 1s wall 50/s / headers x / RA ceil",
    "fixed 1s wall 50/s / headers ietf / RA ceil",
    "fixed 1s wall 50/s / headers ietf / RA none",
    "fixed 1s first 50/s / headers none / RA ceil",
    "fixed 1s first 50/s / headers none / RA date",
    "fixed 1s first 50/s / headers none / RA exact",
    "fixed 1s first 50/s / headers none / RA none",
    "fixed 1s first 50/s / headers ietf / RA ceil",
    "fixed 1s first 50/s / headers ietf / RA none",
    "fixed 10s wall 50/s / headers none / RA ceil",
    "fixed 10s wall 50/s / headers none / RA date",
    "fixed 10s wall 50/s / headers none / RA exact",
    "fixed 10s wall 50/s / headers none / RA none",
    "fixed 10s wall 50/s / headers x / RA ceil",
    "fixed 10s wall 50/s / headers ietf / RA ceil",
    "fixed 10s wall 50/s / headers ietf / RA none",
    "fixed 10s first 50/s / headers none / RA ceil",
    "fixed 10s first 50/s / headers none / RA date",
    "fixed 10s first 50/s / headers none / RA exact",
    "fixed 10s first 50/s / headers none / RA none",
    "fixed 10s first 50/s / headers x / RA ceil",
    "fixed 10s first 50/s / headers ietf / RA ceil",
    "fixed 10s first 50/s / headers ietf / RA none",
    "sliding log 1s 50/s / headers none / RA ceil",
    "sliding log 1s 50/s / headers none / RA date",
    "sliding log 1s 50/s / headers none / RA exact",
    "sliding log 1s 50/s / headers ietf / RA ceil",
    "sliding log 1s 50/s / headers ietf / RA none",
    "sliding counter 1s 50/s / headers none / RA date",
    "sliding counter 1s 50/s / headers none / RA exact",
    "sliding counter 1s 50/s / headers none / RA ceil",
    "sliding counter 1s 50/s / headers none / RA none",
    "sliding counter 1s 50/s / headers x / RA ceil",
    "sliding counter 1s 50/s / headers ietf / RA ceil",
    "sliding counter 1s 50/s / headers ietf / RA none",
    "leaky queue 50/s b10 503 / headers none / RA ceil",
    "leaky queue 50/s b10 503 / headers none / RA date",
    "leaky queue 50/s b10 503 / headers none / RA exact",
    "leaky queue 50/s b10 503 / headers none / RA none",
    "leaky queue 50/s b10 503 / headers x / RA ceil",
    "leaky queue 50/s b10 503 / headers ietf / RA ceil",
    "leaky queue 50/s b10 503 / headers ietf / RA none",
    "leaky queue 20/s b10 503 / headers none / RA ceil",
    "concurrency 4 429 / headers none / RA date",
    "concurrency 4 429 / headers none / RA exact",
    "concurrency 4 429 / headers none / RA none",
    "concurrency 4 429 / headers x / RA ceil",
    "concurrency 4 429 / headers ietf / RA ceil",
    "concurrency 4 429 / headers ietf / RA none",
    "leaky queue 50/s b10 429 / headers none / RA ceil",
    "leaky queue 50/s b10 429 / headers none / RA none",
    "leaky queue 50/s b10 429 / headers x / RA ceil",
    "concurrency 4 503 / headers none / RA none",
    "concurrency 4 503 / headers x / RA ceil",
    "fixed 60s wall 20/s / headers none / RA ceil",
    "fixed 60s wall 20/s / headers none / RA none",
    "fixed 60s wall 20/s / headers x / RA ceil",
    "fixed 60s first 20/s / headers none / RA ceil",
    "fixed 60s first 20/s / headers none / RA none",
    "fixed 60s first 20/s / headers x / RA ceil",
    "fixed 1s wall 20/s / headers none / RA ceil",
    "sliding log 1s 20/s / headers none / RA ceil",
    "sliding counter 1s 20/s / headers none / RA ceil",
    "token bucket 20/s b5 / headers none / RA ceil",
    "quota 600/20s / headers x / RA ceil, max_retry_after: 10",
    "quota 600/20s / headers none / RA ceil, max_retry_after: 10",
    "quota 600/20s / headers none / RA date, max_retry_after: 10",
    "quota 600/20s / headers none / RA none, max_retry_after: 10",
]
# At the bar's edge, a refusal or two either side of it with the window's phase: one-second
# windows with no Retry-After and no headers, where each boundary overrun refuses the requests
# in flight (2.0-2.2% refused in the simulation; 1.0-1.1% in the real matrix).
EDGE = [
    "fixed 1s wall 50/s / headers none / RA none",
    "sliding log 1s 50/s / headers none / RA none",
]


def run(row: Row) -> rate_sim.Served:
    spec = rate_sim.spec_of(row)
    return rate_sim.simulate(lambda: rate_sim.harvester(spec, row.family.pages, dict(row.retry)))


@pytest.mark.parametrize(
    ("name", "refused"), [(name, 0.02) for name in MET] + [(name, 0.025) for name in EDGE]
)
def test_the_throttle_meets_the_bar(name: str, refused: float) -> None:
    row = ROWS[name]

    served = run(row)

    assert not served.failed
    assert served.share(rate_sim.limit_of(row)) >= 0.9
    assert served.refused <= refused


@pytest.mark.parametrize(
    "name",
    [
        "token bucket 50/s b5 / headers none / RA ceil",
        "gcra 50/s b1 / headers none / RA ceil",
        "fixed 1s wall 50/s / headers none / RA ceil",
        "sliding log 1s 50/s / headers x / RA ceil",
    ],
)
def test_rounded_up_retry_afters_cost_at_most_a_few_pauses(name: str) -> None:
    """Each rounded-up Retry-After holds every worker a whole second: the rate must be learned
    in a few (issue 10's first report: 103 refusals, 16% of the limit)."""
    served = run(ROWS[name])

    assert not served.failed
    assert served.share(rate_sim.limit_of(ROWS[name])) >= 0.8
    assert served.refused <= 0.025


def test_a_queueing_limiter_is_met_with_no_refusal_and_no_slower_than_sequentially() -> None:
    """nginx `limit_req` at 20/s with a queue of 10, a rate under a sequential client's pace:
    a first wave of 16 overran the queue, and the refusal's whole-second pause (half of it
    idle, once the queue had drained) left harvester behind the sequential client. The slow
    start sends four, and stops growing once answers wait in the queue; no probe goes past it."""
    row = ROWS["leaky queue 20/s b10 503 / headers none / RA ceil"]
    spec = rate_sim.spec_of(row)

    served = run(row)
    alone = rate_sim.simulate(lambda: rate_sim.sequential(spec, row.family.pages))

    assert not served.failed
    assert served.refused == 0
    assert served.span <= alone.span


@pytest.mark.parametrize(
    "name", ["gcra 50/s b1 / headers none / RA none", "gcra 50/s b1 / headers none / RA exact"]
)
def test_a_limit_with_no_burst_at_the_latency_is_met_no_slower_than_sequentially(name: str) -> None:
    """GCRA 50/s at 20 ms latency: its interval is the latency, so only one request at a time
    is never refused (a faster pace draws refusals from the requests' varying way: in the real
    matrix, 77% of the limit paced, 90% one at a time). In the simulation, whose way varies
    little, pacing got 91% of the limit; one at a time gets the sequential client's pace
    after the first wave's pause, about 90%: no slower than that client."""
    row = ROWS[name]
    spec = rate_sim.spec_of(row)

    served = run(row)
    alone = rate_sim.simulate(lambda: rate_sim.sequential(spec, row.family.pages))

    assert not served.failed
    assert served.span <= alone.span
    assert served.refused <= 0.02


@pytest.mark.parametrize(
    "name",
    [
        "fixed 1s wall 50/s / headers none / RA date",
        "fixed 1s wall 50/s / headers none / RA exact",
        "sliding counter 1s 50/s / headers none / RA exact",
    ],
)
def test_answers_that_take_100_ms_meet_the_bar(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An API whose answers take 100 ms (a sequential client's pace: 10/s) behind a one-second
    window of 50/s, told to wait to the window's end: the first refusal's short pause is a
    window's, and the ramp starts at what the API bore, not at 10/s (7 s of ramp: 81-84%).
    Paced, the requests in flight rise at once to what the pace needs, and a stretch is
    measured by when its requests were sent."""
    monkeypatch.setattr(rate_sim, "LATENCY", 0.1)
    row = ROWS[name]

    served = run(row)

    assert not served.failed
    assert served.share(rate_sim.limit_of(row)) >= 0.9
    assert served.refused <= 0.02


def test_a_small_burst_where_answers_take_long_is_ramped_past(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token bucket of 50/s with a burst of 5, at 100 ms an answer, refused for a whole
    second: the 11 it admitted in the slow start's first round trips looked like a window's
    quota of 11/s, kept for the whole run (23% of the limit). Ramped from it as a guess, the
    ramp's 7 s to reach 50/s are what remains (about 78%)."""
    monkeypatch.setattr(rate_sim, "LATENCY", 0.1)
    row = ROWS["token bucket 50/s b5 / headers none / RA ceil"]

    served = run(row)

    assert not served.failed
    assert served.share(rate_sim.limit_of(row)) >= 0.7
    assert served.refused <= 0.02
