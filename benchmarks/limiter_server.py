"""A loopback API behind one configurable rate limiter, for rate_matrix.py.

    python benchmarks/limiter_server.py --limiter token-bucket --rate 50 --burst 5
        [--window 1] [--status 429] [--headers none|x|ietf]
        [--retry-after ceil|date|exact|none|flask]
        [--records 10000] [--latency 0.02] [--port 0]

It prints `listening on http://127.0.0.1:PORT` once ready and serves until terminated:

    GET  /items?offset=&limit=   {"items": [...], "total": N}; no auth; 20 ms added per admitted
                                 request (refusals are answered at once, as at an API's edge)
    POST /_reset                 a fresh limiter (full bucket, empty windows) and empty counters
    GET  /_stats                 what this session served: statuses, its span, a 1 s timeline

Limiters (`--limiter`). The `limits` library's strategies with its MemoryStorage are what
Flask-Limiter and slowapi run; the others are ours, where `limits` has none:

    token-bucket  (ours)    `rate`/s, bucket of `burst`
    gcra          (ours)    GCRA, emission interval 1/rate, tolerance (burst - 1)/rate
    fixed-wall    (ours)    `rate * window` per window, windows on wall-clock multiples of it
    fixed-first   (limits)  FixedWindowRateLimiter: a window starts at the first request after
                            the last one ended (limits' MemoryStorage sets the key's expiry at
                            its first hit, and so do its Redis and Memcached storages)
    moving        (limits)  MovingWindowRateLimiter: a sliding log
    sliding       (limits)  SlidingWindowCounterRateLimiter: the previous window's count, weighted
    leaky         (ours)    nginx limit_req: excess over `rate` is queued (answered late, by
                            excess/rate) up to `burst`, beyond that refused
    concurrency   (ours)    at most `burst` requests in flight; `rate` is unused
    quota         (limits)  FixedWindowRateLimiter of `rate * window` per `window` (a long quota,
                            e.g. 600 per 20 s standing in for 5,000 per hour)

Refusals get `--status` (429 or 503) and the chosen Retry-After: `ceil` whole seconds rounded
up (at least 1), `date` an HTTP-date (the first whole second at or after the moment), `exact`
fractional seconds, `none` absent, `flask` as Flask-Limiter 4 renders it (its whole
seconds to `int(reset) + 1`, truncated: 0 when the reset is due within the current wall-clock
second). Every answer, 2xx or refused, carries the chosen headers:

    x     X-RateLimit-Limit / -Remaining / -Reset (Unix time, rounded up), as Flask-Limiter
    ietf  RateLimit-Policy: L;w=W and RateLimit: limit=L, remaining=R, reset=S (whole seconds,
          rounded up), as express-rate-limit's `standardHeaders: "draft-7"`

For rate-type limiters (token bucket, GCRA, leaky) L;w=W is the sustained rate per second and
R what may go right now; for windows L is the window's quota; the concurrency limiter sends only
Limit and Remaining (slots), with no reset and no policy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import math
import signal
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import web
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

READY = "listening on "
LIMITERS = (
    "token-bucket",
    "gcra",
    "fixed-wall",
    "fixed-first",
    "moving",
    "sliding",
    "leaky",
    "concurrency",
    "quota",
)
HEADERS = ("none", "x", "ietf")
RETRY_AFTER = ("ceil", "date", "exact", "none", "flask")


@dataclass(frozen=True, kw_only=True)
class Spec:
    """One limiter as the command line describes it."""

    limiter: str
    rate: float  # requests per second; the quota is rate * window
    burst: int = 1  # bucket size, queue length (leaky), or requests in flight (concurrency)
    window: int = 1  # seconds, for the window limiters
    status: int = 429
    headers: str = "none"
    retry_after: str = "ceil"


@dataclass(frozen=True, slots=True)
class Decision:
    """What the limiter made of one request, and what its headers will say."""

    allowed: bool
    wait: float = 0.0  # refused: seconds until a request would be admitted
    delay: float = 0.0  # admitted: seconds the answer is held back (leaky bucket)
    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None  # seconds until the budget is whole again
    window: int | None = None  # seconds the limit is counted over, for RateLimit-Policy


class Limiter(Protocol):
    async def admit(self) -> Decision: ...

    def release(self) -> None: ...


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.capacity = rate, float(burst)
        self.tokens, self.updated = self.capacity, time.monotonic()

    async def admit(self) -> Decision:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        allowed = self.tokens >= 1.0
        if allowed:
            self.tokens -= 1.0
        return Decision(
            allowed=allowed,
            wait=0.0 if allowed else (1.0 - self.tokens) / self.rate,
            limit=round(self.rate),
            remaining=math.floor(self.tokens),
            reset=(self.capacity - self.tokens) / self.rate,
            window=1,
        )

    def release(self) -> None:
        pass


class Gcra:
    """The generic cell rate algorithm: one theoretical arrival time, as redis-cell keeps."""

    def __init__(self, rate: float, burst: int) -> None:
        self.interval = 1.0 / rate
        self.tolerance = (burst - 1) * self.interval
        self.rate = rate
        self.tat = time.monotonic()

    async def admit(self) -> Decision:
        now = time.monotonic()
        tat = max(self.tat, now)
        if tat - now > self.tolerance:
            wait = tat - self.tolerance - now
            return self._decision(False, wait, tat - now, 0)
        self.tat = tat + self.interval
        left = math.floor((now + self.tolerance - self.tat) / self.interval) + 1
        return self._decision(True, 0.0, self.tat - now, max(0, left))

    def _decision(self, allowed: bool, wait: float, reset: float, remaining: int) -> Decision:
        limit = round(self.rate)
        return Decision(
            allowed=allowed, wait=wait, limit=limit, remaining=remaining, reset=reset, window=1
        )

    def release(self) -> None:
        pass


class FixedWallWindow:
    """`quota` per `window` seconds, counted per wall-clock window (floor(time / window))."""

    def __init__(self, quota: int, window: int) -> None:
        self.quota, self.window = quota, window
        self.current, self.count = -1, 0

    async def admit(self) -> Decision:
        now = time.time()
        index = math.floor(now / self.window)
        if index != self.current:
            self.current, self.count = index, 0
        reset = (index + 1) * self.window - now
        allowed = self.count < self.quota
        if allowed:
            self.count += 1
        return Decision(
            allowed=allowed,
            wait=0.0 if allowed else reset,
            limit=self.quota,
            remaining=self.quota - self.count,
            reset=reset,
            window=self.window,
        )

    def release(self) -> None:
        pass


class LimitsStrategy:
    """One of the `limits` library's strategies over its in-memory storage, one key for all."""

    def __init__(self, strategy: type[RateLimiter], item: RateLimitItem) -> None:
        self.limiter = strategy(MemoryStorage())
        self.item = item

    async def admit(self) -> Decision:
        allowed = await self.limiter.hit(self.item, "all")
        stats = await self.limiter.get_window_stats(self.item, "all")
        reset = max(0.0, stats.reset_time - time.time())
        return Decision(
            allowed=allowed,
            # What Flask-Limiter puts in Retry-After: the time until the window stats reset.
            wait=0.0 if allowed else reset,
            limit=self.item.amount,
            remaining=stats.remaining,
            reset=reset,
            window=self.item.get_expiry(),
        )

    def release(self) -> None:
        pass


