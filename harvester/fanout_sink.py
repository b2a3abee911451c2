"""The fan-out's ordered sink: child pages written in parent order, then child page order.

The head parent (the oldest whose chain is not all written) writes its pages as they come; the
others, fetched meanwhile, hold theirs in memory until they become the head. At most `window`
pages are held so (the head never waits, so the run always moves on): memory stays flat
however many parents there are. The committed state is the count of parents done and where the
head's chain is, which a resumed run carries on from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from harvester.page import Page
from harvester.sink import complete, open_writer, write_page, writer_saved
from harvester.stats import Stats
from harvester.writers import Writer


@dataclass
class _Parent:
    state: dict[str, Any] | None = None  # its chain's, after the last page put
    pages: list[Page] = field(default_factory=list)  # held until it is the head
    done: bool = False


class FanoutSink:
    """Writes each parent's child pages in parent order through a bounded window."""

    def __init__(
        self,
        writer: Writer,
        *,
        output: Path,
        window: int,
        stats: Stats,
        max_records: int | None = None,
        resume: dict[str, Any] | None = None,
    ) -> None:
        self._writer = writer
        self._output = output
        self._window = window
        self._stats = stats
        self._max_records = max_records
        self._resume = resume
        self.head = int(resume["parents"]) if resume else 0
        self._parents: dict[int, _Parent] = {}
        if resume is not None and resume.get("head") is not None:
            self._parents[self.head] = _Parent(state=resume["head"])
        self._held = 0
        self._moved = asyncio.Condition()
        self.finished = False

    @property
    def committed_records(self) -> int:
        return self._stats.records

    @property
    def full(self) -> bool:
        """Whether --max-records is reached: no further page is wanted."""
        return self._max_records is not None and self._stats.records >= self._max_records

    def resumed_state(self, index: int) -> dict[str, Any] | None:
        """Where parent `index`'s chain carries on from (None: its start)."""
        parent = self._parents.get(index)
        return None if parent is None else parent.state

    async def __aenter__(self) -> FanoutSink:
        open_writer(self._writer, self._resume, self._output, self._stats)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._writer.close()  # an unfinished run leaves its .part file, never the output

    def flush(self) -> tuple[dict[str, Any], list[int]]:
        """What is committed: parents done, the head's chain state, the writer's."""
        saved, descriptors = writer_saved(self._writer)
        head = self._parents.get(self.head)
        state = {
            "parents": self.head,
            "head": None if head is None else head.state,
            "pages": self._stats.pages,
            "records": self._stats.records,
            "bytes": self._stats.bytes,
            **saved,
        }
        return state, descriptors

    async def wait_for_room(self, index: int, stopped: Callable[[], bool]) -> None:
        """Wait until parent `index` is within `window` parents of the head, or `stopped`."""
        async with self._moved:
            await self._moved.wait_for(lambda: index < self.head + self._window or stopped())

    async def wake(self) -> None:
        """Let those waiting look again (a chain was stopped)."""
        async with self._moved:
            self._moved.notify_all()

    async def put(self, index: int, page: Page, state: dict[str, Any]) -> bool:
        """Take parent `index`'s next page and its chain's state after it; False once no more
        pages are wanted (--max-records)."""
        parent = self._parents.setdefault(index, _Parent())
        if index != self.head and self._held >= self._window:
            async with self._moved:
                await self._moved.wait_for(lambda: index == self.head or self._held < self._window)
        parent.state = state
        if index == self.head:
            self._write(page)
            await self._writer.drain()
        else:
            parent.pages.append(page)
            self._held += 1
        return not self.full

    async def done(self, index: int) -> None:
        """Parent `index`'s chain is complete: the head moves past every parent done."""
        self._parents.setdefault(index, _Parent()).done = True
        moved = False
        while (head := self._parents.get(self.head)) is not None and head.done:
            del self._parents[self.head]
            self.head += 1
            moved = True
            following = self._parents.get(self.head)
            if following is not None:
                for page in following.pages:
                    self._write(page)
                self._held -= len(following.pages)
                following.pages.clear()
        if moved:
            await self._writer.drain()
            async with self._moved:
                self._moved.notify_all()

    def _write(self, page: Page) -> None:
        if not self.full:
            write_page(self._writer, page, self._stats.records, self._max_records, self._stats)

    async def finish(self) -> None:
        """Complete the output and move it into place: every parent's children are in."""
        await complete(self._writer)
        self.finished = True
