"""The demo API's pages, as bytes: offset pages (/items, /stream) and Range pages (/range-items).

Pure functions of the request and the settings, so the fault handling around them in server.py
can cut or replace any answer the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from .params import non_negative_int
from .records import EncodedRecords

JSON = "application/json"
_RANGE = re.compile(r"\s*items\s*=\s*(\d+)\s*-\s*(\d*)\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = JSON


def error_answer(status: int, error: str, description: str, **headers: str) -> Answer:
    return Answer(status, orjson.dumps({"error": error, "error_description": description}), headers)


def offset_page(
    query: Mapping[str, str], *, total: int, max_page_size: int, records: EncodedRecords
) -> Answer:
    """{"items": [...], "total", "offset", "limit"} with the limit capped to max_page_size.

    limit=0 is allowed: it answers the total without records, as many real APIs do.
    """
    offset = non_negative_int(query, "offset", 0)
    limit = non_negative_int(query, "limit", 100)
    if offset is None or limit is None:
        return error_answer(
            400, "invalid_request", "offset and limit must be non-negative integers"
        )
    limit = min(limit, max_page_size)
    start, stop = min(offset, total), min(offset + limit, total)
    body = b'{"items":%b,"total":%d,"offset":%d,"limit":%d}' % (
        records.json_list(start, stop),
        total,
        offset,
        limit,
    )
    return Answer(200, body, {"X-Total-Count": str(total)})


def stream_page(
    query: Mapping[str, str], *, total: int, max_page_size: int, records: EncodedRecords
) -> Answer:
    """{"items": [...]} and nothing else: no total in the body or the headers.

    For clients that must harvest without knowing the total: they read on until a page comes
    back empty (200 with []). limit=0 is refused, since an empty page would mean "the end".
    """
    offset = non_negative_int(query, "offset", 0)
    limit = non_negative_int(query, "limit", 100)
    if offset is None or limit is None or limit == 0:
        return error_answer(
            400, "invalid_request", "offset must be an integer >= 0 and limit one >= 1"
        )
    start, stop = min(offset, total), min(offset + min(limit, max_page_size), total)
    return Answer(200, b'{"items":%b}' % records.json_list(start, stop))


def range_page(
    range_header: str | None,
    *,
    total: int,
    max_page_size: int,
    ignore_range: bool,
    records: EncodedRecords,
) -> Answer:
    """A bare JSON list: 206 for `Range: items=first-last` (inclusive), 200 for everything.

    The range is capped to max_page_size and to the total, and Content-Range says what was
    sent. `items=first-` means "from first on". Anything else in Range, and a first record
    past the end, is 416 with `Content-Range: items */total`, so a client still learns the total.
    """
    accept = {"Accept-Ranges": "items"}
    if range_header is None or ignore_range:
        return Answer(200, records.json_list(0, total), accept)
    match = _RANGE.fullmatch(range_header)
    first = int(match[1]) if match else total
    last = int(match[2]) if match and match[2] else None
    if match is None or first >= total or (last is not None and last < first):
        return error_answer(
            416,
            "range_not_satisfiable",
            f"Range must be items=first-last with first < {total}, got {range_header!r}",
            **accept,
            **{"Content-Range": f"items */{total}"},
        )
    stop = min(total, first + max_page_size, total if last is None else last + 1)
    headers = {**accept, "Content-Range": f"items {first}-{stop - 1}/{total}"}
    return Answer(206, records.json_list(first, stop), headers)
