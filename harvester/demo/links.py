"""Link pages (/link), like Django REST Framework's LimitOffsetPagination plus RFC 8288 Link."""

from __future__ import annotations

import base64
from collections.abc import Mapping

import orjson

from .pages import Answer
from .params import BadParam, id_window, int_param
from .quirks import empty_page_before
from .records import EncodedRecords
from .settings import Carrier

_FILTERS = ("id_from", "id_to", "id_gte", "id_lte")
# Marks the link an empty page (empty_pages_every) hands on: it leads to the delayed records.
_PAST_EMPTY = "past_empty"


def link_page(
    query: Mapping[str, str],
    *,
    origin: str,
    path: str,
    total: int,
    max_page_size: int,
    loop_at: int | None,
    cross_host_next: str | None,
    records: EncodedRecords,
    inclusive_filters: bool = False,
    empty_pages_every: int | None = None,
    next_link_in: Carrier = "both",
    opaque: bool = False,
) -> Answer:
    """{"count", "next", "previous", "results"} and a Link header with rel="next", "prev", "first".

    `offset` counts within the id_from/id_to filter (id_gte/id_lte with `inclusive_filters`),
    which every link carries over; `limit` (default 100) is capped to max_page_size. The body's
    links are absolute, on `origin` (the scheme, host and port the request came to); the Link
    header's are relative. With `cross_host_next`, next (in both) is an absolute URL on that
    base instead. With `loop_at`, the page at offset loop_at points next to the page before it,
    so a naive client loops. With `empty_pages_every`, every K-th page of the chain is empty and
    its next link (marked past_empty=1) leads to the records it delayed. With `next_link_in`
    the links are only in the body (no Link header) or only in the Link header (the body is
    {"count", "results"}). With `opaque`, links carry the offset as a token in `after`.
    """
    offset = _opaque_offset(query) if opaque and "after" in query else int_param(query, "offset", 0)
    limit = min(int_param(query, "limit", 100, least=1), max_page_size)
    window = id_window(query, total, by_time=False, inclusive=inclusive_filters)
    count = len(window)
    if query.get(_PAST_EMPTY, "1") != "1":
        raise BadParam(f"{_PAST_EMPTY}: must be 1, got {query[_PAST_EMPTY]!r}")
    # Checked as plain integers already, so they go into URLs without escaping.
    carried = "".join(f"&{name}={query[name]}" for name in _FILTERS if name in query)

    def relative(at: int, mark: str = "") -> str:
        position = f"after={_token(at)}" if opaque else f"offset={at}"
        return f"{path}?{position}&limit={limit}{carried}{mark}"

    next_offset = offset + limit if offset + limit < count else None
    if offset < count and offset == loop_at:
        next_offset = max(0, offset - limit)
    stop_offset, mark = min(offset + limit, count), ""
    empty = offset < count and empty_page_before(offset, limit, empty_pages_every)
    if empty and _PAST_EMPTY not in query:
        next_offset, stop_offset, mark = offset, offset, f"&{_PAST_EMPTY}=1"
    previous_offset = max(0, offset - limit) if offset > 0 else None
    elsewhere = cross_host_next.rstrip("/") if cross_host_next is not None else ""
    header: list[str] = []
    body_next = body_previous = None
    if next_offset is not None:
        body_next = (elsewhere or origin) + relative(next_offset, mark)
        header.append(f'<{elsewhere + relative(next_offset, mark)}>; rel="next"')
    if previous_offset is not None:
        body_previous = origin + relative(previous_offset)
        header.append(f'<{relative(previous_offset)}>; rel="prev"')
    header.append(f'<{relative(0)}>; rel="first"')
    start = window.start + min(offset, count)
    stop = window.start + stop_offset
    results = records.json_list(start, stop)
    if next_link_in == "header":
        body = b'{"count":%d,"results":%b}' % (count, results)
    else:
        body = b'{"count":%d,"next":%b,"previous":%b,"results":%b}' % (
            count,
            orjson.dumps(body_next),
            orjson.dumps(body_previous),
            results,
        )
    return Answer(200, body, {} if next_link_in == "body" else {"Link": ", ".join(header)})


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _opaque_offset(query: Mapping[str, str]) -> int:
    text = query["after"]
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except ValueError:
        decoded = ""
    tag, _, number = decoded.partition(":")
    if tag != "o" or not number.isascii() or not number.isdigit():
        raise BadParam(f"after: not a token this server gave, got {text!r}")
    return int(number)
