"""Page-number pages (/pages), like Django REST Framework's PageNumberPagination."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from .pages import Answer
from .params import int_param
from .quirks import meta_header, short_stop
from .records import EncodedRecords

_INVALID_PAGE = orjson.dumps({"detail": "Invalid page."})


def numbered_page(
    query: Mapping[str, str],
    *,
    total: int,
    max_page_size: int,
    records: EncodedRecords,
    json_meta_header: bool = False,
    repeat_last_past_end: bool = False,
    short_page_at: int | None = None,
) -> Answer:
    """{"results": [...], "count", "total_pages", "page"}: page `page` (1-based) of `page_size`.

    page_size (default 100) is capped to max_page_size. As in Django's Paginator, an empty
    dataset still has one (empty) page, so total_pages is at least 1; a page past the last
    is 404 {"detail": "Invalid page."}, or the last page again with `repeat_last_past_end`.
    With `json_meta_header` the count and page count are only in X-Pagination; with
    `short_page_at`, the page whose first record is there holds half the records asked for.
    Raises BadParam for a page or page_size below 1.
    """
    page = int_param(query, "page", 1, least=1)
    size = min(int_param(query, "page_size", 100, least=1), max_page_size)
    total_pages = max(1, -(-total // size))
    if page > total_pages:
        if not repeat_last_past_end:
            return Answer(404, _INVALID_PAGE)
        page = total_pages
    start = (page - 1) * size
    stop = short_stop(start, min(start + size, total), asked=size, short_at=short_page_at)
    results = records.json_list(start, stop)
    if json_meta_header:
        body = b'{"results":%b,"page":%d}' % (results, page)
        return Answer(200, body, meta_header(total=total, first=start, size=size))
    body = b'{"results":%b,"count":%d,"total_pages":%d,"page":%d}' % (
        results,
        total,
        total_pages,
        page,
    )
    return Answer(200, body)
