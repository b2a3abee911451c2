"""Bad-input traps on /items: answers with status 200 that a client must not write as records.

Each is switched on by a DemoSettings field naming the offset of the page it replaces.
"""

from __future__ import annotations

from collections.abc import Mapping

from .pages import Answer
from .params import non_negative_int
from .settings import DemoSettings

_GARBAGE = b"OK\x00 3 rows\r\n#!<<< not json >>>"
_LOGIN_PAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in</title></head>"
    b'<body><form method="post" action="/login"><input name="user"></form></body></html>'
)


def trap_page(query: Mapping[str, str], settings: DemoSettings) -> Answer | None:
    """The plain text or HTML page that replaces this /items page, if a trap asks for one."""
    offset = non_negative_int(query, "offset", 0)
    if offset is None:
        return None
    if offset == settings.garbage_at:
        return Answer(200, _GARBAGE, content_type="text/plain")
    if offset == settings.html_at:
        return Answer(200, _LOGIN_PAGE, content_type="text/html")
    return None


def repeat_query(query: Mapping[str, str], settings: DemoSettings) -> Mapping[str, str]:
    """The query the /items page is answered for: with repeat_page_at, the page starting there
    gets the offset of the page before it, as from an API that ignores the offset."""
    offset = non_negative_int(query, "offset", 0)
    limit = non_negative_int(query, "limit", 100)
    if offset is None or limit is None or offset != settings.repeat_page_at:
        return query
    before = offset - min(limit, settings.max_page_size)
    return {**query, "offset": str(max(0, before))}
