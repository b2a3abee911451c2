"""The rate-limit matrix in virtual time: harvester's throttle against every limiter, in seconds.

    python benchmarks/rate_sim.py [--quick] [--full] [--only SUBSTRING] [--seeds N] [--scale X]

The figures that count come from rate_matrix.py, which runs the real CLI against a real server
for about 1.5 hours. This runs the same rows in about a minute, for developing the throttle:
the real `Throttle` and `RetryPolicy` of harvester, the real limiters of limiter_server.py (the
`limits` library's strategies among them) and its headers, but no sockets: an event loop whose
clock jumps to the next timer instead of waiting for it. What it leaves out: the client's CPU
(a fixed `OVERHEAD` per request stands in), the token endpoint.

Workers behave as workers.py's and fetch.py's: each takes the next page once it fits the
reorder window (`WINDOW` pages past the oldest not yet fetched, as sink.py's), passes the
throttle, is answered (20 ms after admission, refusals at once), tells the throttle, and on a
refusal waits what the retry policy says before asking again, ahead of first attempts. The
sequential client is sequential_client.py's loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import random
import selectors
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

from limiter_server import Spec, make_limiter, rate_headers, retry_after  # noqa: E402
from rate_matrix import BAR_REFUSED, BAR_SHARE, LATENCY, TIE, Row, matrix  # noqa: E402

from harvester.config import ConcurrencyConfig, RetryConfig  # noqa: E402
from harvester.ratelimit import Throttle  # noqa: E402
from harvester.retry import RetryPolicy, parse_retry_after  # noqa: E402
from harvester.stats import Stats  # noqa: E402

OVERHEAD = 0.0015  # the client's own time per request, seconds
# A request's way to the API varies: up to this much more, at random (seeded). Without it, a
# paced client's requests arrive exactly spaced, as no network delivers them.
JITTER = 0.001
REFUSAL = 0.001  # a refusal is answered at once, from the API's edge
WINDOW = 64  # pages: concurrency.max_buffered_pages's default
EPOCH = 1_800_000_000.37  # wall-clock time at virtual zero: windows are not aligned to it


class _VirtualSelector(selectors.DefaultSelector):
    """select(timeout) moves the loop's clock on by `timeout` instead of waiting."""

    clock: VirtualLoop

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            raise RuntimeError("deadlock: nothing scheduled and no I/O to wait for")
        if timeout > 0:
            self.clock.now += timeout
        return super().select(0)


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        selector = _VirtualSelector()
        selector.clock = self
        self.now = 0.0
        super().__init__(selector)

    def time(self) -> float:
        return self.now


