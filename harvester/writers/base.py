"""The writer interface: committed pages in, one output in one format out.

The ordered sinks (harvester.sink, harvester.chain_sink) decide the order and what is committed;
a writer only turns pages into the bytes (or files) of its format. Its life, as a sink drives it:

    writer = make_writer(fmt, target)        # harvester.writers.registry
    writer.open(state)                       # None: a new output; else what checkpoint() saved
    writer.write(page) ...                   # each committed page, in order, already cut short
    await writer.drain()                     # after writes: a stream output takes the bytes
    state, fds = writer.checkpoint()         # all written so far resumable; fds to fsync
    writer.finish(); writer.place()          # complete and durable; then onto the output path
    writer.close()                           # always, finished or not (idempotent)

`checkpoint()` is called in the event loop's thread between two writes, every few seconds: it
ends what must end for a resume to cut back there (a gzip member, a zstd frame, a Parquet
segment), flushes to the OS, and returns a JSON-able description of the committed output plus
duplicated descriptors that the checkpointer fsyncs (then closes) before it saves that
description. A killed run's next run calls `open(state)` with it: the writer cuts its files back
to exactly that state and carries on, so the finished output is the same as an uninterrupted
run's.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harvester.errors import OutputError, RecordsError
from harvester.page import Page
from harvester.read import NotJSON, decode_json
from harvester.writers.files import replace

if TYPE_CHECKING:
    from harvester.stream import Stream


@dataclass(frozen=True, kw_only=True)
class Format:
    """What the config asks of the output, resolved (harvester.config.output.resolve_format)."""

    name: str = "jsonl"  # jsonl, csv, parquet
    compression: str = "none"  # none, gzip, zstd
    columns: tuple[str, ...] | None = None  # output.columns
    extra_columns: str = "fail"  # output.extra_columns: fail or json
    max_records_per_file: int | None = None


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where a writer writes.

    `path` is the run's working file (`<output>.part`), which `place()` renames onto `output`
    once complete; a writer that makes a folder there instead may. With `stream` set (`-`, a
    pipe, a device) the writer writes into the stream as it goes and `path` is unused: nothing
    is renamed, and nothing is resumed.
    """

    path: Path
    output: Path
    stream: Stream | None = None


class Writer(ABC):
    """Writes committed pages, in order, into one output in one format."""

    #: May write into a stream (`-`, a pipe): pages leave as they come, nothing seeks back.
    streamable: ClassVar[bool] = True
    #: The `output.compression` values this format takes.
    compressions: ClassVar[tuple[str, ...]] = ("none",)
    #: Implements output.max_records_per_file.
    rotates: ClassVar[bool] = False

    def __init__(self, target: Target, fmt: Format) -> None:
        self.target = target
        self.format = fmt

    @abstractmethod
    def open(self, state: dict[str, Any] | None) -> None:
        """Start a new output at `target.path` (any leftover replaced) when `state` is None;
        else resume the one an earlier run left, cut back to what `state` (a `checkpoint()`
        result) describes. OutputError if it cannot be written, ResumeError if it no longer
        holds what `state` vouches for."""

    @abstractmethod
    def write(self, page: Page) -> None:
        """Append the page's records (`page.data`, JSON Lines; `records_of(page)` for values).

        RecordsError for records the format cannot hold as configured; OutputError if a write
        fails."""

    @abstractmethod
    def checkpoint(self) -> tuple[dict[str, Any], list[int]]:
        """Make all written so far resumable; (state to save, duplicated descriptors to fsync)."""

    @abstractmethod
    def finish(self) -> None:
        """Complete the output at `target.path` (trailers, footers) and make it durable."""

    def place(self) -> None:
        """Move the finished output onto `target.output` (a stream: nothing to move)."""
        if self.target.stream is not None:
            return
        replace(self.target.path, self.target.output)

    @abstractmethod
    def close(self) -> None:
        """Release files; an unfinished output stays as the last checkpoint describes it."""

    async def drain(self) -> None:  # noqa: B027 (a hook: only stream outputs wait here)
        """Wait until a stream output has taken what was written (files: nothing to wait for)."""


def records_of(page: Page) -> list[Any]:
    """The page's records as values: exact numbers (ExactNumber, big ints) as read.py reads them."""
    if not page.count:
        return []
    # One JSON array per page: lines never hold a raw newline (JSON escapes it in strings).
    body = b"[" + page.data.rstrip(b"\n").replace(b"\n", b",") + b"]"
    try:
        records = decode_json(body)
    except NotJSON as exc:  # written by harvester itself: a bug, or a spool changed outside
        raise RecordsError(
            f"cannot read back its records: {exc}", page=page.index, url=page.url
        ) from None
    assert isinstance(records, list)
    return records


def duplicate(fd: int, path: Path) -> int:
    """A duplicate of `fd` for the checkpointer to fsync and close."""
    try:
        return os.dup(fd)
    except OSError as exc:
        raise OutputError(f"cannot checkpoint: {exc.strerror}", path=str(path)) from None
