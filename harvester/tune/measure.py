"""One step of `harvester tune`: N workers against the API for a while, and what they saw.

Requests are sent one attempt each and go straight out: no configured rate, no cool-down, no
learned rate. What the API answers is counted, never smoothed over. Workers still keep from
storming the API: after an error a worker waits the retry policy's backoff, and after a 429 it
waits as long as a page takes, so that 429s come no faster than pages would. A 429's
Retry-After is not waited out: a limiter must be kept busy for its sustained rate to be
measured (a worker that sat out a whole second per 429 would leave it idle), and the
measurement is bounded by --duration. A harvest always waits it out.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from harvester.chains import make_chain_planner
from harvester.config import INDEXED_STYLES, Config
from harvester.errors import AuthError, CertificateError, HarvesterError
from harvester.fetch import Fetcher
from harvester.pagination import PageRequest, Planner, make_planner
from harvester.ratelimit import Throttle, Ticket, parse_rate_limit
from harvester.retry import REFUSALS, RetryPolicy

# A step with more errors (5xx, time-outs, bodies not JSON) than this share of its answers is
# not recommended, and ends the ramp.
ERRORS_TOLERATED = 0.05
# A step is judged early once it has this many errors: enough to tell a share from bad luck.
_JUDGE_AFTER = 10
# The fewest admissions, and seconds, a sustained rate is drawn from.
_MIN_SAMPLE = 10
_MIN_SPAN = 1.0
# The longest wait after a 429 before any page has been timed (see measure's after_refusal).
_MAX_BLIND_PAUSE = 1.0

Phase = Literal["ramp", "sustained"]


@dataclass
class Step:
    """What one concurrency did over its slice of the time; counts are of answered requests."""

    concurrency: int
    phase: Phase = "ramp"
    seconds: float = 0.0
    requests: int = 0
    records: int = 0
    throttled: int = 0  # 429s and 503s
    errors: int = 0
    latencies: list[float] = field(default_factory=list)  # of admitted requests
    # (sent at, admitted) for each admitted or refused request: where the refusals fell.
    marks: list[tuple[float, bool]] = field(default_factory=list)
    first_refusal: float | None = None  # seconds into the step
    last_error: HarvesterError | None = None

    @property
    def admitted(self) -> int:
        return self.requests - self.throttled - self.errors

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def admitted_per_second(self) -> float:
        return self.admitted / self.seconds if self.seconds else 0.0

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def error_share(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def latency(self, share: float) -> float:
        """The latency below which `share` of the admitted requests finished, in seconds."""
        if not self.latencies:
            return math.nan
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=100)[int(share * 100) - 1]

    def too_many_errors(self) -> bool:
        return self.errors > ERRORS_TOLERATED * self.requests


def sustained_rate(step: Step) -> tuple[float, float]:
    """The rate `step` was admitted at while the limiter was saturated, and over how many seconds.

    From the first refusal (the burst allowance, or the window's quota, spent) to the refusal
    that ended the last admissions before the last refusal: the admissions sent in between are
    what the limiter let through with nothing saved up. For a fixed window both ends fall where
    a window's quota ran out, so the span holds whole windows. Requests sent at the same moment
    (a coarse clock) count as in the same window. Too short a span: the whole step's rate.
    """
    refusals = sorted(sent for sent, admitted in step.marks if not admitted)
    admissions = sorted(sent for sent, admitted in step.marks if admitted)
    if refusals:
        first, last = refusals[0], refusals[-1]
        # The last admission sent by the time of the last refusal, and the refusal ending its run.
        before_last = bisect.bisect_right(admissions, last)
        if before_last and admissions[before_last - 1] > first:
            end = refusals[bisect.bisect_left(refusals, admissions[before_last - 1])]
            span = end - first
            admitted = bisect.bisect_right(admissions, end) - bisect.bisect_right(admissions, first)
            if span >= _MIN_SPAN and admitted >= _MIN_SAMPLE:
                return admitted / span, span
    return step.admitted_per_second, step.seconds


class _Unobserved(Ticket):
    """A ticket that holds nothing back: it only notes a limit the API states."""

    def __init__(self, owner: Unthrottled) -> None:  # no super().__init__(): no throttle state
        self._owner = owner

    def sending(self) -> None:
        pass  # nothing is timed

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        info = parse_rate_limit(headers)
        if info is not None and info.limit and info.window:
            self._owner.stated = info.limit / info.window


class Unthrottled(Throttle):
    """Lets every request go at once and learns nothing: no rate, no cool-down, no adaptation.

    A throttle that paced, paused or learned would have tune measure the throttle, not the API.
    It notes the rate the API states (RateLimit-Policy), which a harvest paces to by itself.
    """

    stated: float | None = None  # requests per second

    @contextlib.asynccontextmanager
    async def request(self, *, counted: bool = True, again: bool = False) -> AsyncIterator[Ticket]:
        yield _Unobserved(self)


class Pages:
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


@dataclass(frozen=True)
class Probe:
    """What every step shares: the fetcher, the pages, the policy and the time."""

    fetcher: Fetcher
    pages: Pages
    policy: RetryPolicy
    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]]  # a step's length
    pause: Callable[[float], Awaitable[None]]  # a worker's wait after a 429 or an error
    throttle: Unthrottled  # notes the rate the API states


def _refused(exc: HarvesterError) -> bool:
    """A 429 or a 503: the limiter said no (nginx's limit_req says it with a 503, no
    Retry-After), the API did not fail; as a harvest's throttle takes them."""
    return getattr(exc, "status", None) in REFUSALS


def _retry_after(exc: HarvesterError) -> float | None:
    value = getattr(exc.__cause__, "retry_after", None)
    return value if isinstance(value, float | int) else None


async def measure(
    probe: Probe, concurrency: int, seconds: float, phase: Phase, *, pace: float = 0.0
) -> Step:
    """`concurrency` workers for `seconds`; a ramp step ends early at its first refusal, any
    step once its errors are past the tolerated share. Unanswered requests are not counted.

    `pace`: how long a page took in earlier steps, a worker's wait after a 429 until this step
    has timed pages of its own.
    """
    step = Step(concurrency, phase)
    ended = asyncio.Event()
    started = probe.clock()
    timed = 0.0  # the sum of step.latencies, kept as they come: read after every 429

    def after_refusal(in_a_row: int) -> float:
        """As long as a page takes: a refused request costs a worker the time an admitted one
        would, so 429s come no faster than pages. Before any page was timed, the policy's
        backoff, at most a second: an API refusing everything is not stormed either."""
        if step.latencies:
            return timed / len(step.latencies)
        return pace or min(_MAX_BLIND_PAUSE, probe.policy.wait_for(in_a_row))

    def failed(exc: HarvesterError) -> None:
        step.requests += 1
        step.errors += 1
        step.last_error = exc
        if step.errors >= _JUDGE_AFTER and step.too_many_errors():
            ended.set()

    def refused(sent: float) -> None:
        step.requests += 1
        step.throttled += 1
        step.marks.append((sent, False))
        if step.first_refusal is None:
            step.first_refusal = sent - started
        if phase == "ramp":  # the limit is found: the sustained phase takes over
            ended.set()

    async def worker() -> None:
        nonlocal timed
        # In a row: the backoff grows with them, as a retry's does.
        failures = refusals = 0
        while not ended.is_set():
            request = probe.pages.take()
            sent = probe.clock()
            try:
                fetched = await probe.fetcher.fetch(probe.pages.planner, request)
            except (AuthError, CertificateError):
                raise  # fails every request alike: the run's failure, as in a harvest
            except HarvesterError as exc:
                if ended.is_set():
                    return  # answered after the step ended: counted nowhere
                if _refused(exc):
                    refusals += 1
                    refused(sent)
                    await probe.pause(after_refusal(refusals))
                else:
                    failures += 1
                    failed(exc)
                    await probe.pause(probe.policy.wait_for(failures, _retry_after(exc)))
                continue
            if ended.is_set():
                return
            failures = refusals = 0
            step.requests += 1
            step.latencies.append(probe.clock() - sent)
            timed += step.latencies[-1]
            step.marks.append((sent, True))
            step.records += fetched.page.count
            probe.pages.followed(request, fetched.page.count, fetched.next)

    try:
        async with asyncio.TaskGroup() as group:
            workers = [group.create_task(worker()) for _ in range(concurrency)]
            await _first_of(probe.sleep(seconds), ended.wait())
            for task in workers:
                task.cancel()
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None
    step.seconds = probe.clock() - started
    return step


async def _first_of(*waits: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
