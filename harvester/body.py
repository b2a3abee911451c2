"""An answer's body read within bounds: its size, inflated or not, and its compression ratio.

aiohttp (3.14) inflates gzip, deflate (and br or zstd, where their libraries are installed) as the
body streams in, never more than its read buffer at a time, and counts the compressed bytes it
has taken in. So the body is read here in the chunks aiohttp hands over, and both limits are
checked after each chunk: a 2 GiB body, or a gzip bomb, fails as soon as it passes a limit, not
once it has all been read.

A body past 16 MiB is kept in an unnamed temporary file until it is whole. The interpreter with
aiohttp takes about 40 MiB; 256 MiB more in memory would put a refused body near 300 MB, while
disk pages written are the kernel's cache, not the process's. A body that is whole is read back
into memory in one piece: parsing needs it there (and its records take several times more).
"""

from __future__ import annotations

import tempfile
from typing import IO

import aiohttp

__all__ = ["BodyRefused", "read_body"]

# Below this many inflated bytes the ratio is not judged: a small body full of repeated keys may
# well shrink a hundredfold, and costs nothing either way.
_RATIO_FLOOR = 1 << 20
# Bodies up to this size stay in memory; larger ones spill into a temporary file.
_IN_MEMORY = 16 << 20


class BodyRefused(Exception):
    """The body passed source.max_body_bytes or source.max_compression_ratio: never retried."""


async def read_body(
    response: aiohttp.ClientResponse,
    *,
    max_bytes: int,
    max_ratio: int,
    limits: tuple[str, str] = ("source.max_body_bytes", "source.max_compression_ratio"),
) -> bytes:
    """The whole body of `response`, inflated; BodyRefused once it passes either limit.

    `limits` names the two limits in messages.
    """
    size_limit, ratio_limit = limits
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    encoded = encoding not in ("", "identity")
    declared = response.content_length  # of the encoded body, if it is encoded
    if declared is not None and declared > max_bytes:
        raise BodyRefused(
            f"the body is {declared} bytes (Content-Length), more than {size_limit} "
            f"({max_bytes} bytes); nothing was read"
        )
    body = _Body()
    try:
        # iter_any: whatever aiohttp has, as it comes; no chunk is held beyond this loop.
        async for chunk in response.content.iter_any():
            if body.size + len(chunk) > max_bytes:
                inflated = f" inflated from {encoding}" if encoded else ""
                raise BodyRefused(
                    f"the body{inflated} passed {size_limit} ({max_bytes} bytes); "
                    "nothing more was read"
                )
            body.add(chunk)
            if encoded and body.size > _RATIO_FLOOR:
                taken = response.content.total_raw_bytes
                if body.size > max_ratio * taken:
                    raise BodyRefused(
                        f"the {encoding} body inflates more than {ratio_limit} "
                        f"({max_ratio}:1; {taken} bytes became {body.size}): a compression "
                        "bomb, or raise the limit"
                    )
        return body.whole()
    finally:
        body.close()


class _Body:
    """The bytes of a body so far: in memory up to _IN_MEMORY, in a temporary file past it."""

    def __init__(self) -> None:
        self.size = 0
        self._memory = bytearray()
        self._file: IO[bytes] | None = None

    def add(self, chunk: bytes) -> None:
        if self._file is None and self.size + len(chunk) > _IN_MEMORY:
            # Unnamed (O_TMPFILE or unlinked at once): nothing is left behind, even on a crash.
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by read_body)
            self._file.write(self._memory)
            self._memory = bytearray()
        if self._file is not None:
            self._file.write(chunk)
        else:
            self._memory += chunk
        self.size += len(chunk)

    def whole(self) -> bytes:
        if self._file is None:
            return bytes(self._memory)
        self._file.seek(0)
        return self._file.read()  # one allocation of the final size

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
