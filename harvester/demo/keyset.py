"""Keyset pages (/cursor): records after a cursor, in ascending id, within optional filters."""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Mapping

import orjson

from .pages import Answer
from .params import BadParam, id_window, int_param, optional_int
from .quirks import empty_page_before
from .records import EncodedRecords
from .settings import Carrier

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PAYLOAD = re.compile(rb"(id|past-empty):(-?[0-9]+)")


def encode_cursor(last_id: int, *, past_empty: bool = False) -> str:
    """The opaque cursor for "the records after `last_id`": unpadded urlsafe base64.

    `past_empty` marks the cursor an empty page (empty_pages_every) hands on: the page it
    leads to holds the records that the empty page delayed.
    """
    payload = b"%b:%d" % (b"past-empty" if past_empty else b"id", last_id)
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def decode_cursor(token: str) -> int:
    """The last id a cursor stands for; BadParam unless this server could have issued it."""
    return read_cursor(token)[0]


def read_cursor(token: str) -> tuple[int, bool]:
    """The last id a cursor stands for and whether it is past an empty page; BadParam unless
    this server could have issued it."""
    payload = b""
    # urlsafe_b64decode skips characters outside the alphabet; _TOKEN rules them out first.
    with contextlib.suppress(binascii.Error, ValueError):
        if _TOKEN.fullmatch(token):
            payload = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    match = _PAYLOAD.fullmatch(payload)
    past_empty = match is not None and match[1] == b"past-empty"
    # Only the one spelling the server issues: no leading zeros, no "-0", no padding.
    if match is None or encode_cursor(int(match[2]), past_empty=past_empty) != token:
        raise BadParam(f"cursor: not a cursor this server issued: {token!r}")
    return int(match[2]), past_empty


def cursor_page(
    query: Mapping[str, str],
    *,
    total: int,
    max_page_size: int,
    loop_at: int | None,
    records: EncodedRecords,
    inclusive_filters: bool = False,
    empty_pages_every: int | None = None,
    next_cursor_in: Carrier = "both",
) -> Answer:
    """{"data": [...], "next_cursor": "..." or null} and the same cursor in X-Next-Cursor.

    With `next_cursor_in` the cursor is only in the body (no X-Next-Cursor ever) or only in
    the header (the body is {"data": [...]} alone).

    Up to `limit` records (default 100, capped to max_page_size) with id > the `cursor`'s id or
    > `after` (a raw id; not both), inside the id_from/id_to (id_gte/id_lte with
    `inclusive_filters`) and since/until filters, which the client sends again with every
    cursor. next_cursor is null, and X-Next-Cursor absent, when the page is empty or ends the
    filtered range, except on the empty pages `empty_pages_every` puts into the chain. With
    `loop_at`, the page whose first id is loop_at answers the cursor of the page before it
    instead, so a naive client loops.
    """
    limit = min(int_param(query, "limit", 100, least=1), max_page_size)
    window = id_window(query, total, by_time=True, inclusive=inclusive_filters)
    token, after = query.get("cursor"), optional_int(query, "after")
    if token is not None and after is not None:
        raise BadParam("cursor, after: send one or the other, not both")
    last, past_empty = read_cursor(token) if token is not None else (after, False)
    start = window.start if last is None else max(window.start, last + 1)
    stop = min(start + limit, window.stop)
    next_cursor = encode_cursor(stop - 1) if start < stop < window.stop else None
    if start < stop and start == loop_at:
        # The cursor that yields the previous page; on the first page, this very page again.
        next_cursor = encode_cursor(max(window.start, start - limit) - 1)
    if (
        start < stop
        and not past_empty
        and empty_page_before(start - window.start, limit, empty_pages_every)
    ):
        stop, next_cursor = start, encode_cursor(start - 1, past_empty=True)
    data = records.json_list(start, stop)
    if next_cursor_in == "header":
        body = b'{"data":%b}' % data
    else:
        body = b'{"data":%b,"next_cursor":%b}' % (data, orjson.dumps(next_cursor))
    if next_cursor is None or next_cursor_in == "body":
        return Answer(200, body)
    return Answer(200, body, {"X-Next-Cursor": next_cursor})
