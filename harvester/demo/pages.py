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
from .quirks import last_page_start, meta_header, short_stop
from .records import EncodedRecords
from .settings import Carrier

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
    query: Mapping[str, str],
    *,
    total: int,
    max_page_size: int,
    records: EncodedRecords,
    json_meta_header: bool = False,
    short_page_at: int | None = None,
    totals_in: Carrier = "both",
) -> Answer:
    """{"items": [...], "total", "offset", "limit"} with the limit capped to max_page_size.

    limit=0 is allowed: it answers the total without records, as many real APIs do. The total
    is in the body's "total" and in X-Total-Count, or only in one of them (`totals_in`). With
    `json_meta_header` it is only in X-Pagination (no "total", no X-Total-Count); with
    `short_page_at`, the page starting there holds half the records asked for.
    """
    offset = non_negative_int(query, "offset", 0)
    limit = non_negative_int(query, "limit", 100)
    if offset is None or limit is None:
        return error_answer(
            400, "invalid_request", "offset and limit must be non-negative integers"
        )
    limit = min(limit, max_page_size)
    start, stop = min(offset, total), min(offset + limit, total)
    stop = short_stop(start, stop, asked=limit, short_at=short_page_at)
    items = records.json_list(start, stop)
    if json_meta_header:
        body = b'{"items":%b,"offset":%d,"limit":%d}' % (items, offset, limit)
        return Answer(200, body, meta_header(total=total, first=offset, size=limit))
    if totals_in == "header":
        body = b'{"items":%b,"offset":%d,"limit":%d}' % (items, offset, limit)
    else:
        body = b'{"items":%b,"total":%d,"offset":%d,"limit":%d}' % (items, total, offset, limit)
    return Answer(200, body, {} if totals_in == "body" else {"X-Total-Count": str(total)})


def stream_page(
    query: Mapping[str, str],
    *,
    total: int,
    max_page_size: int,
    records: EncodedRecords,
    repeat_last_past_end: bool = False,
    short_page_at: int | None = None,
) -> Answer:
    """{"items": [...]} and nothing else: no total in the body or the headers.

    For clients that must harvest without knowing the total: they read on until a page comes
    back empty (200 with []). limit=0 is refused, since an empty page would mean "the end".
    The limit is capped to max_page_size. With `repeat_last_past_end`, an offset past the end
    gets the last page of a walk from 0 again; with `short_page_at`, the page starting there
    holds half the records asked for.
    """
    offset = non_negative_int(query, "offset", 0)
    limit = non_negative_int(query, "limit", 100)
    if offset is None or limit is None or limit == 0:
        return error_answer(
            400, "invalid_request", "offset must be an integer >= 0 and limit one >= 1"
        )
    size = min(limit, max_page_size)
    if repeat_last_past_end and offset >= total:
        offset = last_page_start(total, size)
    start, stop = min(offset, total), min(offset + size, total)
    stop = short_stop(start, stop, asked=size, short_at=short_page_at)
    return Answer(200, b'{"items":%b}' % records.json_list(start, stop))


def range_page(
    range_header: str | None,
    *,
    total: int,
    max_page_size: int,
    ignore_range: bool,
    records: EncodedRecords,
    echo: bool = False,
    empty_past_end: bool = False,
    no_total: bool = False,
) -> Answer:
    """A bare JSON list: 206 for `Range: items=first-last` (inclusive), 200 for everything.

    The range is capped to max_page_size and to the total, and Content-Range says what was
    sent. `items=first-` means "from first on". Anything else in Range, and a first record
    past the end, is 416 with `Content-Range: items */total`, so a client still learns the total.

    Switches for other servers' ways: `echo` answers a range that reaches past the end with the
    requested span in Content-Range (`items 900-1099/1000` over 100 records), as some Express
    range middlewares do; `empty_past_end` answers a first record past the end with 206 and `[]`
    instead of 416; `no_total` sends `*` for the total (`items 0-99/*`, `items */*`).
    """
    accept = {"Accept-Ranges": "items"}
    if range_header is None or ignore_range:
        return Answer(200, records.json_list(0, total), accept)
    shown_total = "*" if no_total else str(total)
    match = _RANGE.fullmatch(range_header)
    first = int(match[1]) if match else total
    last = int(match[2]) if match and match[2] else None
    malformed = match is None or (last is not None and last < first)
    if not malformed and first >= total and empty_past_end:
        return Answer(206, b"[]", {**accept, "Content-Range": f"items */{shown_total}"})
    if malformed or first >= total:
        return error_answer(
            416,
            "range_not_satisfiable",
            f"Range must be items=first-last with first < {shown_total}, got {range_header!r}",
            **accept,
            **{"Content-Range": f"items */{shown_total}"},
        )
    stop = min(total, first + max_page_size, total if last is None else last + 1)
    shown_last = last if echo and last is not None and last >= total else stop - 1
    headers = {**accept, "Content-Range": f"items {first}-{shown_last}/{shown_total}"}
    return Answer(206, records.json_list(first, stop), headers)
