"""A fetched page as the sink and the writers see it: its records encoded as JSON Lines."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(slots=True)
class Page:
    """One fetched page: its records already encoded as JSON Lines (one record a line)."""

    index: int
    data: bytes
    count: int
    url: str = ""  # where it came from, for error messages

    def digest(self) -> str:
        """A fingerprint of the page's records, to tell a repeated page by."""
        return digest(self.data)

    def head(self, count: int) -> Page:
        """This page cut to its first `count` records (--max-records ends inside it)."""
        if count >= self.count:
            return self
        end = 0
        for _ in range(count):
            end = self.data.index(b"\n", end) + 1
        return Page(self.index, self.data[:end], count, url=self.url)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
