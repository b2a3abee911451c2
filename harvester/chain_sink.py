"""The sink for chains that run side by side (partition windows): window order, then page order.

Window 0 writes straight through the writer (into the `.part` file, or the stream); every later
window spools JSON Lines to a file of its own, fed through the writer in order at the end, so
memory stays flat however long a window runs, and every format gets its records in order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from harvester.checkpoint import checkpoint_path
from harvester.errors import OutputError, RecordsError
from harvester.page import Page, digest
from harvester.sink import (
    Repeats,
    complete,
    default_writer,
    part_path,
    resumed_writer_state,
    write_page,
    writer_saved,
)
from harvester.stats import Stats
from harvester.writers.base import Writer
from harvester.writers.files import open_for_writing, write

_FEED_LINES = 2000  # records per page a spool is fed back through the writer in


@dataclass
class _Chain:
    """What one chain (partition window) has written, and where it carries on."""

    pages: int = 0
    records: int = 0
    bytes: int = 0  # JSON Lines bytes: for a spool, its committed length
    next: dict[str, Any] | None = None  # the next page's request, as the caller described it
    done: bool = False
    last_page: str | None = None  # digest of the last page, for the repeat check on resume
    first_url: str = ""  # where the window's first page came from, for error messages
    # Digests of the window's first and last records, for the seam check (None: not yet, or
    # a checkpoint from before they were kept, whose files are JSON Lines to read them from).
    first: str | None = None
    last: str | None = None


class ChainSink:
    """The sink for chains that run side by side (partition windows): window order, then page
    order. Window 0 writes straight into the .part file; every later window spools to a file of
    its own, appended in order at the end, so memory stays flat however long a window runs.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        chains: int,
        stats: Stats,
        max_records: int | None = None,
        resume: dict[str, Any] | None = None,
        allow_repeats: bool = False,
        writer: Writer | None = None,
    ) -> None:
        self.path = Path(path)
        self.part = part_path(self.path)
        self._stats = stats
        self._max_records = max_records
        self._writer = writer or default_writer(self.path)
        self._resume = resume
        self._files: dict[int, BinaryIO] = {}  # the spools of windows 1, 2, ...
        self._chains = [_Chain() for _ in range(chains)]
        for chain, state in enumerate((resume or {}).get("chains", [])[:chains]):
            self._chains[chain] = _Chain(**state)
        self._repeats = [Repeats(c.last_page, allow=allow_repeats) for c in self._chains]
        self._allow_repeats = allow_repeats
        self.finished = False

    def _spool(self, chain: int) -> Path:
        return self.part.with_name(f"{self.part.name}.{chain}")

    @property
    def complete(self) -> bool:
        """Whether the output is decided: every chain done, or the chains in order, each done,
        hold the --max-records the output is cut to."""
        held = 0
        for chain in self._chains:
            held += chain.records
            if self._max_records is not None and held >= self._max_records:
                return True
            if not chain.done:
                return False
        return True

    @property
    def committed_records(self) -> int:
        return sum(c.records for c in self._chains)

    def carry_on(self, chain: int) -> tuple[bool, dict[str, Any] | None]:
        """(done, next request) of `chain` as an earlier run left it; (False, None) if unstarted."""
        state = self._chains[chain]
        return state.done, state.next

    async def __aenter__(self) -> ChainSink:
        try:
            resume = self._resume
            if resume is not None and "bytes" not in resume:  # an old checkpoint: window 0's
                resume = {**resume, "bytes": self._chains[0].bytes}
            saved = resume and resumed_writer_state(
                resume, self._writer, checkpoint_path(self.path)
            )
            self._writer.open(saved if resume is not None and self._chains[0].pages else None)
            for chain, state in enumerate(self._chains):
                if chain and state.pages:
                    self._open(chain, keep=state.bytes)
                if state.pages and state.first is None:  # an old checkpoint: JSON Lines files
                    self._read_edges(chain, state)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        self._stats.pages = sum(c.pages for c in self._chains)
        self._stats.records = sum(c.records for c in self._chains)
        self._stats.bytes = sum(c.bytes for c in self._chains)
        return self

    def _open(self, chain: int, keep: int | None = None) -> BinaryIO:
        handle = open_for_writing(self._spool(chain), output=self.path, keep=keep)
        self._files[chain] = handle
        return handle

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The spools of an unfinished harvest stay: the checkpoint counts on them.
        self._writer.close()
        for handle in self._files.values():
            with contextlib.suppress(OSError):
                handle.close()

    async def put(self, chain: int, page: Page, *, after: dict[str, Any] | None) -> bool:
        """Write the next page of `chain`, `after` describing the page that follows it (None at
        the end of the chain); False once that chain has all it may need."""
        state = self._chains[chain]
        if not state.pages:
            state.first_url = page.url
        self._repeats[chain].check(page, state.pages - 1)
        if self._max_records is not None and state.records + page.count > self._max_records:
            page = page.head(self._max_records - state.records)
        _keep_edges(state, page)
        if chain == 0:
            state.records += write_page(self._writer, page, 0, None, self._stats)
        else:
            handle = self._files.get(chain) or self._open(chain)
            write(handle, page.data)
            state.records += page.count
            self._stats.pages += 1
            self._stats.records += page.count
            self._stats.bytes += len(page.data)
        state.pages += 1
        state.bytes += len(page.data)
        wanted = self._max_records is None or state.records < self._max_records
        state.next, state.done = after, after is None or not wanted
        if chain == 0:  # after the state is whole: a checkpoint may be taken while this waits
            await self._writer.drain()  # a stream output: a slow reader holds the window
        return not state.done

    def flush(self) -> tuple[dict[str, Any], list[int]]:
        """What is committed, once flushed to the OS, and descriptors to fsync it with."""
        saved, descriptors = writer_saved(self._writer)
        for handle in self._files.values():
            handle.flush()
            descriptors.append(os.dup(handle.fileno()))
        for state, repeats in zip(self._chains, self._repeats, strict=True):
            state.last_page = repeats.digest
        return {"chains": [dataclasses.asdict(c) for c in self._chains], **saved}, descriptors

    async def finish(self) -> None:
        """Feed every later window's spool through the writer in order, then complete the
        output and move it onto the output path."""
        if not self._allow_repeats:
            self._check_seams()
        counts = [c.records for c in self._chains]
        wanted = sum(counts)
        if self._max_records is not None:
            wanted = min(wanted, self._max_records)
        remaining = wanted - min(wanted, counts[0])
        for chain in range(1, len(counts)):
            handle = self._files.get(chain)
            if handle is None or remaining == 0:
                continue
            take = min(remaining, counts[chain])
            await self._feed(chain, handle, take)
            remaining -= take
        self._stats.records = wanted
        await complete(self._writer)
        self.finished = True
        # Now, before the checkpoint is removed: a kill in between then leaves a checkpoint that
        # the next run clears away, never spools that nothing would remove.
        for chain in range(1, len(counts)):
            spool = self._files.pop(chain, None)
            with contextlib.suppress(OSError):
                if spool is not None:
                    spool.close()
            with contextlib.suppress(OSError):
                self._spool(chain).unlink()

    async def _feed(self, chain: int, handle: BinaryIO, take: int) -> None:
        """The first `take` records of `chain`'s spool, through the writer."""
        url = self._chains[chain].first_url
        try:
            handle.flush()
            handle.seek(0)
            while take:
                lines = []
                for _ in range(min(take, _FEED_LINES)):
                    lines.append(handle.readline())
                take -= len(lines)
                self._writer.write(Page(0, b"".join(lines), len(lines), url=url))
                await self._writer.drain()
        except OSError as exc:
            raise OutputError(f"cannot join windows: {exc.strerror}", path=str(self.part)) from None

    def _read_edges(self, chain: int, state: _Chain) -> None:
        """Digests of the first and last records of a window written by an older version
        (JSON Lines then, in the .part file for window 0)."""
        path = self.part if chain == 0 else self._spool(chain)
        try:
            with path.open("rb") as handle:
                first, last = _edge_lines(handle, state.bytes)
        except OSError:
            return  # the resume itself says what is wrong with the file
        state.first, state.last = digest(first), digest(last)

    def _check_seams(self) -> None:
        """Fail where a window starts with the very record the window before it ended with: an
        API whose upper filter includes its bound sends each boundary record twice."""
        before: tuple[int, str | None] | None = None
        for chain, state in enumerate(self._chains):
            if not state.records:
                continue
            if before is not None and before[1] is not None and before[1] == state.first:
                raise RecordsError(
                    f"window {chain} starts with the record window {before[0]} ends with: the "
                    "API's upper filter includes its bound, so each boundary record comes twice. "
                    "Set pagination.partition.to_inclusive: true (or, if the data really holds "
                    "that record twice, pagination.repeated_pages: allow)",
                    page=0,
                    url=state.first_url,
                )
            before = (chain, state.last)


def _keep_edges(state: _Chain, page: Page) -> None:
    """Remember the digests of the window's first and (so far) last record."""
    if not page.count:
        return
    data = page.data
    if state.first is None and not state.records:
        state.first = digest(data[: data.index(b"\n") + 1])
    state.last = digest(data[data.rfind(b"\n", 0, len(data) - 1) + 1 :])


def _edge_lines(handle: BinaryIO, end: int) -> tuple[bytes, bytes]:
    """The first and the last line of the first `end` bytes of a file of JSON Lines."""
    first = handle.readline()
    tail, at = b"", end
    while at > 0 and tail.count(b"\n") < 2:
        step = min(at, 1 << 16)
        at -= step
        handle.seek(at)
        tail = handle.read(step) + tail
    last = tail[tail.rfind(b"\n", 0, len(tail) - 1) + 1 :]
    return first, last
