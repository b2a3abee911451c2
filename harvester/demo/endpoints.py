"""The demo API's data endpoints: each reads the request and the live settings, and answers a page.

server.py puts each behind the same gate (token, rate limit, faults); these only decide the
answer, so that a fault can cut or replace any of them the same way.
"""

from __future__ import annotations

from aiohttp import web

from .changes import changes_page
from .keyset import cursor_page
from .links import link_page
from .numbered import numbered_page
from .pages import Answer, offset_page, range_page, stream_page
from .state import DemoState
from .traps import repeat_query, trap_page


def items(request: web.Request, state: DemoState) -> Answer:
    """/items: offset pages with a total; the bad-input traps and grow_at apply here."""
    s = state.settings
    query = request.query
    return trap_page(query, s) or offset_page(
        repeat_query(query, s),
        total=state.items_total(),
        max_page_size=s.max_page_size,
        records=state.records,
        json_meta_header=s.json_meta_header,
        short_page_at=s.short_page_at,
        totals_in=s.totals_in,
    )


def range_items(request: web.Request, state: DemoState) -> Answer:
    s = state.settings
    return range_page(
        request.headers.get("Range"),
        total=s.records,
        max_page_size=s.max_page_size,
        ignore_range=s.ignore_range,
        records=state.records,
        echo=s.range_echo,
        empty_past_end=s.range_empty_past_end,
        no_total=s.range_no_total,
    )


def pages(request: web.Request, state: DemoState) -> Answer:
    s = state.settings
    return numbered_page(
        request.query,
        total=s.records,
        max_page_size=s.max_page_size,
        records=state.records,
        json_meta_header=s.json_meta_header,
        repeat_last_past_end=s.repeat_last_past_end,
        short_page_at=s.short_page_at,
    )


def stream(request: web.Request, state: DemoState) -> Answer:
    s = state.settings
    return stream_page(
        request.query,
        total=s.records,
        max_page_size=s.max_page_size,
        records=state.records,
        repeat_last_past_end=s.repeat_last_past_end,
        short_page_at=s.short_page_at,
    )


def cursor(request: web.Request, state: DemoState) -> Answer:
    s = state.settings
    return cursor_page(
        request.query,
        total=s.records,
        max_page_size=s.max_page_size,
        loop_at=s.loop_cursor_at,
        records=state.records,
        inclusive_filters=s.inclusive_filters,
        empty_pages_every=s.empty_pages_every,
        next_cursor_in=s.next_cursor_in,
    )


def link(request: web.Request, state: DemoState) -> Answer:
    s = state.settings
    return link_page(
        request.query,
        origin=str(request.url.origin()),
        path=request.path,
        total=s.records,
        max_page_size=s.max_page_size,
        loop_at=s.loop_cursor_at,
        cross_host_next=s.cross_host_next,
        records=state.records,
        inclusive_filters=s.inclusive_filters,
        empty_pages_every=s.empty_pages_every,
        next_link_in=s.next_link_in,
        opaque=s.opaque_links,
    )


def changes(request: web.Request, state: DemoState) -> Answer:
    """/changes: records with updated_at, filtered by updated_since, in (updated_at, id) order."""
    s = state.settings
    return changes_page(
        request.query,
        records=s.records,
        added=s.changes_added,
        updated=s.changes_updated,
        number=s.changes_generation,
        cap=s.max_page_size,
    )
