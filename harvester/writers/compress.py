"""Compression streams that can end at any checkpoint: gzip members and zstd frames.

A compressed output is a run of members (gzip) or frames (zstd), each complete on its own; the
standard tools (`gzip -dc`, `zstd -dc`) decompress such a file into the concatenation of their
contents. Each checkpoint ends the member under way, so the file's length at the checkpoint is a
boundary a resumed run can cut back to and carry on from with a new member. One member per
checkpoint (every few seconds), not per page, keeps the ratio close to one long stream's.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, Protocol

from harvester.errors import ConfigError

COMPRESSIONS = ("none", "gzip", "zstd")
SUFFIXES = {"gzip": ".gz", "zstd": ".zst"}


class _Stream(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...
    def flush(self, /) -> bytes: ...


class Members:
    """Compresses into members: `compress` starts one if none is open, `end` closes it."""

    def __init__(self, start: Callable[[], _Stream]) -> None:
        self._start = start
        self._open: _Stream | None = None

    def compress(self, data: bytes) -> bytes:
        if self._open is None:
            self._open = self._start()
        return self._open.compress(data)

    def end(self) -> bytes:
        """The end of the member under way (b"" if none is): a boundary a resume can cut to."""
        if self._open is None:
            return b""
        stream, self._open = self._open, None
        return stream.flush()

    @property
    def pending(self) -> bool:
        """Whether a member is under way."""
        return self._open is not None


def members(compression: str) -> Members | None:
    """A Members compressor for `compression`; None for `none`. ConfigError if zstd's package
    is missing."""
    if compression == "none":
        return None
    if compression == "gzip":
        # wbits 31: a gzip header and trailer; level 6, gzip's own default.
        return Members(lambda: zlib.compressobj(6, zlib.DEFLATED, 31))
    if compression == "zstd":
        zstd = _zstandard()
        compressor = zstd.ZstdCompressor(level=3)  # zstd's own default level
        return Members(compressor.compressobj)
    raise ValueError(f"unknown compression {compression!r}")


def _zstandard() -> Any:
    try:
        import zstandard  # noqa: PLC0415 (an optional extra, imported only when asked for)
    except ImportError:
        raise ConfigError(
            "zstd needs the zstandard package: pip install 'harvester[zstd]' (or choose gzip)",
            key="output.compression",
        ) from None
    return zstandard


def decompress(data: bytes, compression: str) -> bytes:
    """Every member's content, in order (for tests and the crash test)."""
    if compression == "gzip":
        import gzip  # noqa: PLC0415

        return gzip.decompress(data)
    if compression == "zstd":
        import io  # noqa: PLC0415

        reader = (
            _zstandard().ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
        )
        return bytes(reader.read())
    return data