@contextlib.contextmanager
def virtual_time(loop: VirtualLoop) -> Iterator[None]:
    """time.time/monotonic (limiters, `limits`) and datetime.now (Retry-After dates) follow
    the loop's clock; nothing runs in a thread."""

    class _Now(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> _Now:  # type: ignore[override]
            return cls.fromtimestamp(EPOCH + loop.now, tz)

    async def inline(function: Any, *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    with (
        # `limits` sorts its log in a thread; the loop's clock would run on meanwhile.
        mock.patch("limits.aio.storage.memory.asyncio.to_thread", inline),
        mock.patch("time.time", lambda: EPOCH + loop.now),
        mock.patch("time.monotonic", lambda: 1000.0 + loop.now),
        mock.patch("harvester.retry.datetime", _Now),
    ):
        yield


@dataclass
class Served:
    """What the limiter saw: (arrival, answered, ok) per request."""

    log: list[tuple[float, float, bool]] = field(default_factory=list)
    failed: str = ""

    def share(self, limit: float) -> float:
        if not self.log or self.failed:
            return 0.0
        first = min(a for a, _, _ in self.log)
        last = max(b for _, b, _ in self.log)
        ok = sum(1 for *_, good in self.log if good)
        return ok / max(last - first, 1e-9) / limit

    @property
    def refused(self) -> float:
        return sum(1 for *_, good in self.log if not good) / max(1, len(self.log))

    @property
    def span(self) -> float:
        return max(b for _, b, _ in self.log) - min(a for a, _, _ in self.log) if self.log else 0


async def _answer(limiter: Any, spec: Spec) -> tuple[int, dict[str, str]]:
    loop = asyncio.get_running_loop()
    decision = await limiter.admit()
    headers = rate_headers(decision, spec.headers)
    if not decision.allowed:
        headers.update(retry_after(decision.wait, spec.retry_after))
        await asyncio.sleep(REFUSAL)
        return spec.status, headers
    try:
        await asyncio.sleep(decision.delay + LATENCY)
    finally:
        limiter.release()
    del loop
    return 200, headers


async def harvester(spec: Spec, pages: int, retry: dict[str, Any], workers: int = 16) -> Served:
    limiter = make_limiter(spec, LATENCY)
    stats = Stats()
    retry_config = RetryConfig(**retry)
    loop = asyncio.get_running_loop()
    throttle = Throttle(
        ConcurrencyConfig(workers=workers),
        stats,
        clock=loop.time,
        max_pause=retry_config.max_retry_after,
        hold_long=retry_config.on_long_quota == "wait",
    )
    policy = RetryPolicy(retry_config, rng=random.Random(0))  # the same jitter every run
    jitter = random.Random(1)
    served = Served()

    window = _Window()

    async def worker(pending: Iterator[int]) -> None:
        for page in pending:
            await window.fits(page)
            for attempt in range(1, retry_config.max_attempts + 1):
                async with throttle.request(again=attempt > 1) as ticket:
                    await asyncio.sleep(OVERHEAD + jitter.uniform(0.0, JITTER))
                    arrival = loop.time()
                    status, headers = await _answer(limiter, spec)
                    served.log.append((arrival, loop.time(), status == 200))
                    ticket.observe(status, headers)
                if status == 200:
                    await window.fetched(page)
                    break
                wait_after = parse_retry_after(headers.get("Retry-After"))
                long_quota = wait_after is not None and wait_after > retry_config.max_retry_after
                if long_quota and retry_config.on_long_quota == "fail":
                    raise RuntimeError(f"long quota: {wait_after:.0f} s")
                await asyncio.sleep(policy.wait_for(attempt, wait_after, held=True))
            else:
                raise RuntimeError(f"gave up after {retry_config.max_attempts} attempts")

    rest = iter(range(1, pages))
    try:
        # As runner.py does: the first page alone (it tells the total), then every worker.
        await worker(iter(range(1)))
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker(rest))
    except* RuntimeError as failure:
        served.failed = str(failure.exceptions[0])
    return served


class _Window:
    """sink.py's reorder window: page i is fetched only once i < the oldest not yet fetched +
    WINDOW (written in order, the pages past a missing one wait in memory)."""

    def __init__(self) -> None:
        self._oldest = 0
        self._done: set[int] = set()
        self._moved = asyncio.Condition()

    async def fits(self, page: int) -> None:
        async with self._moved:
            await self._moved.wait_for(lambda: page < self._oldest + WINDOW)

    async def fetched(self, page: int) -> None:
        async with self._moved:
            self._done.add(page)
            while self._oldest in self._done:
                self._done.discard(self._oldest)
                self._oldest += 1
            self._moved.notify_all()


async def sequential(spec: Spec, pages: int) -> Served:
    limiter = make_limiter(spec, LATENCY)
    loop = asyncio.get_running_loop()
    served = Served()
    failures = 0
    done = 0
    while done < pages:
        await asyncio.sleep(OVERHEAD * 2)  # requests + json are slower than aiohttp + orjson
        arrival = loop.time()
        status, headers = await _answer(limiter, spec)
        served.log.append((arrival, loop.time(), status == 200))
        if status == 200:
            done, failures = done + 1, 0
            continue
        failures += 1
        wait = parse_retry_after(headers.get("Retry-After"))
        await asyncio.sleep(min(30.0, 2.0 ** (failures - 1)) if wait is None else wait)
    return served


async def _cancel_the_rest() -> None:
    rest = asyncio.all_tasks() - {asyncio.current_task()}
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


def simulate(coroutine_factory: Any) -> Served:
    loop = VirtualLoop()
    try:
        with virtual_time(loop):
            served: Served = loop.run_until_complete(coroutine_factory())
            # What is left (`limits` expiring its entries) is cancelled, not destroyed pending.
            loop.run_until_complete(_cancel_the_rest())
            return served
    finally:
        loop.close()


def spec_of(row: Row) -> Spec:
    f = row.family
    return Spec(
        limiter=f.limiter,
        rate=f.rate,
        burst=f.burst,
        window=f.window,
        status=f.status,
        headers=row.headers,
        retry_after=row.retry_after,
    )


def limit_of(row: Row) -> float:
    f = row.family
    return f.rate or f.burst / (LATENCY + OVERHEAD + REFUSAL)


def run(row: Row, *, offset: float = 0.0, scale: float = 1.0) -> tuple[Served, Served]:
    """`scale`: the row's requests times this (the quota's window stays): learning amortised,
    what is left is the steady state."""
    global EPOCH
    EPOCH = 1_800_000_000.37 + offset
    spec, pages, retry = spec_of(row), round(row.family.pages * scale), dict(row.retry)
    ours = simulate(lambda: harvester(spec, pages, retry))
    theirs = simulate(lambda: sequential(spec, pages))
    return ours, theirs


def _set_latency(seconds: float) -> None:
    global LATENCY
    LATENCY = seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--only", metavar="SUBSTRING")
    parser.add_argument("--seeds", type=int, default=1, help="window phases to try per row")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="each row's requests times this (steady state)"
    )
    parser.add_argument("--trace", action="store_true", help="harvester's INFO lines, timed")
    parser.add_argument(
        "--latency",
        type=float,
        default=LATENCY,
        help=f"the API's time per admitted request, seconds (the real matrix's: {LATENCY})",
    )
    args = parser.parse_args()
    _set_latency(args.latency)
    if args.trace:
        logging.basicConfig(level=logging.INFO, format="%(vtime)7.3f %(message)s")
        old = logging.getLogRecordFactory()

        def record(*a: Any, **k: Any) -> logging.LogRecord:
            r = old(*a, **k)
            r.vtime = time.monotonic() - 1000.0
            return r

        logging.setLogRecordFactory(record)
    # A row that is to fail at once (on_long_quota: fail) is the real matrix's to check.
    rows = [
        r
        for r in matrix(args.quick, args.full)
        if (not args.only or args.only in r.name) and dict(r.retry).get("on_long_quota") != "fail"
    ]
    passed = 0
    for row in rows:
        worst = ""
        ok = True
        for seed in range(args.seeds):
            ours, theirs = run(row, offset=seed * 0.377, scale=args.scale)
            share, limit = ours.share(limit_of(row)), limit_of(row)
            misses = []
            if ours.failed:
                misses.append(ours.failed)
            if share < BAR_SHARE:
                misses.append(f"{share:.0%}")
            if ours.refused > BAR_REFUSED:
                misses.append(f"{ours.refused:.1%} refused")
            if ours.span > theirs.span * (1 + TIE):
                misses.append("slower than sequential")
            ok = ok and not misses
            worst += (
                f" | {share:4.0%} {ours.refused:5.1%} {ours.span:6.1f}s"
                f" (seq {theirs.share(limit):4.0%} {theirs.span:6.1f}s)"
                f" {'ok' if not misses else 'FAIL ' + ', '.join(misses)}"
            )
        passed += ok
        print(f"{row.name:70s}{worst}", flush=True)
    print(f"{passed} of {len(rows)} rows pass", flush=True)


if __name__ == "__main__":
    main()
