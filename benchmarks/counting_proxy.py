"""A counting reverse proxy on loopback: how many requests a client sent, as the server saw them.

    with Proxy("http://127.0.0.1:8000").serving() as proxy:
        ...  # the client is given proxy.url instead of the server's
        proxy.phase = "harvest"  # the requests from here on are counted apart
        ...
    proxy.count("init"), proxy.log  # each request, its answer's status, headers, top of the body

It runs on an event loop of its own in a thread, so the script around it stays synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

# Not forwarded: they describe one connection, or a body this proxy re-frames (it decompresses).
HOP_BY_HOP = frozenset(
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "accept-encoding",
    ]
)


class Proxy:
    """A reverse proxy on a loopback port in front of `upstream`, logging what passes through.

    The Host header goes through unchanged, so the server writes its next links to the proxy.
    Requests are counted per `phase`; the log keeps each answer's headers and the top of its body.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.phase = "init"
        self.log: list[dict[str, Any]] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def count(self, phase: str) -> int:
        return sum(1 for entry in self.log if entry["phase"] == phase)

    async def _forward(self, request: web.Request) -> web.Response:
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        target = URL(self.upstream + request.raw_path, encoded=True)
        entry: dict[str, Any] = {
            "phase": self.phase,
            "request": f"{request.method} {request.raw_path}",
        }
        self.log.append(entry)
        async with self._session.request(
            request.method, target, headers=headers, data=await request.read()
        ) as answer:
            body = await answer.read()
        kept = [(k, v) for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP]
        entry.update(status=answer.status, headers=kept, body=body[:600].decode("utf-8", "replace"))
        return web.Response(status=answer.status, headers=kept, body=body)

    async def _start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=60)
        self._session = aiohttp.ClientSession(timeout=timeout, auto_decompress=True)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def _stop(self) -> None:
        await self._runner.cleanup()
        await self._session.close()

    @contextlib.contextmanager
    def serving(self) -> Iterator[Proxy]:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
