"""The ordered sink: pages arrive in any order and leave in page order, as JSON Lines.

Records go to `<path>.part`; only a finished harvest is renamed onto `<path>`, so a file at the
output path is always complete. The reorder window bounds memory: a worker may start page i only
while i < oldest unwritten page + `max_buffered_pages`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from harvester.errors import OutputError
from harvester.stats import Stats

_WRITE_BUFFER = 1 << 20


@dataclass(slots=True)
class Page:
    """One fetched page: its records already encoded as JSON Lines."""

    index: int
    data: bytes
    count: int


def part_path(path: Path) -> Path:
    return path.with_name(path.name + ".part")


class OrderedSink:
    """Writes pages in index order through a bounded reorder window."""

    def __init__(
        self, path: str | Path, *, window: int, stats: Stats, max_records: int | None = None
    ) -> None:
        self.path = Path(path)
        self.part = part_path(self.path)
        self._window = window
        self._stats = stats
        self._max_records = max_records
        self._pending: dict[int, Page] = {}
        self._next = 0  # the oldest page not written yet
        self._advanced = asyncio.Condition()
        self._file: BinaryIO | None = None
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
        try:
            self._file = await asyncio.to_thread(self._open_part)
        except OSError as exc:
            raise OutputError(f"cannot write: {exc.strerror}", path=str(self.part)) from None
        return self

    def _open_part(self) -> BinaryIO:
        self.part.parent.mkdir(parents=True, exist_ok=True)
        return open(self.part, "wb", buffering=_WRITE_BUFFER)  # noqa: SIM115 (the sink owns it)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # An unfinished harvest leaves its .part file (a later run may resume it) and never
        # touches the output path.
        if self._file is not None and not self._file.closed:
            with contextlib.suppress(OSError):
                self._file.close()

    async def wait_for_slot(self, index: int) -> None:
        """Return once page `index` fits in the reorder window."""
        if index < self._next + self._window:
            return
        async with self._advanced:
            await self._advanced.wait_for(lambda: index < self._next + self._window)

    async def put(self, page: Page) -> None:
        """Take a fetched page; write it and every page it unblocks."""
        if page.index < self._next or page.index in self._pending:
            raise RuntimeError(f"page {page.index} delivered twice")  # a bug, never data
        self._pending[page.index] = page
        before = self._next
        while self._next in self._pending and not self.full:
            self._write(self._pending.pop(self._next))
            self._next += 1
        if self._next != before:
            async with self._advanced:
                self._advanced.notify_all()

    def _write(self, page: Page) -> None:
        assert self._file is not None
        data, count = page.data, page.count
        if self._max_records is not None and self._stats.records + count > self._max_records:
            count = self._max_records - self._stats.records
            data = _first_lines(data, count)
        try:
            self._file.write(data)
        except OSError as exc:
            raise OutputError(f"write failed: {exc.strerror}", path=str(self.part)) from None
        self._stats.pages += 1
        self._stats.records += count
        self._stats.bytes += len(data)

    def finish(self) -> None:
        """Flush, fsync and rename the .part file onto the output path: the harvest is complete."""
        assert self._file is not None
        if self.full:
            self._pending.clear()  # pages past --max-records, fetched while the last was written
        if self._pending:
            raise RuntimeError(f"finish() with pages {sorted(self._pending)[:5]} unwritten")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.part, self.path)
            _fsync_dir(self.path.parent)
        except OSError as exc:
            raise OutputError(f"cannot finish: {exc.strerror}", path=str(self.path)) from None
        self.finished = True


def _first_lines(data: bytes, count: int) -> bytes:
    end = 0
    for _ in range(count):
        end = data.index(b"\n", end) + 1
    return data[:end]


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is; not every platform allows it.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
