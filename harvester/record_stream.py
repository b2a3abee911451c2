"""stream() and iter_records(): the dataset's records in order, as values, with no output file.

The harvest is the same as a file harvest's, up to the ordered sink; the sink's writer is a
RecordsWriter that hands each committed page's records to the consumer instead of writing bytes.
Its `drain()` waits until the consumer has taken the page, so a slow consumer holds the sink's
reorder window, and the window holds the workers: memory stays flat however slow the loop that
reads the records. Nothing is checkpointed (nothing is kept to resume from); partition windows
after the first spool into a private temporary folder, as in a file harvest, removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Generator, Mapping
from typing import Any

from harvester.api import ConfigSource, Progress, progress_display, resolve_config
from harvester.blocking import iterate_blocking
from harvester.config import Config
from harvester.errors import ConfigError
from harvester.interrupts import KEYBOARD_INTERRUPT, nothing_kept, on_interrupt
from harvester.page import Page
from harvester.runner import run
from harvester.stats import Stats
from harvester.writers.base import Format, Target, Writer, records_of

__all__ = ["iter_records", "stream"]

# Pages the sync iterator's thread may hold ahead of the `for` loop that reads them.
_BUFFERED_PAGES = 8
# The output path a config for records needs no more than to_arrow's does; filled in if absent.
_NO_OUTPUT = {"output.path": "records"}


async def stream(
    config: ConfigSource,
    *,
    workers: int | None = None,
    max_records: int | None = None,
    progress: Progress = "auto",
    overrides: Mapping[str, Any] | None = None,
) -> AsyncGenerator[Any, None]:
    """`async for record in harvester.stream(config)`: every record of the dataset, in order.

    Records are values as JSON decodes them; a number a float would alter comes as an
    ExactNumber (a Decimal keeping every digit). They are exactly the records a JSON Lines
    harvest of the same config writes. No file is written and nothing is checkpointed: the
    config's output settings are not used. Leaving the loop early ends the harvest; wrap the
    stream in `contextlib.aclosing()` to have it end at once, its connections closed, rather
    than when the generator is collected. The keywords are harvest()'s.
    """
    resolved = _records_config(config, workers, overrides)
    async with contextlib.aclosing(_pages(resolved, max_records, progress)) as pages:
        async for page in pages:
            for record in page:
                yield record


def iter_records(
    config: ConfigSource,
    *,
    workers: int | None = None,
    max_records: int | None = None,
    progress: Progress = "auto",
    overrides: Mapping[str, Any] | None = None,
) -> Generator[Any, None, None]:
    """`for record in harvester.iter_records(config)`: stream() for synchronous code.

    Works in a script and under a running event loop (a notebook): the harvest runs on a loop
    of its own in a worker thread, at most a few pages ahead of the loop reading the records.
    `break`, an exception or Ctrl-C in the loop ends the harvest and its thread before going on.
    A generator kept in a variable keeps its harvest paused until it is closed or dropped: use
    `with contextlib.closing(harvester.iter_records(config)) as records:` to end it at once.
    """
    resolved = _records_config(config, workers, overrides)
    for page in iterate_blocking(
        lambda: _pages(resolved, max_records, progress), buffered=_BUFFERED_PAGES
    ):
        yield from page


def _records_config(
    config: ConfigSource, workers: int | None, overrides: Mapping[str, Any] | None
) -> Config:
    try:
        return resolve_config(config, workers=workers, overrides=overrides)
    except ConfigError as exc:
        # No output section, or one without a path: stream() writes no file.
        if exc.key not in ("output", "output.path") or "required" not in exc.detail:
            raise
    return resolve_config(config, workers=workers, overrides={**(overrides or {}), **_NO_OUTPUT})


async def _pages(
    config: Config, max_records: int | None, progress: Progress
) -> AsyncGenerator[list[Any], None]:
    """Each committed page's records, in order, while the harvest runs as a task of its own."""
    pages: asyncio.Queue[list[Any]] = asyncio.Queue(maxsize=1)
    stats = Stats()

    async def harvest() -> None:
        with progress_display(stats, progress, max_records=max_records):
            await run(
                config,
                max_records=max_records,
                stats=stats,
                writer=lambda target, fmt: RecordsWriter(target, fmt, pages),
            )

    task = asyncio.create_task(harvest(), name="harvester-stream")
    interrupted = False

    def interrupt() -> None:  # Ctrl-C, the kernel's interrupt: nothing to finish, nothing kept
        nonlocal interrupted
        interrupted = True
        task.cancel()

    try:
        with on_interrupt(interrupt):
            while True:
                if not pages.empty():
                    yield pages.get_nowait()
                    continue
                if task.done():
                    if task.cancelled() and interrupted:
                        raise nothing_kept(KEYBOARD_INTERRUPT)
                    task.result()  # raises what ended the harvest, if anything did
                    return
                taking = asyncio.ensure_future(pages.get())
                try:
                    await asyncio.wait([taking, task], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not taking.done():
                        taking.cancel()  # the page, if any, stays in the queue
                if taking.done() and not taking.cancelled():
                    yield taking.result()
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class RecordsWriter(Writer):
    """Hands each committed page's records to a queue instead of writing them anywhere."""

    def __init__(self, target: Target, fmt: Format, pages: asyncio.Queue[list[Any]]) -> None:
        super().__init__(target, fmt)
        self._pages = pages
        self._waiting: list[list[Any]] = []
        self._handing_over = asyncio.Lock()

    def open(self, state: dict[str, Any] | None) -> None:
        self._waiting.clear()  # never resumed: records mode keeps no checkpoint

    def write(self, page: Page) -> None:
        self._waiting.append(records_of(page))

    async def drain(self) -> None:
        # Workers drain side by side (each after the page it put): one at a time hands the
        # pages over, in the order written.
        async with self._handing_over:
            while self._waiting:
                await self._pages.put(self._waiting.pop(0))

    def checkpoint(self) -> tuple[dict[str, Any], list[int]]:
        return {}, []

    def finish(self) -> None:
        pass

    def place(self) -> None:
        pass

    def close(self) -> None:
        self._waiting.clear()
