"""The demo API: an aiohttp app that behaves like the APIs harvester is for, faults included.

Every data request passes the same gate, in this order: it is counted; the rate limit (429);
the bearer token (401); the latency; one random draw for a fault (5xx, dropped connection,
truncated body, 429); then the real answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Literal

import orjson
from aiohttp import web
from aiohttp.log import access_logger as web_logger

from .pages import JSON, Answer, error_answer, offset_page, range_page
from .ratelimit import TokenBucket, retry_after_seconds
from .records import EncodedRecords
from .settings import DemoSettings, DemoStats
from .tokens import TokenStore, bearer_token, token_response

__all__ = ["DemoServer", "DemoSettings", "DemoStats", "create_app", "run_demo"]

Fault = Literal["5xx", "drop", "truncate", "429"]


class DemoState:
    """Everything the handlers share: one per app, on one event loop, so no locks are needed."""

    def __init__(self, settings: DemoSettings) -> None:
        self.settings = settings
        self.stats = DemoStats()
        self.tokens = TokenStore()
        self.records = EncodedRecords()
        self.random = random.Random(settings.seed)
        self._bucket: TokenBucket | None = None

    def rate_limit_wait(self) -> float:
        """0.0 if this request fits the rate limit, else the seconds until it would."""
        rate = self.settings.rate_limit
        if rate is None:
            return 0.0
        # The limit may be changed at run time; a new rate starts a new, full bucket.
        if self._bucket is None or self._bucket.rate != rate:
            self._bucket = TokenBucket(rate)
        return self._bucket.acquire()

    def draw_fault(self) -> Fault | None:
        """One draw decides among the faults, so they never overlap and each keeps its own rate."""
        s = self.settings
        rates: tuple[tuple[Fault, float], ...] = (
            ("5xx", s.fault_rate),
            ("drop", s.drop_rate),
            ("truncate", s.truncate_rate),
            ("429", s.throttle_rate),
        )
        draw = self.random.random()
        for fault, rate in rates:
            if draw < rate:
                return fault
            draw -= rate
        return None

    def retry_after(self, wait: float) -> str:
        if self.settings.retry_after is None:
            return str(retry_after_seconds(wait))
        # Sent as given, fractions too: tests set 0 so that nobody waits.
        return f"{self.settings.retry_after:g}"


STATE = web.AppKey("demo_state", DemoState)
Page = Callable[[web.Request, DemoState], Answer]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _send(state: DemoState, answer: Answer) -> web.Response:
    state.stats.statuses[answer.status] += 1
    return web.Response(
        status=answer.status, body=answer.body, content_type=JSON, headers=answer.headers
    )


async def _gate(request: web.Request, state: DemoState) -> web.Response | Fault | None:
    """A response that refuses the request, or the fault to inject, or None to answer it."""
    settings, stats = state.settings, state.stats
    stats.data_requests += 1
    if stats.data_requests == settings.revoke_tokens_after:
        state.tokens.expire_all()
    wait = state.rate_limit_wait()
    if wait:
        stats.faults["429"] += 1
        refusal = error_answer(429, "rate_limited", "too many requests", **_retry(state, wait))
        return _send(state, refusal)
    token = bearer_token(request.headers.get("Authorization"))
    if token is None or not state.tokens.is_valid(token):
        stats.faults["401"] += 1
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        return _send(state, error_answer(401, "invalid_token", "missing or expired", **challenge))
    if settings.latency:
        await asyncio.sleep(settings.latency)
    return state.draw_fault()


def _retry(state: DemoState, wait: float) -> dict[str, str]:
    return {"Retry-After": state.retry_after(wait)}


def _fault_response(
    request: web.Request, state: DemoState, fault: Fault, page: Page
) -> web.Response:
    state.stats.faults[fault] += 1
    if fault == "5xx":
        status = state.random.choice((500, 502, 503))
        return _send(state, error_answer(status, "server_error", "injected fault"))
    if fault == "429":
        return _send(state, error_answer(429, "rate_limited", "injected", **_retry(state, 1.0)))
    if fault == "truncate":
        # Status, headers and Content-Length as usual: only the JSON is broken.
        answer = page(request, state)
        return _send(state, replace(answer, body=answer.body[: len(answer.body) // 2]))
    # A drop: close the socket before a byte is written. aiohttp then fails to write the
    # response returned here, takes that for a client that went away, and logs nothing.
    if request.transport is not None:
        request.transport.close()
    return web.Response()


def _data_endpoint(page: Page) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        gated = await _gate(request, state)
        if isinstance(gated, web.Response):
            return gated
        if gated is not None:
            return _fault_response(request, state, gated, page)
        return _send(state, page(request, state))

    return handler


def _items(request: web.Request, state: DemoState) -> Answer:
    s = state.settings
    return offset_page(
        request.query, total=s.records, max_page_size=s.max_page_size, records=state.records
    )


def _range_items(request: web.Request, state: DemoState) -> Answer:
    s = state.settings
    return range_page(
        request.headers.get("Range"),
        total=s.records,
        max_page_size=s.max_page_size,
        ignore_range=s.ignore_range,
        records=state.records,
    )


async def _token(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    return await token_response(request, state.settings, state.stats, state.tokens)


async def _stats(request: web.Request) -> web.StreamResponse:
    stats = request.app[STATE].stats.as_dict()
    return web.Response(body=orjson.dumps(stats, option=orjson.OPT_NON_STR_KEYS), content_type=JSON)


async def _health(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


def create_app(settings: DemoSettings | None = None) -> web.Application:
    """The demo API as an aiohttp app; `settings` stays live, changes apply to the next request."""
    app = web.Application()
    app[STATE] = DemoState(settings if settings is not None else DemoSettings())
    app.router.add_post("/oauth2/token", _token)
    app.router.add_get("/items", _data_endpoint(_items))
    app.router.add_get("/range-items", _data_endpoint(_range_items))
    app.router.add_get("/_stats", _stats)
    app.router.add_get("/health", _health)
    return app


class DemoServer:
    """A running demo API: where it listens, its live settings, and what it has served."""

    def __init__(self, app: web.Application, url: str) -> None:
        self._state = app[STATE]
        self.url = url

    @property
    def settings(self) -> DemoSettings:
        return self._state.settings

    @property
    def stats(self) -> DemoStats:
        return self._state.stats

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far; the next data request with one gets 401."""
        self._state.tokens.expire_all()


@contextlib.asynccontextmanager
async def run_demo(
    settings: DemoSettings | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    access_log: bool = False,
) -> AsyncIterator[DemoServer]:
    """Serve the demo API on host:port (0 = a free port) until the block exits."""
    app = create_app(settings)
    # access_log=None switches aiohttp's per-request log off entirely, not just its output.
    runner = web.AppRunner(app, access_log=web_logger if access_log else None, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield DemoServer(app, f"http://{shown}:{bound_port}")
    finally:
        await runner.cleanup()
