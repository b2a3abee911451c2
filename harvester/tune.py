"""`harvester tune`: find the concurrency (and rate) an API admits, by trying it for real.

Concurrency ramps 1, 2, 4, ... for a bounded time against the configured endpoint. Pages are
read and parsed but never written, requests are not retried (a 429 or an error is counted, not
hidden) and nothing adapts on its own: each step shows what the API does at that concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from harvester.chains import make_chain_planner
from harvester.config import INDEXED_STYLES, Config
from harvester.errors import HarvesterError
from harvester.fetch import Fetcher, make_fetcher, open_session
from harvester.pagination import PageRequest, Planner, make_planner
from harvester.retry import RetryPolicy
from harvester.stats import Stats

# A step must beat the best so far by this much to count as growth.
_GROWTH = 1.10
# A step with more errors (5xx, time-outs) than this share of its requests is not recommended.
_ERRORS_TOLERATED = 0.05


@dataclass
class Step:
    """What one concurrency did over its slice of the time."""

    concurrency: int
    seconds: float = 0.0
    requests: int = 0
    records: int = 0
    throttled: int = 0  # 429s
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    def latency(self, share: float) -> float:
        """The latency below which `share` of the successful requests finished, in seconds."""
        if not self.latencies:
            return math.nan
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=100)[int(share * 100) - 1]


@dataclass(frozen=True)
class Advice:
    workers: int
    rate_limit: float | None  # None: no limit met up to the last step

    def config_lines(self) -> str:
        lines = ["concurrency:", f"  workers: {self.workers}"]
        if self.rate_limit is not None:
            lines.append(f"  rate_limit: {self.rate_limit:g}")
        return "\n".join(lines)


async def tune(
    config: Config,
    *,
    max_workers: int,
    duration: float,
    on_secret: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[list[Step], Advice]:
    """Ramp concurrency within `duration` seconds; the steps measured and the advice.

    `on_secret` hears of each token as it is issued, as in `run`. `clock` and `sleep` time the
    steps; tests pass fake ones.
    """
    levels = [2**k for k in range(int(math.log2(max_workers)) + 1)]
    deadline = clock() + duration
    # Every level gets an equal slice. Keep slices to several seconds (the default duration
    # does): a short one measures an API's burst allowance rather than its lasting rate.
    per_step = duration / len(levels)
    steps: list[Step] = []
    # One attempt per request: a tuner that retried would hide what it is there to see.
    policy = RetryPolicy(dataclasses.replace(config.retry, max_attempts=1))
    concurrency = dataclasses.replace(config.concurrency, workers=max_workers, adaptive=False)
    probe = dataclasses.replace(config, concurrency=concurrency)
    stats = Stats()
    async with open_session(probe) as session:
        fetcher = make_fetcher(probe, session, policy, stats, on_secret=on_secret)
        await fetcher.tokens.current()  # the token is not part of any step's figures
        pages = _Pages(config)
        for level in levels:
            left = deadline - clock()
            if left <= 0.05:
                break
            step = await _measure(fetcher, pages, level, min(per_step, left), clock, sleep)
            steps.append(step)
            if step.throttled or _stopped_growing(steps):
                break
    return steps, advise(steps)


def advise(steps: list[Step]) -> Advice:
    """The fastest step that drew no 429 and no error; a rate if a later step was refused."""
    clean = [s for s in steps if not s.throttled and s.errors <= _ERRORS_TOLERATED * s.requests]
    refused = any(s.throttled for s in steps)
    if not clean:
        return Advice(workers=1, rate_limit=_rate_below(steps[0]) if refused else None)
    best = max(clean, key=lambda s: s.requests_per_second)
    # The smallest concurrency within a tenth of the best: more workers than that buy nothing.
    enough = min(
        (s for s in clean if s.requests_per_second >= best.requests_per_second / _GROWTH),
        key=lambda s: s.concurrency,
    )
    return Advice(workers=enough.concurrency, rate_limit=_rate_below(best) if refused else None)


def _rate_below(step: Step) -> float:
    # What the API admitted, less a tenth: harvesting at its very limit earns a 429 now and then.
    admitted = (step.requests - step.throttled) / step.seconds if step.seconds else 0.0
    return max(0.1, round(admitted * 0.9, 1))


def _stopped_growing(steps: list[Step]) -> bool:
    if len(steps) < 2:
        return False
    best_before = max(s.requests_per_second for s in steps[:-1])
    return steps[-1].requests_per_second < best_before * _GROWTH


class _Pages:
    """The requests a step sends: page after page, starting over at the end of the data."""

    def __init__(self, config: Config) -> None:
        self.indexed = config.pagination.style in INDEXED_STYLES
        self.planner: Planner
        if self.indexed:
            self._indexed = make_planner(config.pagination)
            self.planner = self._indexed
        else:
            self._chains = make_chain_planner(config.pagination, config.source)
            self.planner = self._chains
        self._next = 0
        self._chain_next: PageRequest | None = None
        self.last: int | None = None  # the last page index that held records

    def take(self) -> PageRequest:
        if not self.indexed:
            request, self._chain_next = self._chain_next or self._chains.first(0), None
            return request
        if self.last is not None and self._next > self.last:
            self._next = 0
        index, self._next = self._next, self._next + 1
        return self._indexed.request(index)

    def followed(self, request: PageRequest, count: int, following: PageRequest | None) -> None:
        if self.indexed and count == 0:
            self.last = max(0, request.index - 1)
        if not self.indexed:
            self._chain_next = following


async def _measure(
    fetcher: Fetcher,
    pages: _Pages,
    concurrency: int,
    seconds: float,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
) -> Step:
    step = Step(concurrency)

    async def worker() -> None:
        while True:
            request = pages.take()
            started = clock()
            try:
                fetched = await fetcher.fetch(pages.planner, request)
            except HarvesterError as exc:
                step.requests += 1  # counted once answered: a request cut off at the end is not
                if getattr(exc, "status", None) == 429:
                    step.throttled += 1
                else:
                    step.errors += 1
                continue
            step.requests += 1
            step.latencies.append(clock() - started)
            step.records += fetched.page.count
            pages.followed(request, fetched.page.count, fetched.next)

    started = clock()
    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        await sleep(seconds)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    step.seconds = clock() - started
    return step


def report(steps: list[Step], advice: Advice) -> str:
    """The table of steps, the advice and the config lines to paste."""
    lines = [
        f"{'workers':>7} {'req/s':>8} {'records/s':>10} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'429s':>5} {'errors':>6}"
    ]
    for s in steps:
        lines.append(
            f"{s.concurrency:>7} {s.requests_per_second:>8.1f} {s.records_per_second:>10,.0f} "
            f"{s.latency(0.5) * 1000:>7.0f} {s.latency(0.95) * 1000:>7.0f} "
            f"{s.throttled:>5} {s.errors:>6}"
        )
    rate = f" and rate_limit {advice.rate_limit:g}/s" if advice.rate_limit else ""
    lines += ["", f"recommended: workers {advice.workers}{rate}; paste into the config:", ""]
    lines.append(advice.config_lines())
    return "\n".join(lines)
