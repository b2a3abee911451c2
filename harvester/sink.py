"""The ordered sink: pages arrive in any order and leave in page order, through a writer.

The writer (harvester.writers: JSON Lines unless another is given) writes to `<path>.part`; only
a finished harvest is moved onto `<path>`, so a file at the output path is always complete (a
stream output is written as pages come, and never resumed). The reorder window bounds memory: a
worker may start page i only while i < oldest unwritten page + `max_buffered_pages`.

Both sinks (this one and harvester.chain_sink's) describe what they have committed (`flush()`)
for the checkpoint, their writer's state included, and take that description back (`resume=`)
to carry on where an earlier run stopped: the writer cuts its files back to the committed state,
so nothing written after the checkpoint is kept twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from harvester.checkpoint import checkpoint_path
from harvester.errors import RecordsError, ResumeError
from harvester.page import Page, digest
from harvester.stats import Stats
from harvester.writers.base import Format, Target, Writer
from harvester.writers.jsonl import JsonlWriter

__all__ = ["OrderedSink", "Page", "Repeats", "part_path", "records_in"]


# With repeated pages allowed and no total, an API answering every page past the end with its
# last page again (json-server 1.0 does) would be followed forever: this many identical pages
# in a row are taken for that instead.
MAX_REPEATED_RUN = 100


class Repeats:
    """Catches a page that repeats the previous page's records: an API that ignores the offset
    or page parameter would otherwise fill the output with copies of one page.

    `allow` (pagination.repeated_pages: allow) lets such pages through, for data whose
    consecutive pages may really be the same; `open_end` bounds how many in a row, where no
    total tells where the data ends.
    """

    def __init__(
        self, digest: str | None = None, *, allow: bool = False, open_end: bool = False
    ) -> None:
        self._previous: bytes | None = None
        self._digest = digest  # after a resume: the previous page is known by its digest only
        self._allow = allow
        self._open_end = open_end
        self._run = 0  # identical pages in a row, so far

    def resumed(self, digest: str | None) -> Repeats:
        return Repeats(digest, allow=self._allow, open_end=self._open_end)

    def check(self, page: Page, previous_index: int) -> None:
        if not page.count or (self._allow and not self._open_end):
            return
        if self._previous is not None:
            same = page.data == self._previous
        else:
            same = self._digest is not None and page.digest() == self._digest
        self._run = self._run + 1 if same else 0
        if same and not self._allow:
            raise RecordsError(
                f"repeats the records of page {previous_index}: the API ignores the paging "
                "parameters, keeps answering the same page, or answers past the end of the data "
                "with its last page again (with a total, harvester never asks past the end). "
                "If the data really holds identical consecutive pages, set "
                "pagination.repeated_pages: allow",
                page=page.index,
                url=page.url,
            )
        if self._run >= MAX_REPEATED_RUN:
            raise RecordsError(
                f"pages {page.index - self._run} to {page.index} all hold the same records: the "
                "API answers past the end of the data with its last page again, so with "
                "pagination.repeated_pages: allow and no total the end cannot be found. Set "
                "pagination.total or total_pages, or leave repeated_pages at check",
                page=page.index,
                url=page.url,
            )
        self._previous, self._digest = page.data, None

    @property
    def digest(self) -> str | None:
        return digest(self._previous) if self._previous is not None else self._digest


def part_path(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def records_in(state: dict[str, Any]) -> int:
    """The records a sink's saved state (what `flush()` described) says are written."""
    if "chains" in state:
        return sum(int(chain["records"]) for chain in state["chains"])
    return int(state.get("records", 0))


