"""The sink for chains that run side by side (partition windows): window order, then page order.

Window 0 writes straight into the `.part` file; every later window spools to a file of its own,
appended in order at the end, so memory stays flat however long a window runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from harvester.errors import OutputError, RecordsError
from harvester.sink import Page, Repeats, commit, open_for_writing, part_path, write_page
from harvester.stats import Stats

_COPY_BUFFER = 1 << 20


@dataclass
class _Chain:
    """What one chain (partition window) has written, and where it carries on."""

    pages: int = 0
    records: int = 0
    bytes: int = 0
    next: dict[str, Any] | None = None  # the next page's request, as the caller described it
    done: bool = False
    last_page: str | None = None  # digest of the last page, for the repeat check on resume
    first_url: str = ""  # where the window's first page came from, for error messages


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
    ) -> None:
        self.path = Path(path)
        self.part = part_path(self.path)
        self._stats = stats
        self._max_records = max_records
        self._files: dict[int, BinaryIO] = {}
        self._chains = [_Chain() for _ in range(chains)]
        for chain, state in enumerate((resume or {}).get("chains", [])[:chains]):
            self._chains[chain] = _Chain(**state)
        self._repeats = [Repeats(c.last_page, allow=allow_repeats) for c in self._chains]
        self._allow_repeats = allow_repeats
        self.finished = False

    def _spool(self, chain: int) -> Path:
        return self.part if chain == 0 else self.part.with_name(f"{self.part.name}.{chain}")

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
            for chain, state in enumerate(self._chains):
                if chain == 0 or state.pages:
                    await self._open(chain, keep=state.bytes if state.pages else None)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        self._stats.pages = sum(c.pages for c in self._chains)
        self._stats.records = sum(c.records for c in self._chains)
        self._stats.bytes = sum(c.bytes for c in self._chains)
        return self

    async def _open(self, chain: int, keep: int | None = None) -> BinaryIO:
        handle = await open_for_writing(self._spool(chain), output=self.path, keep=keep)
        self._files[chain] = handle
        return handle

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The spools of an unfinished harvest stay: the checkpoint counts on them.
        for handle in self._files.values():
            with contextlib.suppress(OSError):
                handle.close()

    async def put(self, chain: int, page: Page, *, after: dict[str, Any] | None) -> bool:
        """Write the next page of `chain`, `after` describing the page that follows it (None at
        the end of the chain); False once that chain has all it may need."""
        handle = self._files.get(chain) or await self._open(chain)
        state = self._chains[chain]
        if not state.pages:
            state.first_url = page.url
        self._repeats[chain].check(page, state.pages - 1)
        state.records += write_page(handle, page, state.records, self._max_records, self._stats)
        state.pages += 1
        state.bytes = handle.tell()
        wanted = self._max_records is None or state.records < self._max_records
        state.next, state.done = after, after is None or not wanted
        return not state.done

    def flush(self) -> tuple[dict[str, Any], list[int]]:
        """What is committed, once flushed to the OS, and descriptors to fsync it with."""
        descriptors = []
        for handle in self._files.values():
            handle.flush()
            descriptors.append(os.dup(handle.fileno()))
        for state, repeats in zip(self._chains, self._repeats, strict=True):
            state.last_page = repeats.digest
        return {"chains": [dataclasses.asdict(c) for c in self._chains]}, descriptors

    def finish(self) -> None:
        """Append every window's spool in order, then rename onto the output path."""
        if not self._allow_repeats:
            self._check_seams()
        main = self._files[0]
        counts = [c.records for c in self._chains]
        wanted = sum(counts)
        if self._max_records is not None:
            wanted = min(wanted, self._max_records)
        remaining = wanted - min(wanted, counts[0])
        try:
            for chain in range(1, len(counts)):
                handle = self._files.get(chain)
                if handle is None or remaining == 0:
                    continue
                handle.flush()
                handle.seek(0)
                take = min(remaining, counts[chain])
                if take == counts[chain]:
                    shutil.copyfileobj(handle, main, _COPY_BUFFER)
                else:  # the --max-records boundary: only the first lines
                    for _ in range(take):
                        main.write(handle.readline())
                remaining -= take
        except OSError as exc:
            raise OutputError(f"cannot join windows: {exc.strerror}", path=str(self.part)) from None
        self._stats.records = wanted
        self._stats.bytes = main.tell()
        commit(main, self.part, self.path)
        self.finished = True
        # Now, before the checkpoint is removed: a kill in between then leaves a checkpoint that
        # the next run clears away, never spools that nothing would remove.
        for chain in range(1, len(counts)):
            handle = self._files.pop(chain, None)
            with contextlib.suppress(OSError):
                if handle is not None:
                    handle.close()
            with contextlib.suppress(OSError):
                self._spool(chain).unlink()

    def _check_seams(self) -> None:
        """Fail where a window starts with the very record the window before it ended with: an
        API whose upper filter includes its bound sends each boundary record twice."""
        before: tuple[int, bytes] | None = None
        for chain, state in enumerate(self._chains):
            handle = self._files.get(chain)
            if handle is None or not state.records:
                continue
            first, last = _edge_lines(handle)
            if before is not None and before[1] == first:
                raise RecordsError(
                    f"window {chain} starts with the record window {before[0]} ends with: the "
                    "API's upper filter includes its bound, so each boundary record comes twice. "
                    "Set pagination.partition.to_inclusive: true (or, if the data really holds "
                    "that record twice, pagination.repeated_pages: allow)",
                    page=0,
                    url=state.first_url,
                )
            before = (chain, last)


def _edge_lines(handle: BinaryIO) -> tuple[bytes, bytes]:
    """The first and the last line of a file of JSON Lines."""
    handle.flush()
    handle.seek(0)
    first = handle.readline()
    end = handle.seek(0, os.SEEK_END)
    tail, at = b"", end
    while at > 0 and tail.count(b"\n") < 2:
        step = min(at, 1 << 16)
        at -= step
        handle.seek(at)
        tail = handle.read(step) + tail
    handle.seek(end)
    last = tail[tail.rfind(b"\n", 0, len(tail) - 1) + 1 :]
    return first, last
