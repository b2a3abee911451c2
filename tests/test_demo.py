"""The demo API through real HTTP on a loopback port: tokens, every pagination, every fault."""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import ANY
from urllib.parse import quote_plus, urljoin

import aiohttp
import orjson
import pytest

from harvester.demo import DemoServer, DemoSettings, expected_record, expected_records, run_demo
from harvester.demo.__main__ import main, parse_args, settings_from
from harvester.demo.keyset import encode_cursor
from harvester.demo.ratelimit import TokenBucket, retry_after_seconds

Json = Any


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    async with run_demo(DemoSettings(records=1_000)) as server:
        yield server


async def post_token(
    session: aiohttp.ClientSession, demo: DemoServer, **form: str
) -> tuple[int, Json, aiohttp.ClientResponse]:
    """POST the token endpoint; `auth` (if given) is the raw Authorization header."""
    headers = {"Authorization": form.pop("auth")} if "auth" in form else {}
    data = {"grant_type": "client_credentials", **form}
    async with session.post(f"{demo.url}/oauth2/token", data=data, headers=headers) as resp:
        return resp.status, await resp.json(), resp


def basic(client_id: str, secret: str) -> str:
    """HTTP Basic as RFC 6749 section 2.3.1 wants it: each part form-encoded first."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


async def token(session: aiohttp.ClientSession, demo: DemoServer) -> dict[str, str]:
    """Authorization headers with a fresh token."""
    status, body, _ = await post_token(session, demo, auth=basic("demo", "demo-secret"))
    assert status == 200
    return {"Authorization": f"Bearer {body['access_token']}"}


async def get(
    session: aiohttp.ClientSession, url: str, **headers: str
) -> tuple[int, bytes, aiohttp.ClientResponse]:
    async with session.get(url, headers=headers) as resp:
        return resp.status, await resp.read(), resp


async def get_json(
    session: aiohttp.ClientSession, url: str, auth: dict[str, str]
) -> tuple[int, Json, aiohttp.ClientResponse]:
    status, body, resp = await get(session, url, **auth)
    return status, orjson.loads(body), resp


def records(first: int, stop: int) -> list[dict[str, Any]]:
    return expected_records(stop)[first:]


def links(header: str) -> dict[str, str]:
    """rel -> URL, from an RFC 8288 Link header."""
    return {rel: url for url, rel in re.findall(r'<([^>]*)>\s*;\s*rel="([^"]*)"', header)}


# Tokens


async def test_basic_auth_decodes_form_encoded_id_and_secret(
    session: aiohttp.ClientSession,
) -> None:
    settings = DemoSettings(client_id="my app:1", client_secret="s3cr:t&+/")
    async with run_demo(settings) as demo:
        status, body, resp = await post_token(session, demo, auth=basic("my app:1", "s3cr:t&+/"))
        # Without the form-encoding '+' reads as a space: a client that skips it must fail.
        raw = base64.b64encode(b"my app:1:s3cr:t&+/").decode()
        wrong, _, _ = await post_token(session, demo, auth=f"Basic {raw}")
    assert status == 200 and wrong == 401
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["scope"] == "read" and len(body["access_token"]) >= 32
    assert resp.headers["Cache-Control"] == "no-store"
    assert (demo.stats.token_requests, demo.stats.tokens_issued) == (2, 1)


async def test_credentials_in_the_form_body(
    session: aiohttp.ClientSession, demo: DemoServer
) -> None:
    status, body, _ = await post_token(
        session, demo, client_id="demo", client_secret="demo-secret", scope="read"
    )
    assert status == 200 and body["scope"] == "read"
    status, _, _ = await get(
        session, f"{demo.url}/items", Authorization=f"Bearer {body['access_token']}"
    )
    assert status == 200


@pytest.mark.parametrize(
    "form",
    [
        {"auth": basic("demo", "wrong")},
        {"client_id": "demo", "client_secret": "wrong"},
        {"auth": basic("other", "demo-secret")},
        {"auth": "Basic !!not-base64!!"},
        {},
    ],
)
async def test_wrong_or_missing_credentials_are_invalid_client(
    session: aiohttp.ClientSession, demo: DemoServer, form: dict[str, str]
) -> None:
    status, body, resp = await post_token(session, demo, **form)
    assert status == 401 and body["error"] == "invalid_client" and body["error_description"]
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    assert demo.stats.tokens_issued == 0


@pytest.mark.parametrize("refusal", [400, 403])
async def test_a_scope_not_allowed_is_invalid_scope(
    session: aiohttp.ClientSession, demo: DemoServer, refusal: int
) -> None:
    demo.settings.scope_refusal_status = refusal
    status, body, _ = await post_token(
        session, demo, auth=basic("demo", "demo-secret"), scope="read admin"
    )
    assert (
        status == refusal
        and body["error"] == "invalid_scope"
        and "admin" in body["error_description"]
    )


async def test_another_grant_type_is_unsupported(
    session: aiohttp.ClientSession, demo: DemoServer
) -> None:
    status, body, _ = await post_token(
        session, demo, auth=basic("demo", "demo-secret"), grant_type="password"
    )
    assert status == 400 and body["error"] == "unsupported_grant_type"


@pytest.mark.parametrize(
    ("settings", "expires_in"),
    [
        (DemoSettings(token_lifetime=120), 120),
        (DemoSettings(token_lifetime=120, expires_in_as_string=True), "120"),
        (DemoSettings(omit_expires_in=True), None),
        (DemoSettings(token_lifetime=0.25), 0.25),  # not truncated to 0
    ],
)
async def test_expires_in_variants(
    session: aiohttp.ClientSession, settings: DemoSettings, expires_in: int | str | None
) -> None:
    async with run_demo(settings) as demo:
        _, body, _ = await post_token(session, demo, auth=basic("demo", "demo-secret"))
    assert body.get("expires_in") == expires_in


# Data endpoints: authorisation


async def test_a_missing_or_unknown_token_is_401(
    session: aiohttp.ClientSession, demo: DemoServer
) -> None:
    for headers in ({}, {"Authorization": "Bearer made-up"}, {"Authorization": "Basic eDp5"}):
        status, body, resp = await get(session, f"{demo.url}/items", **headers)
        assert status == 401 and orjson.loads(body)["error"] == "invalid_token"
        assert resp.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert demo.stats.faults["401"] == 3 and demo.stats.statuses[401] == 3


async def test_expired_tokens_are_401(session: aiohttp.ClientSession, demo: DemoServer) -> None:
    auth = await token(session, demo)
    assert (await get(session, f"{demo.url}/items", **auth))[0] == 200
    demo.expire_tokens()
    assert (await get(session, f"{demo.url}/range-items", **auth))[0] == 401
    assert (await get(session, f"{demo.url}/items", **await token(session, demo)))[0] == 200


async def test_a_token_past_its_lifetime_is_401(session: aiohttp.ClientSession) -> None:
    # A lifetime of 0 has passed the moment the token is issued: no sleeping needed.
    async with run_demo(DemoSettings(token_lifetime=0.0)) as demo:
        status, _, _ = await get(session, f"{demo.url}/items", **await token(session, demo))
    assert status == 401


async def test_revoke_tokens_after_n_data_requests(session: aiohttp.ClientSession) -> None:
    async with run_demo(DemoSettings(records=10, revoke_tokens_after=3)) as demo:
        auth = await token(session, demo)
        statuses = [(await get(session, f"{demo.url}/items", **auth))[0] for _ in range(4)]
    assert statuses == [200, 200, 401, 401]


# Offset pagination


async def test_offset_pages_hold_the_expected_records(
    session: aiohttp.ClientSession, demo: DemoServer
) -> None:
    auth = await token(session, demo)
    status, body, resp = await get(session, f"{demo.url}/items?offset=250&limit=50", **auth)
    page = orjson.loads(body)
    assert status == 200 and resp.headers["X-Total-Count"] == "1000"
    assert resp.content_type == "application/json"
    assert page == {"items": records(250, 300), "total": 1000, "offset": 250, "limit": 50}
    _, body, _ = await get(session, f"{demo.url}/items", **auth)
    assert orjson.loads(body)["items"] == records(0, 100)
    _, body, _ = await get(session, f"{demo.url}/items?offset=950&limit=100", **auth)
    assert orjson.loads(body)["items"] == records(950, 1000)
    _, body, _ = await get(session, f"{demo.url}/items?offset=5000", **auth)
    assert orjson.loads(body)["items"] == []


async def test_the_limit_is_capped_to_max_page_size(session: aiohttp.ClientSession) -> None:
    async with run_demo(DemoSettings(records=100, max_page_size=30)) as demo:
        auth = await token(session, demo)
        _, body, _ = await get(session, f"{demo.url}/items?offset=10&limit=100", **auth)
    page = orjson.loads(body)
    assert page["limit"] == 30 and page["items"] == records(10, 40)


@pytest.mark.parametrize("query", ["offset=-1", "limit=ten", "offset=1.5", "limit=%C2%B2"])
async def test_bad_offset_or_limit_is_400(
    session: aiohttp.ClientSession, demo: DemoServer, query: str
) -> None:
    status, body, _ = await get(session, f"{demo.url}/items?{query}", **await token(session, demo))
    assert status == 400 and orjson.loads(body)["error"] == "invalid_request"


# Range pagination


async def test_range_pages(session: aiohttp.ClientSession, demo: DemoServer) -> None:
    auth = await token(session, demo)
    url = f"{demo.url}/range-items"
    status, body, resp = await get(session, url, Range="items=100-199", **auth)
    assert status == 206 and orjson.loads(body) == records(100, 200)
    assert resp.headers["Content-Range"] == "items 100-199/1000"
    assert resp.headers["Accept-Ranges"] == "items"
    status, body, resp = await get(session, url, Range="items=950-1049", **auth)
    assert status == 206 and orjson.loads(body) == records(950, 1000)
    assert resp.headers["Content-Range"] == "items 950-999/1000"


async def test_a_range_is_capped_to_max_page_size(session: aiohttp.ClientSession) -> None:
    async with run_demo(DemoSettings(records=100, max_page_size=30)) as demo:
        auth = await token(session, demo)
        _, body, resp = await get(session, f"{demo.url}/range-items", Range="items=5-99", **auth)
    assert orjson.loads(body) == records(5, 35)
    assert resp.headers["Content-Range"] == "items 5-34/100"


@pytest.mark.parametrize("range_", ["items=1000-1099", "items=20-10", "bytes=0-9", "items=x"])
async def test_past_the_end_or_malformed_range_is_416(
    session: aiohttp.ClientSession, demo: DemoServer, range_: str
) -> None:
    auth = await token(session, demo)
    status, _, resp = await get(session, f"{demo.url}/range-items", Range=range_, **auth)
    assert status == 416 and resp.headers["Content-Range"] == "items */1000"


async def test_without_range_or_ignoring_it_everything_comes_back(
    session: aiohttp.ClientSession,
) -> None:
    async with run_demo(DemoSettings(records=300)) as demo:
        auth = await token(session, demo)
        status, body, resp = await get(session, f"{demo.url}/range-items", **auth)
        assert status == 200 and orjson.loads(body) == records(0, 300)
        assert "Content-Range" not in resp.headers
        demo.settings.ignore_range = True
        status, body, resp = await get(
            session, f"{demo.url}/range-items", Range="items=0-9", **auth
        )
    assert status == 200 and orjson.loads(body) == records(0, 300)
    assert "Content-Range" not in resp.headers


# Page numbers and streams


async def test_page_numbers(session: aiohttp.ClientSession, demo: DemoServer) -> None:
    auth = await token(session, demo)
    _, page, _ = await get_json(session, f"{demo.url}/pages", auth)
    assert page == {"results": records(0, 100), "count": 1000, "total_pages": 10, "page": 1}
    got = []
    for number in range(1, 5):
        _, page, _ = await get_json(session, f"{demo.url}/pages?page={number}&page_size=300", auth)
        assert (page["count"], page["total_pages"], page["page"]) == (1000, 4, number)
        got += page["results"]
    assert got == records(0, 1000)
    status, page, _ = await get_json(session, f"{demo.url}/pages?page=5&page_size=300", auth)
    assert status == 404 and page == {"detail": "Invalid page."}


async def test_page_numbers_cap_the_page_size_and_an_empty_dataset_has_page_1(
    session: aiohttp.ClientSession,
) -> None:
    async with run_demo(DemoSettings(records=100, max_page_size=30)) as demo:
        auth = await token(session, demo)
        _, page, _ = await get_json(session, f"{demo.url}/pages?page=4&page_size=100", auth)
        assert page == {"results": records(90, 100), "count": 100, "total_pages": 4, "page": 4}
        demo.settings.records = 0
        status, page, _ = await get_json(session, f"{demo.url}/pages", auth)
        assert status == 200
        assert page == {"results": [], "count": 0, "total_pages": 1, "page": 1}
        status, page, _ = await get_json(session, f"{demo.url}/pages?page=2", auth)
        assert status == 404 and page == {"detail": "Invalid page."}


async def test_a_stream_has_no_total_and_ends_with_an_empty_page(
    session: aiohttp.ClientSession, demo: DemoServer
) -> None:
    auth = await token(session, demo)
    got: list[Json] = []
    while True:
        url = f"{demo.url}/stream?offset={len(got)}&limit=300"
        status, page, resp = await get_json(session, url, auth)
        assert status == 200 and list(page) == ["items"]
        assert not [name for name in resp.headers if "total" in name.lower()]
        if not page["items"]:
            break
        got += page["items"]
    assert got == records(0, 1000) and demo.stats.endpoints["/stream"] == 5
    _, page, _ = await get_json(session, f"{demo.url}/stream?offset=5000", auth)
    assert page == {"items": []}


# Cursor pagination


async def walk_cursor(
    session: aiohttp.ClientSession, url: str, auth: dict[str, str], *, follow: str
) -> tuple[list[Json], int]:
    """Every record of a /cursor walk from `url`, and the pages it took.

    `follow`: the body's next_cursor, the X-Next-Cursor header, or `after` = the last id.
    """
    got: list[Json] = []
    query = ""
    for pages in range(1, 100):
        status, page, resp = await get_json(session, url + query, auth)
        assert status == 200 and resp.headers.get("X-Next-Cursor") == page["next_cursor"]
        got += page["data"]
        if page["next_cursor"] is None:
            return got, pages
        cursor = resp.headers["X-Next-Cursor"] if follow == "header" else page["next_cursor"]
        query = f"&after={got[-1]['id']}" if follow == "after" else f"&cursor={cursor}"
    raise AssertionError(f"the walk from {url} did not end")


@pytest.mark.parametrize("follow", ["body", "header", "after"])
@pytest.mark.parametrize(("limit", "pages"), [(300, 4), (250, 4), (1000, 1), (5000, 1)])
async def test_a_cursor_walks_the_whole_dataset(
    session: aiohttp.ClientSession, demo: DemoServer, follow: str, limit: int, pages: int
) -> None:
    url = f"{demo.url}/cursor?limit={limit}"
    got, taken = await walk_cursor(session, url, await token(session, demo), follow=follow)
    assert got == records(0, 1000) and taken == pages


@pytest.mark.parametrize(
    ("window", "first", "stop"),
    [
        ("since=2024-01-01T01:00:00Z&until=2024-01-01T02:00:00Z", 60, 120),
        ("since=2024-01-01T01:00:00%2B00:00&until=2024-01-01T02:00:00%2B00:00", 60, 120),
        ("since=2024-01-01T02:00:00%2B01:00&until=2024-01-01T01:59:30Z", 60, 120),
        ("since=2024-01-01T00:59:59.5Z", 60, 1000),
        ("until=2024-01-01T00:10:00Z", 0, 10),
        ("id_from=100&id_to=350", 100, 350),
        ("id_from=100&until=2024-01-01T03:00:00Z", 100, 180),
        ("id_from=900&id_to=5000&since=2023-12-31T00:00:00Z", 900, 1000),
        ("id_from=500&id_to=500", 500, 500),
        ("since=2024-01-02T00:00:00Z", 1000, 1000),
    ],
)
async def test_a_cursor_walks_a_window_exactly(
    session: aiohttp.ClientSession, demo: DemoServer, window: str, first: int, stop: int
) -> None:
    auth = await token(session, demo)
    url = f"{demo.url}/cursor?limit=25&{window}"
    for follow in ("body", "after"):
        got, pages = await walk_cursor(session, url, auth, follow=follow)
        assert got == records(first, stop) and pages == max(1, -(-(stop - first) // 25))


async def test_a_cursor_page_that_ends_the_window_has_no_next(
    session: aiohttp.ClientSession, demo: DemoServer
) -> None:
    auth = await token(session, demo)
    hour = "since=2024-01-01T01:00:00Z&until=2024-01-01T02:00:00Z"
    status, page, resp = await get_json(session, f"{demo.url}/cursor?limit=60&{hour}", auth)
    assert status == 200 and page == {"data": records(60, 120), "next_cursor": None}
    assert "X-Next-Cursor" not in resp.headers
    _, page, _ = await get_json(session, f"{demo.url}/cursor?after=100&{hour}", auth)
    assert page == {"data": records(101, 120), "next_cursor": None}
    _, page, _ = await get_json(session, f"{demo.url}/cursor?limit=5&after=5&{hour}", auth)
    assert page["data"] == records(60, 65) and page["next_cursor"] == encode_cursor(64)
    url = f"{demo.url}/cursor?cursor={encode_cursor(999)}"
    assert await get_json(session, url, auth) == (200, {"data": [], "next_cursor": None}, ANY)


# Link pagination


async def test_link_walks_by_the_body_next(
    session: aiohttp.ClientSession, demo: DemoServer
) -> None:
    auth = await token(session, demo)
    url: str | None = f"{demo.url}/link?limit=300"
    got: list[Json] = []
    previous: list[str | None] = []
    while url is not None:
        status, page, _ = await get_json(session, url, auth)
        assert status == 200 and page["count"] == 1000
        got += page["results"]
        previous.append(page["previous"])
        url = page["next"]
        assert url is None or url.startswith(f"{demo.url}/link?offset=")
    assert got == records(0, 1000)
    assert previous == [
        None,
        f"{demo.url}/link?offset=0&limit=300",
        f"{demo.url}/link?offset=300&limit=300",
        f"{demo.url}/link?offset=600&limit=300",
    ]


@pytest.mark.parametrize(
    ("query", "first", "stop"),
    [("limit=300", 0, 1000), ("limit=60&id_from=100&id_to=250", 100, 250), ("id_to=0", 0, 0)],
)
async def test_link_walks_by_the_link_header(
    session: aiohttp.ClientSession, demo: DemoServer, query: str, first: int, stop: int
) -> None:
    auth = await token(session, demo)
    filters = query.partition("&")[2]
    url: str | None = f"{demo.url}/link?{query}"
    got: list[Json] = []
    while url is not None:
        status, page, resp = await get_json(session, url, auth)
        assert status == 200 and page["count"] == stop - first
        got += page["results"]
        rels = links(resp.headers["Link"])
        assert rels["first"].startswith("/link?offset=0&limit=") and rels["first"].endswith(filters)
        assert rels.get("next") == (page["next"] and page["next"].removeprefix(demo.url))
        assert "next" not in rels or rels["next"].endswith(filters)
        url = urljoin(url, rels["next"]) if "next" in rels else None
    assert got == records(first, stop)


async def test_link_urls_use_the_host_the_request_came_to(
    session: aiohttp.ClientSession, demo: DemoServer
) -> None:
    auth = {**await token(session, demo), "Host": "api.example.test:8443"}
    _, page, _ = await get_json(session, f"{demo.url}/link?offset=100&id_from=7", auth)
    assert page["next"] == "http://api.example.test:8443/link?offset=200&limit=100&id_from=7"
    assert page["previous"] == "http://api.example.test:8443/link?offset=0&limit=100&id_from=7"
    assert page["results"] == records(107, 207)


# Traps for clients' protections


async def test_loop_cursor_at_points_back_at_the_previous_page(
    session: aiohttp.ClientSession,
) -> None:
    async with run_demo(DemoSettings(records=1000, loop_cursor_at=300)) as demo:
        auth = await token(session, demo)
        firsts, query = [], ""
        for _ in range(7):
            _, page, resp = await get_json(session, f"{demo.url}/cursor?limit=100{query}", auth)
            assert resp.headers["X-Next-Cursor"] == page["next_cursor"]
            firsts.append(page["data"][0]["id"])
            query = f"&cursor={page['next_cursor']}"
        assert firsts == [0, 100, 200, 300, 200, 300, 200]
        # A client that derives the cursor from the last record is not fooled.
        _, page, _ = await get_json(session, f"{demo.url}/cursor?after=399", auth)
        assert page["data"] == records(400, 500)
        _, page, resp = await get_json(session, f"{demo.url}/link?offset=300", auth)
        assert page["results"] == records(300, 400)
        assert page["next"] == f"{demo.url}/link?offset=200&limit=100"
        assert links(resp.headers["Link"])["next"] == "/link?offset=200&limit=100"
        _, page, _ = await get_json(session, f"{demo.url}/link?offset=200", auth)
        assert page["next"] == f"{demo.url}/link?offset=300&limit=100"
        demo.settings.loop_cursor_at = 0
        _, page, _ = await get_json(session, f"{demo.url}/cursor?limit=10", auth)
        url = f"{demo.url}/cursor?limit=10&cursor={page['next_cursor']}"
        assert (await get_json(session, url, auth))[1] == page
        _, page, _ = await get_json(session, f"{demo.url}/link", auth)
        assert page["next"] == f"{demo.url}/link?offset=0&limit=100"


async def test_cross_host_next_points_link_next_elsewhere(session: aiohttp.ClientSession) -> None:
    async with run_demo(DemoSettings(records=1000, cross_host_next="http://127.0.0.2:9/")) as demo:
        auth = await token(session, demo)
        _, page, resp = await get_json(session, f"{demo.url}/link?offset=100&id_to=900", auth)
    assert page["next"] == "http://127.0.0.2:9/link?offset=200&limit=100&id_to=900"
    assert page["previous"] == f"{demo.url}/link?offset=0&limit=100&id_to=900"
    rels = links(resp.headers["Link"])
    assert rels == {
        "next": page["next"],
        "prev": "/link?offset=0&limit=100&id_to=900",
        "first": "/link?offset=0&limit=100&id_to=900",
    }


async def test_bad_input_traps_replace_one_items_page_each(
    session: aiohttp.ClientSession,
) -> None:
    settings = DemoSettings(records=1000, garbage_at=100, html_at=200, repeat_page_at=300)
    async with run_demo(settings) as demo:
        auth = await token(session, demo)
        status, body, resp = await get(session, f"{demo.url}/items?offset=100", **auth)
        assert (status, resp.content_type) == (200, "text/plain")
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(body)
        status, body, resp = await get(session, f"{demo.url}/items?offset=200", **auth)
        assert (status, resp.content_type) == (200, "text/html")
        assert body.startswith(b"<!DOCTYPE html>")
        _, page, _ = await get_json(session, f"{demo.url}/items?offset=300&limit=100", auth)
        assert page["items"] == records(200, 300)
        _, page, _ = await get_json(session, f"{demo.url}/items?offset=400&limit=100", auth)
        assert page["items"] == records(400, 500)


async def test_grow_changes_the_items_total_from_a_data_request_on(
    session: aiohttp.ClientSession,
) -> None:
    async with run_demo(DemoSettings(records=100, grow_at=3, grow_by=20)) as demo:
        auth = await token(session, demo)
        url = f"{demo.url}/items?offset=90&limit=100"
        pages = [(await get_json(session, url, auth))[1] for _ in range(3)]
        demo.settings.grow_by = -150
        shrunk = (await get_json(session, url, auth))[1]
    assert [page["total"] for page in pages] == [100, 100, 120]
    assert pages[2]["items"] == records(90, 120)
    assert (shrunk["total"], shrunk["items"]) == (0, [])


# The newer endpoints: the same gate, strict parameters


@pytest.mark.parametrize("path", ["/pages", "/stream", "/cursor", "/link"])
async def test_the_newer_endpoints_pass_the_same_gate(
    session: aiohttp.ClientSession, path: str
) -> None:
    async with run_demo(DemoSettings(records=50, revoke_tokens_after=10, retry_after=0)) as demo:
        url = f"{demo.url}{path}?limit=10&page_size=10"
        s = demo.settings
        assert (await get(session, url))[0] == 401
        auth = await token(session, demo)
        status, whole, _ = await get(session, url, **auth)
        assert status == 200 and orjson.loads(whole)
        s.truncate_rate = 1.0
        assert (await get(session, url, **auth))[:2] == (200, whole[: len(whole) // 2])
        s.truncate_rate, s.fault_rate = 0.0, 1.0
        assert (await get(session, url, **auth))[0] in (500, 502, 503)
        s.fault_rate, s.throttle_rate = 0.0, 1.0
        assert (await get(session, url, **auth))[0] == 429
        s.throttle_rate, s.drop_rate = 0.0, 1.0
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await get(session, url, **auth)  # dropped twice: aiohttp retries once
        s.drop_rate, s.rate_limit = 0.0, 1.0
        assert (await get(session, url, **auth))[:2] == (200, whole)
        assert (await get(session, url, **auth))[0] == 429
        s.rate_limit = None
        assert (await get(session, url, **auth))[0] == 401  # data request 10 revokes
    assert demo.stats.data_requests == demo.stats.endpoints[path] == 10
    faults = {kind: demo.stats.faults[kind] for kind in ("401", "truncate", "5xx", "429", "drop")}
    assert faults == {"401": 2, "truncate": 1, "5xx": 1, "429": 2, "drop": 2}


@pytest.mark.parametrize(
    "query",
    [
        "/pages?page=0",
        "/pages?page=two",
        "/pages?page_size=0",
        "/stream?limit=0",
        "/stream?offset=-1",
        "/cursor?limit=0",
        "/cursor?cursor=",
        "/cursor?cursor=%21%21%21",
        "/cursor?cursor=MTA",  # base64 of "10": a raw id is not a cursor
        "/cursor?cursor=aWQ6OQ%3D%3D",  # a real cursor, padded: not as issued
        "/cursor?cursor=aWQ6OQ&after=9",
        "/cursor?after=-1",
        "/cursor?id_from=x",
        "/cursor?id_from=5&id_to=4",
        "/cursor?since=yesterday",
        "/cursor?since=2024-01-01T00:00:00",
        "/cursor?since=2024-01-01T00:00:00+00:00",  # the '+' unencoded: a space
        "/cursor?since=2024-01-01T02:00:00Z&until=2024-01-01T01:00:00Z",
        "/link?limit=0",
        "/link?offset=x",
        "/link?id_to=1.5",
    ],
)
async def test_bad_parameters_of_the_newer_endpoints_are_400(
    session: aiohttp.ClientSession, demo: DemoServer, query: str
) -> None:
    status, body, _ = await get_json(session, f"{demo.url}{query}", await token(session, demo))
    assert status == 400 and body["error"] == "invalid_request"
    named = re.split(r"[?=]", query)[1]
    assert named in body["error_description"]


# Rate limit and faults


async def test_beyond_the_rate_limit_is_429_with_retry_after(
    session: aiohttp.ClientSession,
) -> None:
    async with run_demo(DemoSettings(records=10, rate_limit=2.0)) as demo:
        auth = await token(session, demo)
        answers = [await get(session, f"{demo.url}/items", **auth) for _ in range(5)]
        demo.settings.retry_after = 0
        _, _, told = await get(session, f"{demo.url}/items", **auth)
    refused = [resp for status, _, resp in answers if status == 429]
    assert [status for status, _, _ in answers[:2]] == [200, 200] and refused
    assert {resp.headers["Retry-After"] for resp in refused} == {"1"}
    assert told.status == 429 and told.headers["Retry-After"] == "0"
    assert demo.stats.faults["429"] == demo.stats.statuses[429] == len(refused) + 1


async def test_fault_rate_one_gives_5xx(session: aiohttp.ClientSession, demo: DemoServer) -> None:
    auth = await token(session, demo)
    demo.settings.fault_rate = 1.0
    answers = [await get(session, f"{demo.url}/items", **auth) for _ in range(6)]
    assert all(status in (500, 502, 503) for status, _, _ in answers)
    assert all(orjson.loads(body)["error"] == "server_error" for _, body, _ in answers)
    assert demo.stats.faults["5xx"] == 6
    demo.settings.fault_rate = 0.0
    assert (await get(session, f"{demo.url}/items", **auth))[0] == 200


async def test_drop_rate_one_closes_the_connection(
    session: aiohttp.ClientSession, demo: DemoServer
) -> None:
    auth = await token(session, demo)
    demo.settings.drop_rate = 1.0
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await get(session, f"{demo.url}/range-items", **auth)
    # aiohttp itself retries an idempotent request once after a disconnect, so two were dropped.
    assert demo.stats.faults["drop"] == demo.stats.data_requests == 2
    assert demo.stats.statuses == {}


async def test_aiohttp_hides_a_single_drop_of_a_get(session: aiohttp.ClientSession) -> None:
    # Seed 1 draws 0.13 then 0.85: the first request is dropped, aiohttp's retry is not.
    async with run_demo(DemoSettings(records=10, drop_rate=0.5, seed=1)) as demo:
        status, _, _ = await get(session, f"{demo.url}/items", **await token(session, demo))
    assert status == 200 and demo.stats.faults["drop"] == 1 and demo.stats.data_requests == 2


async def test_truncate_rate_one_gives_200_with_broken_json(
    session: aiohttp.ClientSession, demo: DemoServer
) -> None:
    auth = await token(session, demo)
    demo.settings.truncate_rate = 1.0
    status, body, resp = await get(session, f"{demo.url}/items?limit=10", **auth)
    assert status == 200 and int(resp.headers["Content-Length"]) == len(body)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    whole = orjson.dumps({"items": records(0, 10), "total": 1000, "offset": 0, "limit": 10})
    assert body == whole[: len(whole) // 2]
    assert demo.stats.faults["truncate"] == 1 and demo.stats.statuses[200] == 1


async def test_throttle_rate_one_gives_429(session: aiohttp.ClientSession) -> None:
    async with run_demo(DemoSettings(records=10, throttle_rate=1.0, retry_after=0)) as demo:
        status, _, resp = await get(session, f"{demo.url}/items", **await token(session, demo))
    assert status == 429 and resp.headers["Retry-After"] == "0"


async def test_slow_rate_one_answers_after_slow_seconds(session: aiohttp.ClientSession) -> None:
    settings = DemoSettings(records=10, slow_rate=1.0, slow_seconds=0.2)
    async with run_demo(settings) as demo:
        auth = await token(session, demo)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await get(session, f"{demo.url}/items", **auth)
        status, body, _ = await get(session, f"{demo.url}/items", **auth)
    assert status == 200 and orjson.loads(body)["items"] == records(0, 10)
    assert demo.stats.faults["slow"] == demo.stats.data_requests == 2


async def test_a_slow_answer_does_not_hold_up_the_shutdown(session: aiohttp.ClientSession) -> None:
    settings = DemoSettings(records=10, slow_rate=1.0, slow_seconds=3600)
    # Without the slow answer cut short, the server would stop only after its 5 s shutdown_timeout.
    async with asyncio.timeout(3):
        async with run_demo(settings) as demo:
            auth = await token(session, demo)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await get(session, f"{demo.url}/items", **auth)
    assert demo.stats.faults["slow"] == 1 and demo.stats.statuses[200] == 1


async def test_cut_rate_one_hangs_up_halfway_through_the_body(
    session: aiohttp.ClientSession,
) -> None:
    settings = DemoSettings(records=100, cut_rate=1.0, rate_limit=100, rate_limit_headers="x")
    async with run_demo(settings) as demo:
        auth = await token(session, demo)
        async with session.get(f"{demo.url}/items", headers=auth) as resp:
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
    whole = orjson.dumps({"items": records(0, 100), "total": 100, "offset": 0, "limit": 100})
    assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(whole)
    assert resp.headers["X-RateLimit-Limit"] == "100"
    assert demo.stats.faults["cut"] == demo.stats.statuses[200] == 1


async def test_a_429_storm_refuses_every_data_request_for_storm_seconds(
    session: aiohttp.ClientSession,
) -> None:
    now = [1000.0]
    settings = DemoSettings(records=10, storm_at=2, storm_seconds=1.5)
    async with run_demo(settings, clock=lambda: now[0]) as demo:
        auth = await token(session, demo)
        before = (await get(session, f"{demo.url}/items", **auth))[0]
        storm = [(await get(session, f"{demo.url}/items", **auth))[2] for _ in range(2)]
        now[0] += 1.0
        demo.settings.retry_after = 0.05
        late = (await get(session, f"{demo.url}/items", **auth))[2]
        now[0] += 0.5
        after = (await get(session, f"{demo.url}/items", **auth))[0]
    assert before == after == 200
    assert [resp.status for resp in storm] == [429, 429] and late.status == 429
    # Retry-After: the whole seconds the storm has left, unless retry_after says otherwise.
    assert [resp.headers["Retry-After"] for resp in storm] == ["2", "2"]
    assert late.headers["Retry-After"] == "0.05"
    assert demo.stats.faults["429_storm"] == demo.stats.statuses[429] == 3


# Stats, health, the process


async def test_stats_and_health(session: aiohttp.ClientSession, demo: DemoServer) -> None:
    await get(session, f"{demo.url}/items", **await token(session, demo))
    await get(session, f"{demo.url}/items")
    assert (await get(session, f"{demo.url}/health"))[1] == b"ok"
    _, body, _ = await get(session, f"{demo.url}/_stats")
    stats = orjson.loads(body)
    assert stats["data_requests"] == 2 and stats["statuses"] == {"200": 1, "401": 1}
    assert stats["faults"]["401"] == 1 and stats["faults"]["drop"] == 0
    assert demo.stats.as_dict()["statuses"] == {200: 1, 401: 1}
    assert stats["endpoints"] == {"/items": 2}


def test_the_cli_sets_the_protection_switches(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--loop-cursor-at", "300", "--cross-host-next", "http://127.0.0.2:9"]
    settings = settings_from(parse_args(args))
    assert settings.loop_cursor_at == 300 and settings.cross_host_next == "http://127.0.0.2:9"
    default = settings_from(parse_args([]))
    assert default.loop_cursor_at is None and default.cross_host_next is None
    assert main(["--cross-host-next", "127.0.0.2:9"]) == 2
    assert "cross_host_next" in capsys.readouterr().err


def test_the_cli_sets_the_fault_suite_switches() -> None:
    args = ["--slow-rate", "0.1", "--slow-seconds", "2", "--cut-rate", "0.05"]
    settings = settings_from(parse_args([*args, "--storm-at", "40", "--storm-seconds", "3"]))
    assert (settings.slow_rate, settings.slow_seconds, settings.cut_rate) == (0.1, 2.0, 0.05)
    assert (settings.storm_at, settings.storm_seconds) == (40, 3.0)
    assert settings_from(parse_args([])).storm_at is None
    assert main(["--slow-rate", "0.6", "--cut-rate", "0.6"]) == 2


def test_the_module_runs_as_a_process_and_stops_cleanly() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "harvester.demo", "--port", "0", "--quiet", "--records", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("demo API listening on http://127.0.0.1:")
        url = line.removeprefix("demo API listening on ").strip()
        with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
            assert resp.read() == b"ok"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0 and stderr == ""


# The pieces


def test_records_are_deterministic() -> None:
    assert expected_record(61) == {
        "id": 61,
        "name": "item-0000061",
        "value": (61 * 7919) % 10007,
        "created_at": "2024-01-01T01:01:00Z",
        "tags": ["beta", "gamma"],
    }
    assert expected_records(3) == [expected_record(0), expected_record(1), expected_record(2)]


def test_the_token_bucket_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(2.0, clock=lambda: now[0])
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.5]
    now[0] = 0.5
    assert bucket.acquire() == 0.0 and bucket.acquire() == 0.5
    assert retry_after_seconds(0.5) == 1 and retry_after_seconds(2.1) == 3


@pytest.mark.parametrize(
    "changes",
    [
        {"fault_rate": 1.5},
        {"fault_rate": 0.6, "drop_rate": 0.6},
        {"max_page_size": 0},
        {"rate_limit": 0},
        {"slow_rate": -0.1},
        {"cut_rate": 0.5, "throttle_rate": 0.6},
        {"slow_seconds": -1},
        {"storm_at": 0},
        {"storm_seconds": -1},
        {"loop_cursor_at": -1},
        {"cross_host_next": "127.0.0.2:8765"},
        {"cross_host_next": "ftp://127.0.0.2"},
        {"cross_host_next": "http://127.0.0.2:8765/?x=1"},
        {"garbage_at": -1},
        {"repeat_page_at": 0},
        {"grow_at": 0},
        {"scope_refusal_status": 401},
    ],
)
def test_settings_out_of_range_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        DemoSettings(**changes)
