"""The demo dataset: record i is a pure function of i, so tests can predict every byte."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_TAGS = ("alpha", "beta", "gamma", "delta", "epsilon")


def expected_record(i: int) -> dict[str, Any]:
    """Record number `i` (0-based) as the demo API serves it."""
    created = _EPOCH + timedelta(minutes=i)
    return {
        "id": i,
        "name": f"item-{i:07d}",
        "value": (i * 7919) % 10007,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tags": [_TAGS[i % 5], _TAGS[(i // 5) % 5]] if i % 3 else [_TAGS[i % 5]],
    }


def expected_records(n: int) -> list[dict[str, Any]]:
    """Records 0..n-1, in order."""
    return [expected_record(i) for i in range(n)]


def first_id_created_at_or_after(moment: datetime) -> int:
    """The smallest id whose created_at is at or after `moment`; may be < 0 or past the end.

    Record i is created i minutes after the epoch, so this is a ceiling division, done in whole
    microseconds to stay exact.
    """
    elapsed = (moment - _EPOCH) // timedelta(microseconds=1)
    return -(-elapsed // 60_000_000)


class EncodedRecords:
    """orjson bytes per record, built on first use and kept.

    A page is then a join of cached bytes, which keeps the server far ahead of any client; the
    cache is per index, so a late page does not encode every record before it.
    """

    def __init__(self) -> None:
        self._cache: dict[int, bytes] = {}

    def one(self, i: int) -> bytes:
        encoded = self._cache.get(i)
        if encoded is None:
            encoded = self._cache[i] = orjson.dumps(expected_record(i))
        return encoded

    def json_list(self, start: int, stop: int) -> bytes:
        """The records start..stop-1 as one JSON array."""
        return b"[" + b",".join([self.one(i) for i in range(start, stop)]) + b"]"
