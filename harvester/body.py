"""An answer's body read within bounds: its size, inflated or not, and its compression ratio.

aiohttp (3.14) inflates gzip, deflate (and br or zstd, where their libraries are installed) as the
body streams in, never more than its read buffer at a time, and counts the compressed bytes it
has taken in. So the body is read here in the chunks aiohttp hands over, and both limits are
checked after each chunk: a 2 GiB body, or a gzip bomb, costs at most `max_bytes` of memory and
fails as soon as it passes a limit, not once it has all been read.
"""

from __future__ import annotations

import aiohttp

__all__ = ["BodyRefused", "read_body"]

# Below this many inflated bytes the ratio is not judged: a small body full of repeated keys may
# well shrink a hundredfold, and costs nothing either way.
_RATIO_FLOOR = 1 << 20


class BodyRefused(Exception):
    """The body passed source.max_body_bytes or source.max_compression_ratio: never retried."""


async def read_body(response: aiohttp.ClientResponse, *, max_bytes: int, max_ratio: int) -> bytes:
    """The whole body of `response`, inflated; BodyRefused once it passes either limit."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    encoded = encoding not in ("", "identity")
    declared = response.content_length  # of the encoded body, if it is encoded
    if declared is not None and declared > max_bytes:
        raise BodyRefused(
            f"the body is {declared} bytes (Content-Length), more than source.max_body_bytes "
            f"({max_bytes})"
        )
    body = bytearray()
    # iter_any: whatever aiohttp has, as it comes; no chunk is held beyond this loop.
    async for chunk in response.content.iter_any():
        if len(body) + len(chunk) > max_bytes:
            inflated = f" inflated from {encoding}" if encoded else ""
            raise BodyRefused(
                f"the body{inflated} passed source.max_body_bytes ({max_bytes} bytes); "
                "nothing more was read"
            )
        body += chunk
        if encoded and len(body) > _RATIO_FLOOR:
            taken = response.content.total_raw_bytes
            if len(body) > max_ratio * taken:
                raise BodyRefused(
                    f"the {encoding} body inflates more than source.max_compression_ratio "
                    f"({max_ratio}:1; {taken} bytes became {len(body)}): a compression bomb, "
                    "or raise the limit"
                )
    # One copy, once the body is whole: a failed body above never gets this far.
    return bytes(body)
