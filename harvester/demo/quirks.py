"""Ways of real third-party servers the demo API can imitate, each behind a DemoSettings switch.

Pure helpers, shared by the endpoint modules; each names the switch it serves:

- json_meta_header: the total only in `X-Pagination: {"total", "total_pages", "page",
  "page_size"}`, a JSON-valued header as flask-smorest sends it (/items, /pages);
- short_page_at: the page whose first record is at offset N silently holds half the records
  asked for, a server bug a client must catch (/items, /stream, /pages);
- repeat_last_past_end: a page past the last answered with the last page again (/pages, /stream);
- empty_pages_every: a scan-style API, whose server-side filter leaves some pages empty while
  the chain goes on (/cursor, /link).
"""

from __future__ import annotations

import orjson


def meta_header(*, total: int, first: int, size: int) -> dict[str, str]:
    """X-Pagination for the page of `size` records that starts at record `first` (0-based).

    Pages are counted from 1, as flask-smorest does; a page size of 0 (/items?limit=0) has no
    pages at all.
    """
    meta = {
        "total": total,
        "total_pages": -(-total // size) if size else 0,
        "page": first // size + 1 if size else 1,
        "page_size": size,
    }
    return {"X-Pagination": orjson.dumps(meta).decode()}


def short_stop(start: int, stop: int, *, asked: int, short_at: int | None) -> int:
    """Where the page start..stop really ends: with `short_at` == start, after asked // 2 records
    (at least one).

    `asked` is the page size after the server's own cap; the totals the server reports stay
    as they were, so only a client that checks each page against them can tell.
    """
    if short_at is None or start != short_at:
        return stop
    # Never empty: an empty page is how an open-ended API says the data ends, and no client
    # could tell that lie from the truth. A page of one record cannot be short.
    return min(stop, start + max(1, asked // 2))


def last_page_start(total: int, size: int) -> int:
    """The first record of the last page a walk from record 0 in pages of `size` gets."""
    return (total - 1) // size * size if total > 0 else 0


def empty_page_before(offset: int, size: int, every: int | None) -> bool:
    """Whether an empty page (with a continuation) comes before the page at `offset`.

    `offset` counts within the chain's window. Every `every`-th page of a chain is empty: pages
    1 .. every-1 hold records, page `every` is empty, and so on. The empty page stands before the
    page of records it delays, so a chain never ends on one, and its continuation (a cursor or
    a link marked as past it) leads to that page of records: each record is served exactly once.
    Offsets off the page grid (a seek client's `after=`) never get an empty page.
    """
    if every is None or offset <= 0 or offset % size:
        return False
    return (offset // size) % (every - 1) == 0
