"""The ordered sink: pages arrive in any order and leave in page order, as JSON Lines.

Records go to `<path>.part`; only a finished harvest is renamed onto `<path>`, so a file at the
output path is always complete. The reorder window bounds memory: a worker may start page i only
while i < oldest unwritten page + `max_buffered_pages`.

Both sinks (this one and harvester.chain_sink's, which shares the file handling here) describe
what they have committed (`flush()`) for the checkpoint, and take that description back
(`resume=`) to carry on where an earlier run stopped: their files are cut back to the committed
length, so nothing written after the checkpoint is kept twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from harvester.checkpoint import checkpoint_path, fsync_folder
from harvester.errors import OutputError, RecordsError, ResumeError
from harvester.output import create_private, keep_mode, make_folder, open_existing
from harvester.stats import Stats


@dataclass(slots=True)
class Page:
    """One fetched page: its records already encoded as JSON Lines."""

    index: int
    data: bytes
    count: int
    url: str = ""  # where it came from, for error messages

    def digest(self) -> str:
        """A fingerprint of the page's records, to tell a repeated page by."""
        return _digest(self.data)


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
        return _digest(self._previous) if self._previous is not None else self._digest


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
    ) -> None:
        self.path = Path(path)
        self.part = part_path(self.path)
        self._window = window
        self._stats = stats
        self._max_records = max_records
        self._resume = resume
        self._pending: dict[int, Page] = {}
        self._next = 0  # the oldest page not written yet
        self._advanced = asyncio.Condition()
        self._file: BinaryIO | None = None
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
        keep = None if state is None else int(state["bytes"])
        self._file = await open_for_writing(self.part, output=self.path, keep=keep)
        if state is not None:
            self._next = int(state["pages"])
            self._stats.pages, self._stats.records = self._next, int(state["records"])
            self._stats.bytes = int(state["bytes"])
            self._repeats = self._repeats.resumed(state.get("last_page"))
        return self

    def flush(self) -> tuple[dict[str, Any], list[int]]:
        """What is committed, once flushed to the OS, and a descriptor to fsync it with."""
        assert self._file is not None
        self._file.flush()
        state = {
            "pages": self._next,
            "records": self._stats.records,
            "bytes": self._stats.bytes,
            "last_page": self._repeats.digest,
        }
        return state, [os.dup(self._file.fileno())]

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
            async with self._advanced:
                self._advanced.notify_all()

    def _write(self, page: Page) -> None:
        assert self._file is not None
        self._repeats.check(page, self._next - 1)
        write_page(self._file, page, self._stats.records, self._max_records, self._stats)

    def finish(self, wanted: Callable[[int], bool] | None = None) -> None:
        """Flush, fsync and rename the .part file onto the output path: the harvest is complete.

        Pages fetched ahead that are not `wanted` (past the end of the data) are dropped.
        """
        assert self._file is not None
        if self.full:
            self._pending.clear()  # pages past --max-records, fetched while the last was written
        if wanted is not None:
            self._pending = {i: p for i, p in self._pending.items() if wanted(i)}
        if self._pending:
            raise RuntimeError(f"finish() with pages {sorted(self._pending)[:5]} unwritten")
        commit(self._file, self.part, self.path)
        self.finished = True


async def open_for_writing(target: Path, *, output: Path, keep: int | None = None) -> BinaryIO:
    """`target` opened for writing (its folder made); OutputError if that, or `output`, fails.

    With `keep`, an earlier run's file is resumed: cut back to its first `keep` bytes, the
    length the checkpoint vouches for, and written on from there.
    """

    def open_target() -> BinaryIO:
        # An output path that is a folder is found now, not after the whole download.
        if output.is_dir():
            raise IsADirectoryError(21, "is a folder, not a file")
        make_folder(target.parent)
        if keep is None:
            return create_private(target)
        if not target.exists():
            raise ResumeError(f"{target} is gone", path=str(checkpoint_path(output)))
        handle = open_existing(target)
        try:
            _cut_back(handle, keep, target, checkpoint_path(output))
        except BaseException:
            handle.close()
            raise
        return handle

    try:
        # In the loop's own thread: quick, and a cancelled open cannot leak its file.
        return open_target()
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror}", path=str(target)) from None


def _cut_back(handle: BinaryIO, keep: int, target: Path, checkpoint: Path) -> None:
    size = os.fstat(handle.fileno()).st_size
    if size < keep:
        raise ResumeError(
            f"{target} holds {size} bytes, fewer than the {keep} it vouches for: "
            "it was changed outside harvester",
            path=str(checkpoint),
        )
    if keep:
        handle.seek(keep - 1)
        if handle.read(1) != b"\n":
            raise ResumeError(
                f"{target} does not end a record at byte {keep}: it was changed outside harvester",
                path=str(checkpoint),
            )
    handle.truncate(keep)
    handle.seek(keep)


def write_page(
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


def commit(handle: BinaryIO, part: Path, path: Path) -> None:
    """Flush, fsync and rename `part` onto `path`: from now on the output is complete."""
    try:
        handle.flush()
        keep_mode(handle, path)
        os.fsync(handle.fileno())
        handle.close()
    except OSError as exc:  # the data did not all reach the disk: ENOSPC, most often
        raise OutputError(f"write failed: {exc.strerror}", path=str(part)) from None
    try:
        os.replace(part, path)
        fsync_folder(path.parent)
    except OSError as exc:
        raise OutputError(f"cannot finish: {exc.strerror}", path=str(path)) from None


def _first_lines(data: bytes, count: int) -> bytes:
    end = 0
    for _ in range(count):
        end = data.index(b"\n", end) + 1
    return data[:end]
