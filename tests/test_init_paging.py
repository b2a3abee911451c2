"""`harvester init` against small APIs paged in the ways real ones are and the demo API is not:
pages counted from 0, a page size the client cannot set, a `count` that counts the page, a
refusal above a page-size limit. Each config must harvest the whole dataset exactly."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from harvester.demo.server import serve

from .test_init import BUDGET, assert_written, environment, run_init

RECORDS = [
    {"id": i + 1, "name": f"record {i}", "updated_at": f"2024-01-{i % 28 + 1:02d}T10:00:00Z"}
    for i in range(487)
]
DEFAULTS = {
    "style": "offset",
    "page_size": 100,
    "total": None,
    "first_page": 1,
    "offset_param": "offset",
    "limit_param": "limit",
}
Page = Callable[[dict[str, str]], tuple[Any, ...]]


def _int(query: dict[str, str], name: str, default: int) -> int:
    return int(query.get(name, default))


def pages_from_zero(query: dict[str, str]) -> tuple[int, Any]:
    """?page=0 is the first page; per_page sets the size (30 by default, 200 at most)."""
    size = min(_int(query, "per_page", 30), 200)
    page = _int(query, "page", 0)
    rows = RECORDS[page * size : (page + 1) * size]
    return 200, {"data": rows, "meta": {"total_count": len(RECORDS), "page": page}}


def fixed_pages(query: dict[str, str]) -> tuple[int, Any]:
    """?page=N (from 1), always 25 a page whatever is asked; `count` counts only the page."""
    page = _int(query, "page", 1)
    rows = RECORDS[(page - 1) * 25 : page * 25]
    return 200, {"results": rows, "count": len(rows)}


def capped_offsets(query: dict[str, str]) -> tuple[int, Any]:
    """?offset=&limit= (20 by default); above 100 a 422 naming the limit, as FastAPI answers."""
    limit, offset = _int(query, "limit", 20), _int(query, "offset", 0)
    if limit > 100:
        detail = [{"msg": "Input should be less than or equal to 100", "input": str(limit)}]
        return 422, {"detail": detail}
    return 200, {"items": RECORDS[offset : offset + limit], "total": len(RECORDS)}


def json_server_017(query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
    """json-server 0.17: everything as a bare list; X-Total-Count only with _start/_limit."""
    if "_start" not in query and "_limit" not in query:
        return 200, RECORDS, {}
    start, limit = _int(query, "_start", 0), _int(query, "_limit", 10)
    return 200, RECORDS[start : start + limit], {"X-Total-Count": str(len(RECORDS))}


def json_server_1(query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
    """json-server 1.0: everything as a bare list; with _page/_per_page an object around the page
    (`data`, `items` the total); any other parameter filters a field, so matches nothing."""
    if set(query) - {"_page", "_per_page"}:
        return 200, [], {}
    if not query:
        return 200, RECORDS, {}
    page, size = _int(query, "_page", 1), _int(query, "_per_page", 10)
    rows = RECORDS[(page - 1) * size : page * size]
    pages = -(-len(RECORDS) // size)
    return (
        200,
        {"first": 1, "next": page + 1, "pages": pages, "items": len(RECORDS), "data": rows},
        {},
    )


def datasette_like(query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
    """datasette: `_size` (100 by default, 1000 at most) and an opaque `_next` in next_url; any
    other parameter is a column filter, and an unknown column is a 400."""
    unknown = set(query) - {"_size", "_next"}
    if unknown:
        return 400, {"ok": False, "error": f"no such column: {sorted(unknown)[0]}"}, {}
    size, start = min(_int(query, "_size", 100), 1000), _int(query, "_next", 0)
    rows = RECORDS[start : start + size]
    after = start + size
    following = f"/items?_next={after}" + (f"&_size={query['_size']}" if "_size" in query else "")
    body = {
        "rows": rows,
        "filtered_table_rows_count": len(RECORDS),
        "next": str(after) if after < len(RECORDS) else None,
        "next_url": ("http://{host}" + following) if after < len(RECORDS) else None,
    }
    return 200, body, {}


@contextlib.asynccontextmanager
async def api(page: Page) -> AsyncIterator[tuple[str, list[str]]]:
    seen: list[str] = []

    async def items(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        status, body, *headers = page(dict(request.query))
        if isinstance(body, dict) and isinstance(body.get("next_url"), str):
            body["next_url"] = body["next_url"].format(host=request.host)
        return web.json_response(body, status=status, headers=headers[0] if headers else None)

    app = web.Application()
    app.router.add_get("/items", items)
    async with serve(app) as url:
        yield f"{url}/items", seen


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (
            pages_from_zero,
            {"style": "page", "first_page": 0, "page_size_param": "per_page", "page_size": 200},
        ),
        (fixed_pages, {"style": "page", "page_size": 25, "total": "unknown"}),
        (capped_offsets, {"page_size": 100}),
        (
            json_server_017,
            {"offset_param": "_start", "total": "header:X-Total-Count", "page_size": 1000},
        ),
        (json_server_1, {"style": "page", "page_param": "_page", "total": "body:items"}),
        (datasette_like, {"style": "link", "next_url": "body:next_url", "limit_param": "_size"}),
    ],
    ids=[
        "pages from 0",
        "a fixed page size and a count of the page",
        "a 422 above 100",
        "json-server 0.17: a total only on pages",
        "json-server 1.0: pages shaped apart, other parameters filter",
        "datasette: unknown parameters refused",
    ],
)
async def test_init_finds_how_each_api_pages_and_the_harvest_is_exact(
    tmp_path: Path, page: Page, expected: dict[str, Any]
) -> None:
    async with api(page) as (url, seen):
        init = await run_init(url, tmp_path, env=environment())
        config = assert_written(init)
        assert len(seen) <= BUDGET
        pagination = {**DEFAULTS, **config.get("pagination", {})}
        assert {k: pagination[k] for k in expected} == expected, init.result.output
        from .test_init import harvest_with

        harvested = await harvest_with(init, "items")
    assert [json.loads(line) for line in harvested.splitlines()] == RECORDS
    text = init.config.read_text()
    assert "# incremental:" in text and "#   field: updated_at" in text  # suggested, commented
