"""Helpers for the Python API tests: the demo API on a thread of its own, Python subprocesses."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harvester.demo import DemoServer, DemoSettings, run_demo


@dataclass
class ThreadedDemo:
    """The demo API serving from a loop in another thread: it keeps answering while the test's
    own thread blocks in harvest(), as a notebook cell does."""

    server: DemoServer
    loop: asyncio.AbstractEventLoop

    @property
    def url(self) -> str:
        return self.server.url

    def after_requests(self, count: int) -> concurrent.futures.Future[None]:
        """Done once the API has received `count` data requests in all."""
        return asyncio.run_coroutine_threadsafe(self.server.wait_for_requests(count), self.loop)


@contextlib.contextmanager
def demo_in_thread(settings: DemoSettings) -> Iterator[ThreadedDemo]:
    """Serve the demo API from a thread of its own until the block exits."""
    loop = asyncio.new_event_loop()
    ready: concurrent.futures.Future[tuple[DemoServer, asyncio.Event]] = concurrent.futures.Future()

    async def serve() -> None:
        async with run_demo(settings) as server:
            closing = asyncio.Event()
            ready.set_result((server, closing))
            await closing.wait()
            # A wait the test gave up on (after_requests) ends with the server, not after it.
            others = asyncio.all_tasks() - {asyncio.current_task()}
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    server, closing = ready.result(timeout=30)
    try:
        yield ThreadedDemo(server, loop)
    finally:
        loop.call_soon_threadsafe(closing.set)
        thread.join(timeout=30)
        loop.close()


async def start_python(code: str, cwd: Path) -> asyncio.subprocess.Process:
    """`python -c CODE` in `cwd`, its output piped, awaited by the loop so that a demo API in
    this process keeps serving."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finished(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `process`, once it ends (killed after 60 s)."""
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()