class OrderedSink:
    """Writes pages in index order through a bounded reorder window."""

    def __init__(
        self,
        path: str | Path,
        *,
        window: int,
        stats: Stats,
        max_records: int | None = None,
        resume: dict[str, Any] | None = None,
        allow_repeats: bool = False,
        open_end: bool = False,
        writer: Writer | None = None,
    ) -> None:
        self.path = Path(path)
        self.part = part_path(self.path)
        self._writer = writer or default_writer(self.path)
        self._window = window
        self._stats = stats
        self._max_records = max_records
        self._resume = resume
        self._pending: dict[int, Page] = {}
        self._next = 0  # the oldest page not written yet
        self._first = 0  # the first page of the output (a shard's slice starts later)
        self._advanced = asyncio.Condition()
        self._repeats = Repeats(allow=allow_repeats, open_end=open_end)
        self.finished = False

    # Committed means written, in order, with nothing missing before it.
    @property
    def committed_pages(self) -> int:
        return self._next

    @property
    def committed_records(self) -> int:
        return self._stats.records

    @property
    def committed_bytes(self) -> int:
        return self._stats.bytes

    @property
    def buffered(self) -> int:
        return len(self._pending)

    @property
    def full(self) -> bool:
        """Whether --max-records is reached: no further page is wanted."""
        return self._max_records is not None and self._stats.records >= self._max_records

    async def __aenter__(self) -> OrderedSink:
        state = self._resume
        open_writer(self._writer, state, self.path, self._stats)
        if state is not None:
            self._next, self._first = int(state["pages"]), int(state.get("first", 0))
            self._repeats = self._repeats.resumed(state.get("last_page"))
        return self

    def flush(self) -> tuple[dict[str, Any], list[int]]:
        """What is committed, once flushed to the OS, and descriptors to fsync it with."""
        saved, descriptors = writer_saved(self._writer)
        state = {
            "pages": self._next,
            **({"first": self._first} if self._first else {}),
            "records": self._stats.records,
            "bytes": self._stats.bytes,
            "last_page": self._repeats.digest,
            **saved,
        }
        return state, descriptors

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # An unfinished harvest leaves its .part file (partial data to inspect) and never
        # touches the output path.
        self._writer.close()

    def start_at(self, index: int) -> None:
        """Begin the output at page `index` (a shard's slice of the pages), before any page."""
        if self._next != self._first or self._pending:
            raise RuntimeError("start_at() after pages were put")  # a bug, never data
        self._next = self._first = index

    async def wait_for_slot(self, index: int, wanted: Callable[[int], bool] | None = None) -> bool:
        """Wait until page `index` fits in the reorder window; False once it is no longer
        wanted: past --max-records, or no longer `wanted` (past the end of the data), which
        may be learned while waiting."""

        def unwanted() -> bool:
            return self.full or (wanted is not None and not wanted(index))

        if index < self._next + self._window:
            return not unwanted()
        async with self._advanced:
            await self._advanced.wait_for(lambda: index < self._next + self._window or unwanted())
        return not unwanted()

    async def wake(self) -> None:
        """Let waiting workers look again (a page was dropped instead of put)."""
        async with self._advanced:
            self._advanced.notify_all()

    async def put(self, page: Page, wanted: Callable[[int], bool] | None = None) -> None:
        """Take a fetched page; write it and every page it unblocks that is still `wanted`."""
        if page.index < self._next or page.index in self._pending:
            raise RuntimeError(f"page {page.index} delivered twice")  # a bug, never data
        self._pending[page.index] = page
        before = self._next
        while (
            self._next in self._pending and not self.full and (wanted is None or wanted(self._next))
        ):
            self._write(self._pending.pop(self._next))
            self._next += 1
        if self._next != before:
            await self._writer.drain()  # a stream output: a slow reader holds the window
            async with self._advanced:
                self._advanced.notify_all()

    def _write(self, page: Page) -> None:
        self._repeats.check(page, self._next - 1)
        write_page(self._writer, page, self._stats.records, self._max_records, self._stats)

    async def finish(self, wanted: Callable[[int], bool] | None = None) -> None:
        """Complete the output and move it onto the output path: the harvest is complete.

        Pages fetched ahead that are not `wanted` (past the end of the data) are dropped.
        """
        if self.full:
            self._pending.clear()  # pages past --max-records, fetched while the last was written
        if wanted is not None:
            self._pending = {i: p for i, p in self._pending.items() if wanted(i)}
        if self._pending:
            raise RuntimeError(f"finish() with pages {sorted(self._pending)[:5]} unwritten")
        await complete(self._writer)
        self.finished = True


async def complete(writer: Writer) -> None:
    """Finish `writer`, let a stream take the last bytes, and move the output into place."""
    writer.finish()
    await writer.drain()
    writer.place()


def open_writer(writer: Writer, state: dict[str, Any] | None, path: Path, stats: Stats) -> None:
    """Open `writer` anew, or where a sink's saved `state` left it, its counts back in `stats`."""
    checkpoint = checkpoint_path(path)
    writer.open(None if state is None else resumed_writer_state(state, writer, checkpoint))
    if state is not None:
        # Pages count from the output's first (a shard's slice starts later).
        stats.pages = int(state["pages"]) - int(state.get("first", 0))
        stats.records = int(state["records"])
        stats.bytes = int(state["bytes"])


def write_page(
    writer: Writer, page: Page, written: int, max_records: int | None, stats: Stats
) -> int:
    """Write `page` after `written` records, cut at `max_records`; returns the records written."""
    if max_records is not None and written + page.count > max_records:
        page = page.head(max_records - written)
    writer.write(page)
    stats.pages += 1
    stats.records += page.count
    stats.bytes += len(page.data)
    return page.count


def resumed_writer_state(state: dict[str, Any], writer: Writer, checkpoint: Path) -> dict[str, Any]:
    """The writer's part of a sink's saved `state`; ResumeError if it was written in another
    format than the one now configured (its file cannot be carried on)."""
    fmt = writer.format
    saved = (state.get("format", "jsonl"), state.get("compression", "none"))
    if saved != (fmt.name, fmt.compression):
        now = _shown(fmt.name, fmt.compression)
        raise ResumeError(
            f"the partial output was written as {_shown(*saved)}, and {now} is configured now",
            path=str(checkpoint),
        )
    # A checkpoint from before writers (JSON Lines only) holds the file's length as "bytes".
    found = state.get("writer")
    return dict(found) if isinstance(found, dict) else {"bytes": int(state["bytes"])}


def _shown(name: str, compression: str) -> str:
    return name if compression == "none" else f"{name} ({compression})"


def writer_saved(writer: Writer) -> tuple[dict[str, Any], list[int]]:
    """What a sink saves of its writer: its format, and its own checkpoint state."""
    state, descriptors = writer.checkpoint()
    fmt = writer.format
    return {"format": fmt.name, "compression": fmt.compression, "writer": state}, descriptors


def default_writer(path: Path) -> Writer:
    """JSON Lines into `<path>.part`: the writer of a sink not given one."""
    return JsonlWriter(Target(path=part_path(path), output=path), Format())
