"""A real HTTP proxy (the proxy.py package) on a loopback port, for the tests, and its access log.

It runs as a child process with one acceptor and one worker; its port comes through a named pipe
given as --port-file (the proxy writes it once it listens, so nothing is polled), and its log
(stderr) is read as it comes. Each request it forwards shows as one FORWARDED line
(tests/proxy_plugin.py), logged before the request goes on to the server: by the time harvester
has its answer, the line has been written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

# Each step takes well under a second; this only keeps a broken proxy from hanging the suite.
_HUNG = 30.0
_FORWARDED = re.compile(r"FORWARDED (?P<method>[A-Z]+) (?P<target>\S+) credential=(?P<cred>\w+)")
_PLUGIN = "tests.proxy_plugin.LogEachRequest"  # one line per request (see proxy_plugin.py)
_ROOT = Path(__file__).parents[1]


class ProxyServer:
    """A running proxy: its URL, and the access lines it has logged so far."""

    def __init__(
        self, process: asyncio.subprocess.Process, port: int, credential: str | None
    ) -> None:
        self.process = process
        self.credential = credential  # the Proxy-Authorization value it asks for, if any
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log: list[str] = []
        # (method, host:port/path, whether the proxy credential came) of each forwarded request
        self.forwarded: list[tuple[str, str, bool]] = []
        self._seen = asyncio.Event()

    async def read_log(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            found = _FORWARDED.search(line)
            if found:
                self.forwarded.append((found["method"], found["target"], found["cred"] == "yes"))
            self._seen.set()

    async def settled(self, server_url: str) -> list[tuple[str, str, bool]]:
        """Every request forwarded so far (before this call), once its line has been read.

        A marker request goes through the proxy to `server_url`; the proxy's one worker logs in
        order, so once the marker's line has come, every earlier line has too.
        """
        marker = f"/health?marker={len(self.log)}"
        headers = {"Proxy-Authorization": self.credential} if self.credential else {}
        async with (
            aiohttp.ClientSession() as session,
            session.get(server_url + marker, proxy=self.url, headers=headers) as answer,
        ):
            assert answer.status != 407, "the marker request lacks the proxy's credentials"
        async with asyncio.timeout(_HUNG):
            while not any(marker in line for line in self.log):
                self._seen.clear()
                await self._seen.wait()
        return [f for f in self.forwarded if not f[1].endswith(marker)]


async def _read_port(fifo: Path) -> int:
    """The port the proxy writes to the named pipe `fifo` once it listens."""
    loop = asyncio.get_running_loop()
    # Opened without blocking: the proxy's open for writing then finds a reader at once.
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    ready = asyncio.Event()
    loop.add_reader(fd, ready.set)
    data = b""
    try:
        while not data.endswith(b"\n"):
            await ready.wait()
            ready.clear()
            with contextlib.suppress(BlockingIOError):
                data += os.read(fd, 64)
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return int(data.split()[0])


@contextlib.asynccontextmanager
async def run_proxy(folder: Path, *, basic_auth: str | None = None) -> AsyncIterator[ProxyServer]:
    """proxy.py on 127.0.0.1 (a free port) until the block exits; with `basic_auth`
    (user:password) it answers 407 to a request without those credentials."""
    args = ["--basic-auth", basic_auth] if basic_auth else []
    fifo = folder / "proxy.port"
    os.mkfifo(fifo)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        "--hostname",
        "127.0.0.1",
        "--port",
        "0",
        "--port-file",
        str(fifo),
        "--num-acceptors",
        "1",
        "--num-workers",
        "1",
        "--log-level",
        "INFO",
        "--plugins",
        _PLUGIN,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(_ROOT)},
    )
    reading: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(_HUNG):
            port = await _read_port(fifo)
        user, _, password = (basic_auth or "").partition(":")
        credential = aiohttp.encode_basic_auth(user, password) if basic_auth else None
        server = ProxyServer(process, port, credential)
        reading = asyncio.create_task(server.read_log())
        yield server
    finally:
        if process.returncode is None:
            process.terminate()  # by its pid: only the proxy this test started
            try:
                async with asyncio.timeout(_HUNG):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if reading is not None:
            await reading
