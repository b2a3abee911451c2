"""The scenarios tests/test_invariant.py draws: a demo API's behaviour and a client's config.

Drawn honestly: only behaviours a client can see are drawn where they could lose data.
- A short page (short_page_at) where the total in records is not known is drawn only at a page
  with records after it (offset + page_size < records): a short last page of an open-ended
  harvest looks exactly like the end, and no client can tell.
- A page repeating the one before it (repeat_page_at) where the total is unknown is drawn only
  with records after it: a repeated page with nothing after it is also what a server that
  answers past the end with the last page again sends.
- A dataset that changes mid-run (grow_at/grow_by) is drawn only on /items with a known total,
  which every page reports. Records are a pure function of their index, so a change only moves
  the end; the output may then hold the dataset as it was at the first request or as it is at
  the end (either record count is accepted), never anything in between.
- With partition windows the config's filter names follow the server's (id_from/id_to, or
  id_gte/id_lte with to_inclusive). Two mistakes are drawn on purpose: half-open names against
  an inclusive-only server (refused with 400: must fail) and inclusive names without
  to_inclusive, only together with partition.key, which makes the doubled boundary record
  visible (without the key it is indistinguishable from data).
- Seek pagination (cursor_from_record) is never drawn with empty pages: an empty page has no
  last record to seek from, so it ends the chain by the API's own definition.

KNOWN holds scenarios written out: each behaviour issue 9 names, and the falsifying examples
the invariant test has found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

MAX_RECORDS = 600
MAX_PAGES = 60  # page_size is drawn so that n records take at most this many pages: fast examples
ATTEMPTS = 30  # with fault rates of at most 0.5 in all, a page fails 30 times in 1e-9 of runs
Sections = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Scenario:
    """One drawn harvest: the demo API's settings, the config sections over conftest's (the
    source URL as a path on the demo API), and the record counts the output may hold."""

    server: dict[str, Any]
    config: Sections
    accepted: tuple[int, ...]


def maybe(draw: st.DrawFn, strategy: st.SearchStrategy[Any]) -> Any:
    """A value from `strategy`, or None: the switch left off."""
    return draw(st.none() | strategy)


def short_page(draw: st.DrawFn, n: int, size: int, grid: int, *, total_known: bool) -> int | None:
    """short_page_at at a page start; where the total is unknown, only one with records after it."""
    starts = [at for at in range(0, n, grid) if total_known or at + size < n]
    return maybe(draw, st.sampled_from(starts)) if starts else None


def repeated_page(
    draw: st.DrawFn, n: int, size: int, grid: int, *, total_known: bool
) -> int | None:
    """repeat_page_at at a page start after the first. Where the total is unknown, only one with
    records after the page it spoils: a page repeating the one before and nothing after it is
    what a server answering past the end with the last page again sends too."""
    starts = [at for at in range(grid, n + grid, grid) if total_known or at + size < n]
    return maybe(draw, st.sampled_from(starts)) if starts else None


def items(draw: st.DrawFn, n: int, size: int, grid: int, server: dict[str, Any]) -> Scenario:
    total = draw(
        st.sampled_from(
            ["body:total", "header:X-Total-Count", "header:X-Pagination.total", "unknown"]
        )
    )
    server["json_meta_header"] = total == "header:X-Pagination.total"
    known = total != "unknown"
    server["short_page_at"] = short_page(draw, n, size, grid, total_known=known)
    server["repeat_page_at"] = repeated_page(draw, n, size, grid, total_known=known)
    accepted = (n,)
    if known and draw(st.booleans()):
        grow_by = draw(st.integers(-n, 100).filter(bool))
        server.update(grow_at=draw(st.integers(1, 12)), grow_by=grow_by)
        accepted = (n, n + grow_by)
    pagination = {"style": "offset", "total": total}
    return Scenario(
        server,
        {"source": {"url": "/items", "records": "items"}, "pagination": pagination},
        accepted,
    )


def stream(draw: st.DrawFn, n: int, size: int, grid: int, server: dict[str, Any]) -> Scenario:
    server["short_page_at"] = short_page(draw, n, size, grid, total_known=False)
    server["repeat_last_past_end"] = draw(st.booleans())
    pagination = {"style": "offset", "total": "unknown"}
    return Scenario(
        server, {"source": {"url": "/stream", "records": "items"}, "pagination": pagination}, (n,)
    )


def range_items(draw: st.DrawFn, n: int, size: int, grid: int, server: dict[str, Any]) -> Scenario:
    for switch in ("range_echo", "range_empty_past_end", "range_no_total", "ignore_range"):
        server[switch] = draw(st.booleans())
    pagination = {"style": "range", "total": draw(st.sampled_from(["content-range", "unknown"]))}
    source = {"url": "/range-items", "records": ""}
    return Scenario(server, {"source": source, "pagination": pagination}, (n,))


PAGE_TOTALS: dict[str, dict[str, str]] = {
    "count": {"total": "body:count"},
    "total_pages": {"total_pages": "body:total_pages"},
    "meta total": {"total": "header:X-Pagination.total"},
    "meta total_pages": {"total_pages": "header:X-Pagination.total_pages"},
    "unknown": {"total": "unknown"},
}


def pages(draw: st.DrawFn, n: int, size: int, grid: int, server: dict[str, Any]) -> Scenario:
    kind = draw(st.sampled_from(sorted(PAGE_TOTALS)))
    server["json_meta_header"] = kind.startswith("meta")
    # A page count cannot tell how many records the last page should hold.
    known = kind in ("count", "meta total")
    server["short_page_at"] = short_page(draw, n, size, grid, total_known=known)
    server["repeat_last_past_end"] = draw(st.booleans())
    pagination = {"style": "page", **PAGE_TOTALS[kind]}
    return Scenario(
        server, {"source": {"url": "/pages", "records": "results"}, "pagination": pagination}, (n,)
    )


def partition(draw: st.DrawFn, n: int, server: dict[str, Any]) -> dict[str, Any]:
    """pagination.partition over the ids, or {} for one chain."""
    if not draw(st.booleans()):
        return {}
    parts = draw(st.integers(1, 4))
    # The two mistakes a third as often as each right way.
    modes = ["half-open"] * 3 + ["inclusive"] * 3 + ["forgot switch", "forgot to_inclusive"]
    mode = draw(st.sampled_from(modes))
    server["inclusive_filters"] = mode != "half-open"
    names = ("id_from", "id_to") if mode in ("half-open", "forgot switch") else ("id_gte", "id_lte")
    window: dict[str, Any] = {"param_from": names[0], "param_to": names[1], "start": 0}
    window |= {"end": max(n, parts), "parts": parts, "to_inclusive": mode == "inclusive"}
    key = "id" if mode == "forgot to_inclusive" else maybe(draw, st.just("id"))
    if key is not None:
        window["key"] = key
    return {"partition": window}


def cursor(draw: st.DrawFn, n: int, size: int, grid: int, server: dict[str, Any]) -> Scenario:
    follow = draw(st.sampled_from(["body:next_cursor", "header:X-Next-Cursor", "record"]))
    if follow == "record":
        pagination: dict[str, Any] = {"cursor_param": "after", "cursor_from_record": "id"}
    else:
        pagination = {"next_cursor": follow}
        server["empty_pages_every"] = maybe(draw, st.integers(2, 5))
    pagination |= {"style": "cursor", "total": "unknown", **partition(draw, n, server)}
    return Scenario(
        server, {"source": {"url": "/cursor", "records": "data"}, "pagination": pagination}, (n,)
    )


def link(draw: st.DrawFn, n: int, size: int, grid: int, server: dict[str, Any]) -> Scenario:
    server["empty_pages_every"] = maybe(draw, st.integers(2, 5))
    pagination = {
        "style": "link",
        "next_url": draw(st.sampled_from(["body:next", "link-header"])),
        "total": draw(st.sampled_from(["body:count", "unknown"])),
        **partition(draw, n, server),
    }
    return Scenario(
        server, {"source": {"url": "/link", "records": "results"}, "pagination": pagination}, (n,)
    )


ENDPOINTS = {"/items": items, "/stream": stream, "/range-items": range_items, "/pages": pages}
ENDPOINTS |= {"/cursor": cursor, "/link": link}


@st.composite
def faults(draw: st.DrawFn) -> dict[str, Any]:
    """Transient faults, each retried by the client: 5xx, drops, broken or cut bodies, 429s."""
    names = ("fault_rate", "drop_rate", "truncate_rate", "throttle_rate", "cut_rate")
    rates = {name: draw(st.sampled_from([0.0, 0.0, 0.05, 0.1])) for name in names}
    return {name: rate for name, rate in rates.items() if rate} | {"retry_after": 0}


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n = draw(st.integers(0, MAX_RECORDS))
    size = draw(st.integers(max(1, -(-n // MAX_PAGES)), 120))
    # A server capping its page size below page_size, not so low that pages run into hundreds.
    cap = maybe(draw, st.integers(min(size, max(1, -(-n // (2 * MAX_PAGES)))), size))
    server: dict[str, Any] = {"records": n, "max_page_size": cap, **draw(faults())}
    scenario: Scenario = ENDPOINTS[draw(st.sampled_from(list(ENDPOINTS)))](
        draw, n, size, min(size, cap or size), server
    )
    concurrency = {
        "workers": draw(st.integers(1, 8)),
        "max_buffered_pages": draw(st.integers(1, 8)),
    }
    scenario.config["pagination"]["page_size"] = size
    scenario.config.update(concurrency=concurrency, retry={"max_attempts": ATTEMPTS})
    # Switches left off are left out, so that a falsifying example reads short.
    server = {
        name: value for name, value in server.items() if value is not None and value is not False
    }
    return Scenario(server, scenario.config, scenario.accepted)


RECORDS_PATH = {"/items": "items", "/stream": "items", "/range-items": "", "/pages": "results"}
RECORDS_PATH |= {"/cursor": "data", "/link": "results"}


def known(url: str, pagination: dict[str, Any], *, workers: int = 1, **server: Any) -> Scenario:
    """A scenario written out: a behaviour issue 9 names, or what this test once found."""
    server = {"records": 300, **server}
    config = {
        "source": {"url": url, "records": RECORDS_PATH[url]},
        "pagination": pagination,
        "concurrency": {"workers": workers, "max_buffered_pages": workers},
        "retry": {"max_attempts": ATTEMPTS},
    }
    return Scenario(server, config, (server["records"],))


OPEN = {"style": "offset", "total": "unknown", "page_size": 100}
WINDOWS = {"param_from": "id_gte", "param_to": "id_lte", "start": 0, "end": 300, "parts": 4}
KNOWN = [
    # Issue 9, 1: a page cap below page_size, an unknown total, nothing fetched ahead.
    known("/stream", OPEN, max_page_size=30),
    # Found here: the same when every record fits in the first page asked for.
    known("/stream", OPEN, records=100, max_page_size=30),
    known("/range-items", {"style": "range", "total": "unknown"}, records=100, max_page_size=30),
    # 2: a short page where the total is a page count.
    known("/pages", {"style": "page", "total_pages": "body:total_pages"}, short_page_at=100),
    # 4: inclusive filters, sent right; and sent as if half-open, which partition.key catches.
    known(
        "/cursor",
        {"style": "cursor", "next_cursor": "body:next_cursor", "total": "unknown", "page_size": 40}
        | {"partition": {**WINDOWS, "to_inclusive": True}},
        workers=4,
        inclusive_filters=True,
    ),
    known(
        "/link",
        {"style": "link", "next_url": "body:next", "page_size": 40}
        | {"total": "unknown", "partition": {**WINDOWS, "key": "id"}},
        workers=4,
        inclusive_filters=True,
    ),
    # 5: empty pages that carry the chain on.
    known(
        "/cursor",
        {"style": "cursor", "next_cursor": "header:X-Next-Cursor", "total": "unknown"},
        empty_pages_every=3,
    ),
    known("/link", {"style": "link", "total": "unknown", "page_size": 50}, empty_pages_every=2),
    # 6: the total only in X-Pagination; Range past the end; the last page again past the end.
    known(
        "/items",
        {"style": "offset", "total": "header:X-Pagination.total", "page_size": 70},
        workers=4,
        json_meta_header=True,
    ),
    known(
        "/pages",
        {"style": "page", "total_pages": "header:X-Pagination.total_pages", "page_size": 70},
        json_meta_header=True,
    ),
    known("/range-items", {"style": "range", "page_size": 70}, range_echo=True),
    known(
        "/range-items",
        {"style": "range", "total": "unknown", "page_size": 70},
        range_empty_past_end=True,
        range_no_total=True,
    ),
    known("/pages", {"style": "page", "total": "unknown"}, repeat_last_past_end=True),
    known("/stream", OPEN, repeat_last_past_end=True),
]
