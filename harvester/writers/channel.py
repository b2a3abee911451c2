"""Where an encoded format's bytes go: a resumable file, or a stream written as pages come.

Both compress on the way when asked (harvester.writers.compress): each checkpoint of a file ends
the member under way, so the committed length is always a member boundary.
"""

from __future__ import annotations

import contextlib
from typing import Any, BinaryIO

from harvester.stream import Stream
from harvester.writers.base import Target, duplicate
from harvester.writers.compress import Members, members
from harvester.writers.files import make_durable, open_for_writing, write


class Channel:
    """Bytes out, compressed if asked; see FileChannel and StreamChannel."""

    def __init__(self, compression: str) -> None:
        self._members: Members | None = members(compression)

    def _compressed(self, data: bytes) -> bytes:
        return data if self._members is None else self._members.compress(data)

    def _ended(self) -> bytes:
        return b"" if self._members is None else self._members.end()

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def mark(self) -> tuple[dict[str, Any], list[int]]:
        """A boundary to resume from: (its description, descriptors to fsync)."""
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    async def drain(self) -> None:
        """Wait until a stream has taken what was written."""


class FileChannel(Channel):
    """The run's working file, resumable at each `mark()`: {"bytes": committed length}."""

    def __init__(self, target: Target, compression: str, state: dict[str, Any] | None) -> None:
        super().__init__(compression)
        self._target = target
        keep = None if state is None else int(state["bytes"])
        self._file: BinaryIO = open_for_writing(
            target.path, output=target.output, keep=keep, lines=compression == "none"
        )
        self._fresh = state is None or keep == 0

    def write(self, data: bytes) -> None:
        self._fresh = False
        write(self._file, self._compressed(data))

    def mark(self) -> tuple[dict[str, Any], list[int]]:
        write(self._file, self._ended())
        self._file.flush()
        return {"bytes": self._file.tell()}, [duplicate(self._file.fileno(), self._target.path)]

    def finish(self) -> None:
        if self._fresh and self._members is not None:
            # An empty output is one empty member, not zero bytes (which gzip -d refuses).
            write(self._file, self._members.compress(b""))
        write(self._file, self._ended())
        make_durable(self._file, self._target.path, self._target.output)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()


class StreamChannel(Channel):
    """A stream output: bytes are kept until `drain()` writes them (never blocking), so the
    reorder window waits on a slow reader and a signal still stops the run. No resume."""

    def __init__(self, stream: Stream, compression: str) -> None:
        super().__init__(compression)
        self._stream = stream
        self._buffer = bytearray()
        self._fresh = True

    def write(self, data: bytes) -> None:
        self._fresh = False
        self._buffer += self._compressed(data)

    def mark(self) -> tuple[dict[str, Any], list[int]]:
        return {}, []  # a stream is never resumed: nothing to describe

    def finish(self) -> None:
        if self._fresh and self._members is not None:
            self._buffer += self._members.compress(b"")
        self._buffer += self._ended()

    def close(self) -> None:
        self._buffer.clear()

    async def drain(self) -> None:
        await self._stream.send(self._buffer)
