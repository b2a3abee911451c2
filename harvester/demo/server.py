"""The demo API: an aiohttp app that behaves like the APIs harvester is for, faults included.

Every data request (/items, /range-items, /pages, /stream, /cursor, /link) passes the same gate,
in this order: it is counted; a 429 storm; the rate limit (429, or rate_limit_status; with
rate_limit_queue, a wait for its turn: harvester.demo.queue); the bearer token (401); the
latency; one random draw for a fault (5xx, dropped connection, truncated body, 429, a slow
answer, a body cut off in transit); then the real answer, where a query parameter the page cannot
use (BadParam) is 400 invalid_request. Every answer after the rate limit, the limiter's own 429
included, carries the rate-limit headers that `rate_limit_headers` asks for (see
harvester.demo.ratelimit; a queue sends none).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.log import access_logger as web_logger

from . import discovery, endpoints, users
from .mtls import certificate_missing, certificate_refusal
from .pages import JSON, error_answer
from .respond import Page, answer_to, close, fault_response, hung_up, retry_after, send
from .settings import DemoSettings
from .state import DemoState, Fault
from .stats import DemoStats
from .token_shapes import presented_token
from .tokens import token_response

__all__ = ["DemoServer", "DemoSettings", "DemoStats", "create_app", "run_demo", "serve"]

STATE = web.AppKey("demo_state", DemoState)
# Set on every data request received, so that a test can wait for the nth without polling.
RECEIVED = web.AppKey("demo_received", asyncio.Event)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _gate(
    request: web.Request, state: DemoState
) -> tuple[web.Response | Fault | None, dict[str, str]]:
    """What to do with the request, and the rate-limit headers its answer carries, whatever it is.

    What to do: send the response that refuses it, inject the fault, or (None) answer it.
    """
    settings, stats = state.settings, state.stats
    stats.data_requests += 1
    route = request.match_info.route.resource
    # By route: /users/{user}/orders counted once, not once per user.
    stats.endpoints[route.canonical if route is not None else request.path] += 1
    stats.clients[request.remote or ""] += 1
    request.app[RECEIVED].set()
    if certificate_missing(request, settings.client_cert_required, "data"):
        return certificate_refusal(), {}
    if stats.data_requests == settings.revoke_tokens_after:
        state.tokens.expire_all()
    storm = state.storm_left()
    if storm:
        stats.faults["429_storm"] += 1
        stormed = error_answer(429, "rate_limited", "storm", **retry_after(state, storm))
        return send(state, stormed), {}
    refusal, limit_headers = await state.pass_rate_limit(
        request.remote, hung_up=lambda: hung_up(request)
    )
    if refusal == "gone":
        close(request)
        return web.Response(), {}  # never written: its client hung up while it waited its turn
    if refusal is not None:
        return send(state, refusal), limit_headers
    token = presented_token(request.headers, settings)
    if token is None or not state.tokens.is_valid(token):
        stats.faults["401"] += 1
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        refusal = error_answer(401, "invalid_token", "missing or expired", **challenge)
        return send(state, refusal), limit_headers
    if settings.latency:
        await asyncio.sleep(settings.latency)
    return state.draw_fault(), limit_headers


def _data_endpoint(page: Page) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        gated, limit_headers = await _gate(request, state)
        response: web.StreamResponse
        if isinstance(gated, web.Response):
            response = gated
        elif gated is not None:
            response = await fault_response(request, state, gated, page, limit_headers)
        else:
            response = send(state, answer_to(request, state, page))
            if response.status == 200:
                state.stats.served[request.path_qs] += 1
        if not response.prepared:
            response.headers.update(limit_headers)
        return response

    return handler


async def _token(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    return await token_response(request, state.settings, state.stats, state.tokens)


def _discovery(kind: discovery.DiscoveryDocument) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return discovery.document(request, kind, request.app[STATE].settings)

    return handler


async def _stats(request: web.Request) -> web.StreamResponse:
    stats = request.app[STATE].stats.as_dict()
    return web.Response(body=orjson.dumps(stats, option=orjson.OPT_NON_STR_KEYS), content_type=JSON)


async def _next_generation(request: web.Request) -> web.StreamResponse:
    """Advance /changes by one generation (records added and updated); answers the new one."""
    settings = request.app[STATE].settings
    settings.changes_generation += 1
    return web.json_response({"generation": settings.changes_generation})


async def _health(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


def create_app(
    settings: DemoSettings | None = None, *, clock: Callable[[], float] = time.monotonic
) -> web.Application:
    """The demo API as an aiohttp app; `settings` stays live, changes apply to the next request.

    `clock` drives the rate limit; tests pass a fake one to step time instead of sleeping.
    """
    app = web.Application()
    app[STATE] = state = DemoState(
        settings if settings is not None else DemoSettings(), clock=clock
    )

    async def stop_waiting(app: web.Application) -> None:
        state.stopping.set()

    # on_shutdown runs before the runner waits for the handlers still running: the slow ones.
    app.on_shutdown.append(stop_waiting)
    app[RECEIVED] = asyncio.Event()
    app.router.add_post("/oauth2/token", _token)
    app.router.add_get("/items", _data_endpoint(endpoints.items))
    app.router.add_get("/range-items", _data_endpoint(endpoints.range_items))
    app.router.add_get("/pages", _data_endpoint(endpoints.pages))
    app.router.add_get("/stream", _data_endpoint(endpoints.stream))
    app.router.add_get("/cursor", _data_endpoint(endpoints.cursor))
    app.router.add_get("/link", _data_endpoint(endpoints.link))
    app.router.add_get("/users", _data_endpoint(users.users))
    app.router.add_get("/users/{user}/orders", _data_endpoint(users.orders))
    app.router.add_get("/changes", _data_endpoint(endpoints.changes))
    app.router.add_post("/admin/next-generation", _next_generation)
    for kind, path in discovery.ROUTES:
        app.router.add_get(path, _discovery(kind))
    app.router.add_get("/_stats", _stats)
    app.router.add_get("/health", _health)
    return app


class DemoServer:
    """A running demo API: where it listens, its live settings, and what it has served."""

    def __init__(self, app: web.Application, url: str) -> None:
        self._state = app[STATE]
        self._received = app[RECEIVED]
        self.url = url

    @property
    def settings(self) -> DemoSettings:
        return self._state.settings

    @property
    def stats(self) -> DemoStats:
        return self._state.stats

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token the server has issued, expired ones included."""
        return list(self._state.tokens.issued)

    @property
    def spent_assertions(self) -> int:
        """How many client assertions (each jti once) the token endpoint has accepted."""
        return len(self._state.tokens.used_jti)

    async def wait_for_requests(self, count: int) -> None:
        """Return once `count` data requests have been received in all, answered or not."""
        while self.stats.data_requests < count:
            # Nothing runs between the check, the clear and the wait: no request slips by unseen.
            self._received.clear()
            await self._received.wait()

    async def wait_for_queue(self, most: int = 0) -> None:
        """Return once at most `most` data requests wait their turn in the rate limit's queue."""
        while self._state.queued_now > most:
            self._state.queue_moved.clear()
            await self._state.queue_moved.wait()

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
    clock: Callable[[], float] = time.monotonic,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[DemoServer]:
    """Serve the demo API on host:port (0 = a free port) until the block exits.

    With `ssl_context` (holding the server's certificate) it speaks https.
    """
    app = create_app(settings, clock=clock)
    async with serve(app, host, port, access_log=access_log, ssl_context=ssl_context) as url:
        yield DemoServer(app, url)


@contextlib.asynccontextmanager
async def serve(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    access_log: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[str]:
    """Serve any aiohttp app on host:port until the block exits; yields its base URL."""
    # access_log=None switches aiohttp's per-request log off entirely, not just its output.
    runner = web.AppRunner(app, access_log=web_logger if access_log else None, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        scheme = "https" if ssl_context is not None else "http"
        yield f"{scheme}://{shown}:{bound_port}"
    finally:
        await runner.cleanup()
