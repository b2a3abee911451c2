"""How the demo API's answers go out: whole, or with the fault a draw injected (a 5xx, a 429, a
truncated or cut body, a slow answer, a dropped connection)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace

from aiohttp import web

from .encodings import encode_answer
from .pages import JSON, Answer, error_answer
from .params import BadParam
from .state import DemoState, Fault

Page = Callable[[web.Request, DemoState], Answer]


def send(state: DemoState, answer: Answer) -> web.Response:
    """The answer as a response, its status counted."""
    state.stats.statuses[answer.status] += 1
    # As a header: aiohttp refuses a charset in its content_type argument.
    headers = {**answer.headers, "Content-Type": answer.content_type}
    return web.Response(status=answer.status, body=answer.body, headers=headers)


def retry_after(state: DemoState, wait: float) -> dict[str, str]:
    """A Retry-After for a wait of `wait` seconds, in the style the settings ask for."""
    return {"Retry-After": state.retry_after(wait)}


async def fault_response(
    request: web.Request, state: DemoState, fault: Fault, page: Page, headers: dict[str, str]
) -> web.StreamResponse:
    state.stats.faults[fault] += 1
    if fault == "5xx":
        status = state.random.choice(state.settings.fault_statuses)
        return send(state, error_answer(status, "server_error", "injected fault"))
    if fault == "429":
        return send(state, error_answer(429, "rate_limited", "injected", **retry_after(state, 1.0)))
    if fault == "truncate":
        # Status, headers and Content-Length as usual: only the JSON is broken.
        answer = answer_to(request, state, page)
        return send(state, replace(answer, body=answer.body[: len(answer.body) // 2]))
    if fault == "slow":
        # The client has most likely given up by the time this answer goes out.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.stopping.wait(), state.settings.slow_seconds)
        return send(state, answer_to(request, state, page))
    if fault == "cut":
        return await _cut(request, state, answer_to(request, state, page), headers)
    # A drop: close the socket before a byte is written. aiohttp then fails to write the
    # response returned here, takes that for a client that went away, and logs nothing.
    close(request)
    return web.Response()


async def _cut(
    request: web.Request, state: DemoState, answer: Answer, headers: dict[str, str]
) -> web.StreamResponse:
    """The status, the headers and half the body, then the connection closes: cut in transit."""
    state.stats.statuses[answer.status] += 1
    response = web.StreamResponse(status=answer.status, headers={**answer.headers, **headers})
    response.content_type = JSON
    response.content_length = len(answer.body)
    await response.prepare(request)
    await response.write(answer.body[: len(answer.body) // 2])
    close(request)
    return response


def hung_up(request: web.Request) -> bool:
    """Whether the request's client has closed its connection."""
    return request.transport is None or request.transport.is_closing()


def close(request: web.Request) -> None:
    """Close the request's connection, whatever was written on it."""
    if request.transport is not None:
        request.transport.close()


def answer_to(request: web.Request, state: DemoState, page: Page) -> Answer:
    """What the page answers, encoded; a query parameter it cannot use: 400 invalid_request."""
    try:
        return encode_answer(page(request, state), state.settings)
    except BadParam as exc:
        return error_answer(400, "invalid_request", str(exc))
