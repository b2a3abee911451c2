"""/changes: the demo dataset as it changes between runs, for incremental harvests.

Generation 0 is records 0..records-1, each with `updated_at` equal to its created_at. Each
generation g >= 1 (`DemoSettings.changes_generation`, or POST /admin/next-generation) adds
`changes_added` records and updates `changes_updated` older ones, each update giving the record
`version: g` and a new `updated_at`:
- most updates are stamped after every record added in that generation (ordinary changes);
- every fourth is stamped LATE_SECONDS before the newest `updated_at` of the generation before,
  as a change committed late would be: a client that asks only from the newest value it has
  seen misses it, one that re-reads a lookback of a few minutes gets it.

Records come ordered by (updated_at, id), so offset paging over one generation is stable;
`updated_since` filters inclusively. Every value is a pure function of (settings, generation):
tests predict every record with `changes_records`.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson

from .pages import Answer, error_answer
from .params import non_negative_int, timestamp_param
from .records import expected_record

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
MINUTE_MS = 60_000
LATE_SECONDS = 60  # how far before the last generation's newest value a late change lands


@dataclass(frozen=True)
class Generation:
    """The dataset at one generation: each id's (updated_at in ms since the epoch, version),
    and the ids ordered by (updated_at, id)."""

    stamps: dict[int, tuple[int, int]]
    order: list[tuple[int, int]]  # (updated_at ms, id), sorted

    def record(self, i: int) -> dict[str, Any]:
        updated, version = self.stamps[i]
        record = expected_record(i)
        record["updated_at"] = format_ms(updated)
        record["version"] = version
        return record


def format_ms(ms: int) -> str:
    """Milliseconds since the demo's epoch as an ISO 8601 UTC time, to the millisecond."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@lru_cache(maxsize=4)
def generation(records: int, added: int, updated: int, number: int) -> Generation:
    """The dataset after `number` generations of changes (cached: a run asks for one often).

    Time only moves forward: generation g's records are stamped a minute apart from a minute
    after the newest value so far, its ordinary updates a second apart after those, and its
    late updates a millisecond apart from LATE_SECONDS before that newest value.
    """
    stamps = {i: (i * MINUTE_MS, 0) for i in range(records)}
    newest = max(0, records - 1) * MINUTE_MS
    for g in range(1, number + 1):
        before, existing = newest, len(stamps)
        base, start = before + MINUTE_MS, records + (g - 1) * added
        for k in range(added):
            stamps[start + k] = (base + k * MINUTE_MS, g)
        after = base + added * MINUTE_MS
        rng = random.Random(g)
        for j, i in enumerate(rng.sample(range(existing), min(updated, existing))):
            late = j % 4 == 3 and before > LATE_SECONDS * 1000
            stamps[i] = (before - LATE_SECONDS * 1000 + j % 60_000 if late else after + j * 1000, g)
        newest = max(stamp for stamp, _ in stamps.values())
    order = sorted((stamp, i) for i, (stamp, _) in stamps.items())
    return Generation(stamps, order)


def changes_records(
    records: int, added: int, updated: int, number: int, since: str | None = None
) -> list[dict[str, Any]]:
    """What /changes serves at generation `number`, all pages, from `since` (inclusive)."""
    state = generation(records, added, updated, number)
    first = 0 if since is None else _first_at(state, _ms(datetime.fromisoformat(since)))
    return [state.record(i) for _, i in state.order[first:]]


def changes_page(
    query: Mapping[str, str], *, records: int, added: int, updated: int, number: int, cap: int
) -> Answer:
    """{"data": [...], "total"}: the records with updated_at >= updated_since, ordered by
    (updated_at, id), `limit` (capped) from `offset`."""
    offset = non_negative_int(query, "offset", 0)
    limit = non_negative_int(query, "limit", 100)
    if offset is None or limit is None:
        return error_answer(400, "invalid_request", "offset and limit must be integers >= 0")
    since = timestamp_param(query, "updated_since")
    state = generation(records, added, updated, number)
    first = 0 if since is None else _first_at(state, _ms(since))
    total = len(state.order) - first
    start = first + min(offset, total)
    stop = first + min(offset + min(limit, cap), total)
    data = [state.record(i) for _, i in state.order[start:stop]]
    return Answer(200, orjson.dumps({"data": data, "total": total}))


def _ms(moment: datetime) -> int:
    return -(-((moment - _EPOCH) // timedelta(microseconds=1)) // 1000)  # ceiling: inclusive


def _first_at(state: Generation, ms: int) -> int:
    return bisect.bisect_left(state.order, (ms, -1))
