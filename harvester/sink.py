"""The ordered sink: pages arrive in any order and leave in page order, as JSON Lines.

Records go to `<path>.part`; only a finished harvest is renamed onto `<path>`, so a file at the
output path is always complete. The reorder window bounds memory: a worker may start page i only
while i < oldest unwritten page + `max_buffered_pages`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
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
        self._last: int | None = None  # the last page the data has, once known
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
        self._file = await _open_for_writing(self.part, output=self.path)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # An unfinished harvest leaves its .part file (partial data to inspect) and never
        # touches the output path.
        if self._file is not None and not self._file.closed:
            with contextlib.suppress(OSError):
                self._file.close()

    async def wait_for_slot(self, index: int) -> bool:
        """Wait until page `index` fits in the reorder window; False if it is no longer wanted
        (past the end of the data, or past --max-records), which may be learned while waiting."""
        if index < self._next + self._window:
            return not self._unwanted(index)
        async with self._advanced:
            await self._advanced.wait_for(
                lambda: index < self._next + self._window or self._unwanted(index)
            )
        return not self._unwanted(index)

    def stop_after(self, last: int) -> None:
        """No page after `last` will be written: the data ends there."""
        self._last = last if self._last is None else min(self._last, last)

    async def wake(self) -> None:
        """Let waiting workers look again (a page was dropped instead of put)."""
        async with self._advanced:
            self._advanced.notify_all()

    def _unwanted(self, index: int) -> bool:
        return self.full or (self._last is not None and index > self._last)

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
        _write_page(self._file, page, self._stats.records, self._max_records, self._stats)

    def finish(self, *, last_page: int | None = None) -> None:
        """Flush, fsync and rename the .part file onto the output path: the harvest is complete.

        Pages after `last_page` (fetched ahead, past the end of the data) are dropped.
        """
        assert self._file is not None
        if self.full:
            self._pending.clear()  # pages past --max-records, fetched while the last was written
        if last_page is not None:
            self._pending = {i: p for i, p in self._pending.items() if i <= last_page}
        if self._pending:
            raise RuntimeError(f"finish() with pages {sorted(self._pending)[:5]} unwritten")
        _commit(self._file, self.part, self.path)
        self.finished = True


class ChainSink:
    """The sink for chains that run side by side (partition windows): window order, then page
    order. Window 0 writes straight into the .part file; every later window spools to a file of
    its own, appended in order at the end, so memory stays flat however long a window runs.
    """

    def __init__(
        self, path: str | Path, *, chains: int, stats: Stats, max_records: int | None = None
    ) -> None:
        self.path = Path(path)
        self.part = part_path(self.path)
        self._stats = stats
        self._max_records = max_records
        self._files: dict[int, BinaryIO] = {}
        self._counts = [0] * chains
        self.finished = False

    def _spool(self, chain: int) -> Path:
        return self.part if chain == 0 else self.part.with_name(f"{self.part.name}.{chain}")

    async def __aenter__(self) -> ChainSink:
        await self._open(0)
        return self

    async def _open(self, chain: int) -> BinaryIO:
        handle = self._files[chain] = await _open_for_writing(self._spool(chain), output=self.path)
        return handle

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for chain, handle in self._files.items():
            with contextlib.suppress(OSError):
                handle.close()
                if chain:
                    self._spool(chain).unlink()

    async def put(self, chain: int, page: Page) -> bool:
        """Write the next page of `chain`; False once that chain has all it may need."""
        handle = self._files.get(chain) or await self._open(chain)
        count = _write_page(handle, page, self._counts[chain], self._max_records, self._stats)
        self._counts[chain] += count
        return self._max_records is None or self._counts[chain] < self._max_records

    def finish(self) -> None:
        """Append every window's spool in order, then rename onto the output path."""
        main = self._files[0]
        wanted = sum(self._counts)
        if self._max_records is not None:
            wanted = min(wanted, self._max_records)
        remaining = wanted - min(wanted, self._counts[0])
        try:
            for chain in range(1, len(self._counts)):
                handle = self._files.get(chain)
                if handle is None or remaining == 0:
                    continue
                handle.flush()
                handle.seek(0)
                take = min(remaining, self._counts[chain])
                if take == self._counts[chain]:
                    shutil.copyfileobj(handle, main, _WRITE_BUFFER)
                else:  # the --max-records boundary: only the first lines
                    for _ in range(take):
                        main.write(handle.readline())
                remaining -= take
        except OSError as exc:
            raise OutputError(f"cannot join windows: {exc.strerror}", path=str(self.part)) from None
        self._stats.records = wanted
        self._stats.bytes = main.tell()
        _commit(main, self.part, self.path)
        self.finished = True


async def _open_for_writing(target: Path, *, output: Path) -> BinaryIO:
    """`target` opened for writing (its folder made); OutputError if that, or `output`, fails."""

    def open_target() -> BinaryIO:
        # An output path that is a folder is found now, not after the whole download.
        if output.is_dir():
            raise IsADirectoryError(21, "is a folder, not a file")
        # mkdir would only say "File exists" or "Not a directory": name the file in the way.
        folder = target.parent
        found = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if found is not None and not found.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{found} is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        return open(target, "w+b", buffering=_WRITE_BUFFER)  # noqa: SIM115 (the sink closes it)

    try:
        return await asyncio.to_thread(open_target)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror}", path=str(target)) from None


def _write_page(
    handle: BinaryIO, page: Page, written: int, max_records: int | None, stats: Stats
) -> int:
    """Write `page` after `written` records, cut at `max_records`; returns the records written."""
    data, count = page.data, page.count
    if max_records is not None and written + count > max_records:
        count = max_records - written
        data = _first_lines(data, count)
    try:
        handle.write(data)
    except OSError as exc:
        raise OutputError(f"write failed: {exc.strerror}", path=str(handle.name)) from None
    stats.pages += 1
    stats.records += count
    stats.bytes += len(data)
    return count


def _commit(handle: BinaryIO, part: Path, path: Path) -> None:
    """Flush, fsync and rename `part` onto `path`: from now on the output is complete."""
    try:
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
    except OSError as exc:  # the data did not all reach the disk: ENOSPC, most often
        raise OutputError(f"write failed: {exc.strerror}", path=str(part)) from None
    try:
        os.replace(part, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise OutputError(f"cannot finish: {exc.strerror}", path=str(path)) from None


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
