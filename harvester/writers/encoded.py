"""The formats that are a stream of bytes (JSON Lines, CSV): encode each page, then write it
through a channel (a resumable file or a stream), compressed if asked."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

from harvester.page import Page
from harvester.writers.base import Writer
from harvester.writers.channel import Channel, FileChannel, StreamChannel
from harvester.writers.compress import COMPRESSIONS


class EncodedWriter(Writer):
    """A Writer whose output is `encode(page)` for each page, in order (plus a `preamble`)."""

    compressions: ClassVar[tuple[str, ...]] = COMPRESSIONS
    _channel: Channel | None = None

    def open(self, state: dict[str, Any] | None) -> None:
        stream = self.target.stream
        if stream is not None:
            self._channel = StreamChannel(stream, self.format.compression)
        else:
            self._channel = FileChannel(self.target, self.format.compression, state)
        self.resume(state)

    def resume(self, state: dict[str, Any] | None) -> None:  # noqa: B027 (a hook)
        """Take back what `saved()` described (a CSV header, say); None: a new output."""

    def saved(self) -> dict[str, Any]:
        """What a resume needs besides the committed length (merged into the state)."""
        return {}

    @abstractmethod
    def encode(self, page: Page) -> bytes:
        """The page's records in this format (a header first, where one is due)."""

    def write(self, page: Page) -> None:
        assert self._channel is not None
        data = self.encode(page)
        if data:
            self._channel.write(data)

    def checkpoint(self) -> tuple[dict[str, Any], list[int]]:
        assert self._channel is not None
        state, descriptors = self._channel.mark()
        return {**state, **self.saved()}, descriptors

    def finish(self) -> None:
        assert self._channel is not None
        self._channel.finish()

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()

    async def drain(self) -> None:
        if self._channel is not None:
            await self._channel.drain()