class LeakyQueue:
    """nginx `limit_req rate=R burst=B` (no nodelay): excess queued up to B, then refused.

    As ngx_http_limit_req_module counts: excess = max(0, excess - rate * elapsed + 1) per
    request (the very first request: 0); over `burst` the request is refused and changes
    nothing; otherwise the answer waits excess / rate seconds.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.excess: float | None = None  # None: no request yet
        self.last = time.monotonic()

    async def admit(self) -> Decision:
        now = time.monotonic()
        if self.excess is None:
            excess = 0.0
        else:
            excess = max(0.0, self.excess - self.rate * (now - self.last) + 1.0)
        allowed = excess <= self.burst
        if allowed:
            self.excess, self.last = excess, now
        held = self.excess or 0.0
        return Decision(
            allowed=allowed,
            wait=0.0 if allowed else (excess - self.burst) / self.rate,
            delay=excess / self.rate if allowed else 0.0,
            limit=round(self.rate),
            remaining=max(0, math.floor(self.burst - held)),
            reset=held / self.rate,
            window=1,
        )

    def release(self) -> None:
        pass


class InFlight:
    """At most `most` requests in flight; a slot is freed when the answer is ready."""

    def __init__(self, most: int, latency: float) -> None:
        self.most, self.latency = most, latency
        self.busy = 0

    async def admit(self) -> Decision:
        allowed = self.busy < self.most
        if allowed:
            self.busy += 1
        return Decision(
            allowed=allowed,
            wait=0.0 if allowed else self.latency,
            limit=self.most,
            remaining=self.most - self.busy,
        )

    def release(self) -> None:
        self.busy -= 1


def make_limiter(spec: Spec, latency: float) -> Limiter:
    quota = round(spec.rate * spec.window)
    item = RateLimitItemPerSecond(quota, spec.window)
    match spec.limiter:
        case "token-bucket":
            return TokenBucket(spec.rate, spec.burst)
        case "gcra":
            return Gcra(spec.rate, spec.burst)
        case "fixed-wall":
            return FixedWallWindow(quota, spec.window)
        case "fixed-first" | "quota":
            return LimitsStrategy(FixedWindowRateLimiter, item)
        case "moving":
            return LimitsStrategy(MovingWindowRateLimiter, item)
        case "sliding":
            return LimitsStrategy(SlidingWindowCounterRateLimiter, item)
        case "leaky":
            return LeakyQueue(spec.rate, spec.burst)
        case "concurrency":
            return InFlight(spec.burst, latency)
    raise ValueError(f"unknown limiter {spec.limiter!r}")


def rate_headers(decision: Decision, style: str) -> dict[str, str]:
    """The rate-limit headers of `style` that describe `decision`."""
    if style == "none" or decision.limit is None:
        return {}
    limit, remaining = decision.limit, decision.remaining
    if style == "x":
        headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining)}
        if decision.reset is not None:
            headers["X-RateLimit-Reset"] = str(math.ceil(time.time() + decision.reset))
        return headers
    if decision.reset is None:  # the concurrency limiter: slots, no time to tell
        return {"RateLimit": f"limit={limit}, remaining={remaining}"}
    reset = math.ceil(round(decision.reset, 6))
    return {
        "RateLimit-Policy": f"{limit};w={decision.window}",
        "RateLimit": f"limit={limit}, remaining={remaining}, reset={reset}",
    }


def retry_after(wait: float, style: str) -> dict[str, str]:
    """Retry-After for a refusal whose budget returns in `wait` seconds."""
    if style == "ceil":
        return {"Retry-After": str(max(1, math.ceil(round(wait, 6))))}
    if style == "date":
        moment = math.ceil(time.time() + wait)
        return {"Retry-After": email.utils.formatdate(moment, usegmt=True)}
    if style == "exact":
        return {"Retry-After": f"{max(0.001, wait):.3f}"}
    if style == "flask":
        # flask_limiter/_extension.py: reset_at = int(window reset + 1), then
        # Retry-After = int(reset_at - time.time()).
        now = time.time()
        return {"Retry-After": str(int(int(now + wait + 1) - now))}
    return {}


class Session:
    """The limiter and what it served since the last reset."""

    def __init__(self, spec: Spec, latency: float) -> None:
        self.limiter = make_limiter(spec, latency)
        self.statuses: Counter[int] = Counter()
        self.served: list[tuple[float, float, int]] = []  # (arrival, answered, status)

    def stats(self) -> dict[str, Any]:
        if not self.served:
            return {"requests": 0, "ok": 0, "refused": 0, "statuses": {}, "span": 0.0}
        first = min(arrival for arrival, _, _ in self.served)
        last = max(answered for _, answered, _ in self.served)
        ok = sum(1 for *_, status in self.served if 200 <= status < 300)
        timeline: dict[int, list[int]] = {}
        for arrival, _, status in self.served:
            second = timeline.setdefault(int(arrival - first), [0, 0])
            second[0 if 200 <= status < 300 else 1] += 1
        return {
            "requests": len(self.served),
            "ok": ok,
            "refused": self.statuses[429] + self.statuses[503],
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "span": last - first,
            # Per second since the first request: [2xx, refused], by arrival.
            "timeline": [timeline.get(s, [0, 0]) for s in range(max(timeline) + 1)],
        }


def make_app(spec: Spec, *, records: int, latency: float) -> web.Application:
    app = web.Application()
    state = {"session": Session(spec, latency)}
    encoded = [
        orjson.dumps({"id": i, "name": f"item-{i:07d}", "value": i * 7919 % 10007})
        for i in range(records)
    ]

    async def items(request: web.Request) -> web.Response:
        session = state["session"]
        arrival = time.monotonic()
        decision = await session.limiter.admit()
        headers = rate_headers(decision, spec.headers)
        if not decision.allowed:
            headers.update(retry_after(decision.wait, spec.retry_after))
            session.statuses[spec.status] += 1
            session.served.append((arrival, time.monotonic(), spec.status))
            body = b'{"error": "rate limited"}'
            return web.Response(
                status=spec.status, body=body, headers=headers, content_type="application/json"
            )
        try:
            await asyncio.sleep(decision.delay + latency)
            offset = int(request.query.get("offset", "0"))
            limit = min(1000, int(request.query.get("limit", "100")))
            page = encoded[offset : offset + limit]
            body = b'{"items":[' + b",".join(page) + b'],"total":' + str(records).encode() + b"}"
        finally:
            session.limiter.release()
        session.statuses[200] += 1
        session.served.append((arrival, time.monotonic(), 200))
        return web.Response(body=body, headers=headers, content_type="application/json")

    async def reset(request: web.Request) -> web.Response:
        state["session"] = Session(spec, latency)
        return web.json_response({"reset": True})

    async def stats(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(state["session"].stats()))

    app.router.add_get("/items", items)
    app.router.add_post("/_reset", reset)

    async def served(request: web.Request) -> web.Response:
        """Every request since the last reset: (arrival, answered, status), for diagnosis."""
        return web.Response(body=orjson.dumps(state["session"].served))

    app.router.add_get("/_stats", stats)
    app.router.add_get("/_served", served)
    return app


async def serve(spec: Spec, *, records: int, latency: float, port: int) -> None:
    runner = web.AppRunner(make_app(spec, records=records, latency=latency), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"{READY}http://127.0.0.1:{bound}", flush=True)
    try:
        await asyncio.Event().wait()  # until the process is terminated
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limiter", choices=LIMITERS, required=True)
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--burst", type=int, default=1)
    parser.add_argument("--window", type=int, default=1, help="seconds")
    parser.add_argument("--status", type=int, choices=(429, 503), default=429)
    parser.add_argument("--headers", choices=HEADERS, default="none")
    parser.add_argument("--retry-after", choices=RETRY_AFTER, default="ceil")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    spec = Spec(
        limiter=args.limiter,
        rate=args.rate,
        burst=args.burst,
        window=args.window,
        status=args.status,
        headers=args.headers,
        retry_after=args.retry_after,
    )

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(spec, records=args.records, latency=args.latency, port=args.port))


if __name__ == "__main__":
    main()
