"""From `harvester tune`'s steps to advice: workers, a rate, and the config lines to paste."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Literal

from harvester.config import ConcurrencyConfig
from harvester.tune.measure import Step, sustained_rate

# A step must beat the best so far by this much to count as growth.
GROWTH = 1.10
# The rate recommended is this share of the sustained rate measured: a harvest at the very limit
# earns a 429 now and then, and a measurement over a few windows may be a few percent high.
_SHARE_OF_LIMIT = 0.95
# Of a rate the API states (RateLimit-Policy): exact, so only a sliver is left, as a harvest does.
_SHARE_OF_STATED = 0.97
# Workers enough to reach the rate with this much to spare: a harvest also writes what it reads.
_HEADROOM = 1.25

# Why the ramp ended: a refusal (the API's limit), errors, no more growth, --max-workers
# reached while still growing, or the duration.
Ending = Literal["limit", "errors", "flat", "max-workers", "time"]


@dataclass(frozen=True)
class Advice:
    workers: int
    rate_limit: float | None  # None: no limit met up to the last step
    # The rate the API was seen to sustain (2xx per second), the seconds it was measured over,
    # and whether that was after the burst allowance was drained (a sustained phase).
    limit: float | None = None
    measured_over: float = 0.0
    drained: bool = False
    stated: bool = False  # the API states the limit (RateLimit-Policy): no measuring needed
    # Requests the API admitted before its first refusal beyond what its sustained rate
    # accounts for (a bucket's burst, a window's quota): told, not advised (burst_seen).
    burst: int = 0

    def config_lines(self, current: ConcurrencyConfig | None = None) -> str:
        """The `concurrency:` lines to paste: every one the user must change.

        A rate_limit the user has set and tune recommends none for is set to null, said so.
        """
        lines = ["concurrency:", f"  workers: {self.workers}"]
        if self.rate_limit is not None:
            lines.append(f"  rate_limit: {self.rate_limit:g}")
        elif current is not None and current.rate_limit is not None:
            lines.append(
                f"  rate_limit: null  # remove your rate_limit of {current.rate_limit:g}/s: "
                "tune met no limit"
            )
        return "\n".join(lines)


def advise(steps: list[Step], *, stated: float | None = None) -> Advice:
    """A rate below what the API states, or sustained once it refused; else the fastest clean
    step. `stated`: requests per second by the API's RateLimit-Policy, if it sent one."""
    clean = [s for s in steps if not s.throttled and not s.too_many_errors()]
    if stated is not None:
        rate = max(0.1, math.floor(stated * _SHARE_OF_STATED * 10) / 10)
        return Advice(
            workers=_workers_for(rate, steps, steps[-1]) if steps else 1,
            rate_limit=rate,
            limit=stated,
            stated=True,
        )
    measured = next((s for s in steps if s.phase == "sustained"), None)
    if measured is None:
        measured = next((s for s in reversed(steps) if s.throttled), None)
    if measured is not None:
        limit, over = sustained_rate(measured)
        rate = max(0.1, math.floor(limit * _SHARE_OF_LIMIT * 10) / 10)
        return Advice(
            workers=_workers_for(rate, steps, measured),
            rate_limit=rate,
            limit=limit,
            measured_over=over,
            drained=measured.phase == "sustained",
            burst=burst_seen(steps, limit),
        )
    if not clean:
        return Advice(workers=1, rate_limit=None)
    best = max(clean, key=lambda s: s.admitted_per_second)
    # The smallest concurrency within a tenth of the best: more workers than that buy nothing.
    enough = min(
        (s for s in clean if s.admitted_per_second >= best.admitted_per_second / GROWTH),
        key=lambda s: s.concurrency,
    )
    return Advice(workers=enough.concurrency, rate_limit=None)


def burst_seen(steps: list[Step], limit: float) -> int:
    """How many requests the API admitted, from the first request to the first refusal, beyond
    `limit` per second over that time: a token bucket's burst, or a window's quota (0: none).

    Told, never advised as `concurrency.burst`: tune cannot tell a bucket's burst, which comes
    back as the bucket refills, from a sliding window counter's quota, which a burst then a
    steady pace under the rate overruns within the window; nor how long that window is
    without waiting one out. A low bound where the ramp's first steps were under the rate
    (a bucket full by then wasted what it refilled)."""
    marks = sorted(mark for s in steps for mark in s.marks)
    refusals = [sent for sent, admitted in marks if not admitted]
    if not refusals:
        return 0
    first = refusals[0]
    before = sum(1 for sent, admitted in marks if admitted and sent < first)
    return max(0, math.floor(before - limit * (first - marks[0][0])))


def _workers_for(rate: float, steps: list[Step], measured: Step) -> int:
    """The fewest workers that reach `rate`: a step's that did (429s or not), or else as many
    as pages take time at that rate (Little's law), never more than the step that met the limit."""
    wanted = rate * _HEADROOM
    fit = [s for s in steps if not s.too_many_errors()]
    reached = [s.concurrency for s in fit if s.admitted_per_second >= wanted]
    if reached:
        return min(reached)
    if not measured.latencies:
        return measured.concurrency
    needed = math.ceil(wanted * statistics.median(measured.latencies))
    return max(1, min(measured.concurrency, needed))


def stopped_growing(steps: list[Step]) -> bool:
    if len(steps) < 2:
        return False
    best_before = max(s.admitted_per_second for s in steps[:-1])
    return steps[-1].admitted_per_second < best_before * GROWTH
