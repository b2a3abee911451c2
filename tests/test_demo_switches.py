"""The demo API's switches for real servers' ways (harvester.demo.quirks), through HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urljoin

import aiohttp
import orjson
import pytest

from harvester.demo import DemoServer, DemoSettings, run_demo
from harvester.demo.__main__ import parse_args, settings_from
from harvester.demo.settings import Carrier

from .test_demo import get, get_json, links, records, token

Json = Any


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


# inclusive_filters


async def walk_cursor(
    session: aiohttp.ClientSession, url: str, auth: dict[str, str]
) -> list[tuple[list[Json], str | None]]:
    """Each page of a /cursor walk from `url` by next_cursor: its records and its next cursor."""
    pages: list[tuple[list[Json], str | None]] = []
    query = ""
    while len(pages) < 100:
        status, page, resp = await get_json(session, url + query, auth)
        assert status == 200 and resp.headers.get("X-Next-Cursor") == page["next_cursor"]
        pages.append((page["data"], page["next_cursor"]))
        if page["next_cursor"] is None:
            return pages
        query = f"&cursor={page['next_cursor']}"
    raise AssertionError(f"the walk from {url} did not end")


async def walk_link(
    session: aiohttp.ClientSession, url: str, auth: dict[str, str], *, by_header: bool
) -> list[tuple[list[Json], str | None]]:
    """Each page of a /link walk from `url`: its records and its next URL (body or header)."""
    pages: list[tuple[list[Json], str | None]] = []
    origin = url.split("/link")[0]
    next_url: str | None = url
    while next_url is not None and len(pages) < 100:
        status, page, resp = await get_json(session, next_url, auth)
        assert status == 200
        rels = links(resp.headers["Link"])
        assert rels.get("next") == (page["next"] and page["next"].removeprefix(origin))
        followed = urljoin(next_url, rels["next"]) if by_header and "next" in rels else None
        next_url = followed if by_header else page["next"]
        pages.append((page["results"], next_url))
    assert next_url is None, f"the walk from {url} did not end"
    return pages


def flat(pages: list[tuple[list[Json], str | None]]) -> list[Json]:
    return [record for records_, _ in pages for record in records_]


async def test_inclusive_filters_take_both_ends_and_refuse_the_half_open_names(
    session: aiohttp.ClientSession,
) -> None:
    async with run_demo(DemoSettings(records=1000, inclusive_filters=True)) as demo:
        auth = await token(session, demo)
        window = "id_gte=100&id_lte=349"
        pages = await walk_cursor(session, f"{demo.url}/cursor?limit=100&{window}", auth)
        assert flat(pages) == records(100, 350) and len(pages) == 3
        for by_header in (False, True):
            url = f"{demo.url}/link?limit=100&{window}"
            pages = await walk_link(session, url, auth, by_header=by_header)
            assert flat(pages) == records(100, 350)
            assert all(window in next_url for _, next_url in pages[:-1] if next_url)
        # id_gte = id_lte + 1 is an empty window sent inclusively; lower than that is refused.
        _, page, _ = await get_json(session, f"{demo.url}/cursor?id_gte=5&id_lte=4", auth)
        assert page == {"data": [], "next_cursor": None}
        _, page, _ = await get_json(session, f"{demo.url}/link?id_gte=999&id_lte=5000", auth)
        assert page["results"] == records(999, 1000) and page["count"] == 1
        for query in ("/cursor?id_gte=6&id_lte=4", "/cursor?id_from=0", "/link?id_to=10"):
            status, body, _ = await get_json(session, f"{demo.url}{query}", auth)
            named = query.split("?")[1].split("=")[0]
            assert status == 400 and body["error"] == "invalid_request"
            assert named in body["error_description"]
        # Switched off, the inclusive names are unknown parameters: ignored, as most servers do.
        demo.settings.inclusive_filters = False
        _, page, _ = await get_json(session, f"{demo.url}/link?id_gte=100&id_lte=199", auth)
        assert page["count"] == 1000


# json_meta_header


async def test_json_meta_header_carries_the_only_total(session: aiohttp.ClientSession) -> None:
    async with run_demo(DemoSettings(records=1000, json_meta_header=True)) as demo:
        auth = await token(session, demo)
        status, body, resp = await get(session, f"{demo.url}/items?offset=250&limit=50", **auth)
        assert status == 200 and "X-Total-Count" not in resp.headers
        assert orjson.loads(body) == {"items": records(250, 300), "offset": 250, "limit": 50}
        meta = orjson.loads(resp.headers["X-Pagination"])
        assert meta == {"total": 1000, "total_pages": 20, "page": 6, "page_size": 50}
        status, body, resp = await get(session, f"{demo.url}/pages?page=3&page_size=300", **auth)
        assert status == 200 and orjson.loads(body) == {"results": records(600, 900), "page": 3}
        meta = orjson.loads(resp.headers["X-Pagination"])
        assert meta == {"total": 1000, "total_pages": 4, "page": 3, "page_size": 300}
        # The header follows a total that changes, as the body's total does.
        demo.settings.grow_at, demo.settings.grow_by = 1, 10
        _, _, resp = await get(session, f"{demo.url}/items?limit=100", **auth)
        assert orjson.loads(resp.headers["X-Pagination"])["total"] == 1010


# range_echo, range_empty_past_end, range_no_total


async def range_get(
    session: aiohttp.ClientSession, demo: DemoServer, auth: dict[str, str], range_: str
) -> tuple[int, Json, str]:
    status, body, resp = await get(session, f"{demo.url}/range-items", Range=range_, **auth)
    return status, orjson.loads(body), resp.headers["Content-Range"]


async def test_range_switches(session: aiohttp.ClientSession) -> None:
    async with run_demo(DemoSettings(records=1000, range_echo=True)) as demo:
        auth = await token(session, demo)
        s = demo.settings
        status, body, told = await range_get(session, demo, auth, "items=950-1049")
        assert (status, body, told) == (206, records(950, 1000), "items 950-1049/1000")
        assert await range_get(session, demo, auth, "items=100-199") == (
            206,
            records(100, 200),
            "items 100-199/1000",
        )
        assert (await range_get(session, demo, auth, "items=1000-1099"))[::2] == (
            416,
            "items */1000",
        )
        s.range_echo, s.range_empty_past_end = False, True
        assert await range_get(session, demo, auth, "items=1000-1099") == (206, [], "items */1000")
        assert (await range_get(session, demo, auth, "items=20-10"))[0] == 416
        s.range_no_total = True
        assert await range_get(session, demo, auth, "items=1000-") == (206, [], "items */*")
        status, body, told = await range_get(session, demo, auth, "items=900-1099")
        assert (status, body, told) == (206, records(900, 1000), "items 900-999/*")
        s.range_empty_past_end = False
        assert (await range_get(session, demo, auth, "items=5000-5099"))[::2] == (416, "items */*")


# empty_pages_every


async def test_empty_pages_carry_the_cursor_on(session: aiohttp.ClientSession) -> None:
    async with run_demo(DemoSettings(records=1000, empty_pages_every=3)) as demo:
        auth = await token(session, demo)
        pages = await walk_cursor(session, f"{demo.url}/cursor?limit=100", auth)
        assert flat(pages) == records(0, 1000)
        # Pages 3, 6, 9 and 12 of 14 are empty; every cursor is new and the last page has data.
        assert [n for n, (data, _) in enumerate(pages, 1) if not data] == [3, 6, 9, 12]
        cursors = [cursor for _, cursor in pages]
        assert len(set(cursors)) == len(cursors) == 14 and cursors[-1] is None
        window = "id_from=150&id_to=777"
        pages = await walk_cursor(session, f"{demo.url}/cursor?limit=50&{window}", auth)
        assert flat(pages) == records(150, 777)
        assert [n for n, (data, _) in enumerate(pages, 1) if not data] == [3, 6, 9, 12, 15, 18]
        # A seek client (after=<last id>) finds no cursor grid: it is never given an empty page.
        _, page, _ = await get_json(session, f"{demo.url}/cursor?limit=100&after=149", auth)
        assert page["data"] == records(150, 250)


@pytest.mark.parametrize("by_header", [False, True])
async def test_empty_pages_carry_the_link_on(
    session: aiohttp.ClientSession, by_header: bool
) -> None:
    async with run_demo(DemoSettings(records=1000, empty_pages_every=2)) as demo:
        auth = await token(session, demo)
        url = f"{demo.url}/link?limit=300&id_from=100"
        pages = await walk_link(session, url, auth, by_header=by_header)
        assert flat(pages) == records(100, 1000)
        assert [len(data) for data, _ in pages] == [300, 0, 300, 0, 300]
        assert len({next_url for _, next_url in pages}) == 5
        status, body, _ = await get_json(session, f"{url}&offset=300&past_empty=0", auth)
        assert status == 400 and "past_empty" in body["error_description"]


# repeat_last_past_end


async def test_repeat_last_past_end(session: aiohttp.ClientSession) -> None:
    async with run_demo(DemoSettings(records=1000, repeat_last_past_end=True)) as demo:
        auth = await token(session, demo)
        _, last, _ = await get_json(session, f"{demo.url}/pages?page=4&page_size=300", auth)
        for page in (5, 99):
            url = f"{demo.url}/pages?page={page}&page_size=300"
            assert (await get_json(session, url, auth))[:2] == (200, last)
        assert last["results"] == records(900, 1000) and last["page"] == 4
        for offset in (1000, 5000):
            _, page, _ = await get_json(
                session, f"{demo.url}/stream?offset={offset}&limit=300", auth
            )
            assert page == {"items": records(900, 1000)}
        # A full last page comes again too: only its repetition tells the end.
        demo.settings.records = 900
        _, page, _ = await get_json(session, f"{demo.url}/stream?offset=900&limit=300", auth)
        assert page == {"items": records(600, 900)}
        demo.settings.records = 0
        status, page, _ = await get_json(session, f"{demo.url}/pages?page=2", auth)
        assert status == 200 and page["results"] == [] and page["page"] == 1
        _, page, _ = await get_json(session, f"{demo.url}/stream?offset=10", auth)
        assert page == {"items": []}


# short_page_at


async def test_short_page_at_drops_half_a_page_and_keeps_the_totals(
    session: aiohttp.ClientSession,
) -> None:
    async with run_demo(DemoSettings(records=1000, short_page_at=200)) as demo:
        auth = await token(session, demo)
        _, page, _ = await get_json(session, f"{demo.url}/items?offset=200&limit=100", auth)
        assert page == {"items": records(200, 250), "total": 1000, "offset": 200, "limit": 100}
        _, page, _ = await get_json(session, f"{demo.url}/stream?offset=200&limit=100", auth)
        assert page == {"items": records(200, 250)}
        _, page, _ = await get_json(session, f"{demo.url}/pages?page=3&page_size=100", auth)
        assert (page["results"], page["count"], page["total_pages"]) == (
            records(200, 250),
            1000,
            10,
        )
        # Only the page starting there: its neighbours and other page grids are whole.
        _, page, _ = await get_json(session, f"{demo.url}/items?offset=100&limit=100", auth)
        assert page["items"] == records(100, 200)
        _, page, _ = await get_json(session, f"{demo.url}/items?offset=150&limit=100", auth)
        assert page["items"] == records(150, 250)
        # Half of what was asked, after the server's own cap; a page already shorter keeps it.
        demo.settings.max_page_size = 30
        _, page, _ = await get_json(session, f"{demo.url}/stream?offset=200&limit=100", auth)
        assert page == {"items": records(200, 215)}
        demo.settings.short_page_at = 990
        _, page, _ = await get_json(session, f"{demo.url}/items?offset=990&limit=30", auth)
        assert page["items"] == records(990, 1000)
        # Never empty: an empty page would say "the end" to an open-ended client.
        _, page, _ = await get_json(session, f"{demo.url}/stream?offset=990&limit=1", auth)
        assert page == {"items": records(990, 991)}


# The page-size cap on an open-ended endpoint


async def test_a_stream_caps_its_page_size(session: aiohttp.ClientSession) -> None:
    async with run_demo(DemoSettings(records=100, max_page_size=30)) as demo:
        auth = await token(session, demo)
        _, page, _ = await get_json(session, f"{demo.url}/stream?offset=10&limit=100", auth)
    assert page == {"items": records(10, 40)}


# Settings and the command line


def test_the_cli_sets_the_server_way_switches() -> None:
    flags = ["--inclusive-filters", "--json-meta-header", "--range-echo", "--range-no-total"]
    flags += ["--range-empty-past-end", "--repeat-last-past-end"]
    settings = settings_from(
        parse_args([*flags, "--empty-pages-every", "4", "--short-page-at", "7"])
    )
    assert settings.inclusive_filters and settings.json_meta_header and settings.range_echo
    assert settings.range_no_total and settings.range_empty_past_end
    assert settings.repeat_last_past_end
    assert (settings.empty_pages_every, settings.short_page_at) == (4, 7)
    default = settings_from(parse_args([]))
    assert not (default.inclusive_filters or default.json_meta_header or default.range_echo)
    assert not (default.range_no_total or default.range_empty_past_end)
    assert not default.repeat_last_past_end
    assert (default.empty_pages_every, default.short_page_at) == (None, None)


@pytest.mark.parametrize("changes", [{"empty_pages_every": 1}, {"short_page_at": -1}])
def test_switches_out_of_range_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        DemoSettings(**changes)


# totals_in, next_cursor_in, next_link_in: each family's carrier on its own


@pytest.mark.parametrize("totals_in", ["both", "body", "header"])
async def test_totals_in_puts_the_total_in_the_body_the_header_or_both(
    session: aiohttp.ClientSession, totals_in: Carrier
) -> None:
    async with run_demo(DemoSettings(records=1000, totals_in=totals_in)) as demo:
        auth = await token(session, demo)
        status, body, resp = await get(session, f"{demo.url}/items?offset=950&limit=100", **auth)
    page = orjson.loads(body)
    assert status == 200 and page["items"] == records(950, 1000)
    assert (page.get("total"), resp.headers.get("X-Total-Count")) == {
        "both": (1000, "1000"),
        "body": (1000, None),
        "header": (None, "1000"),
    }[totals_in]
    assert set(page) == {"items", "offset", "limit"} | (
        {"total"} if totals_in != "header" else set()
    )


Step = Callable[[str, Json, aiohttp.ClientResponse], tuple[list[Json], str | None]]


async def walk_by(
    session: aiohttp.ClientSession, url: str, auth: dict[str, str], step: Step
) -> tuple[list[Json], int]:
    """Every record of a walk from `url`, and its page count; `step` reads each answer's
    records and the URL of the next page (None: the end)."""
    walked: list[Json] = []
    next_url: str | None = url
    pages = 0
    while next_url is not None and pages < 100:
        status, page, resp = await get_json(session, next_url, auth)
        assert status == 200
        records_, next_url = step(next_url, page, resp)
        walked += records_
        pages += 1
    return walked, pages


@pytest.mark.parametrize("next_cursor_in", ["body", "header"])
async def test_next_cursor_in_one_place_walks_the_whole_dataset(
    session: aiohttp.ClientSession, next_cursor_in: Carrier
) -> None:
    def step(url: str, page: Json, resp: aiohttp.ClientResponse) -> tuple[list[Json], str | None]:
        if next_cursor_in == "body":
            assert "X-Next-Cursor" not in resp.headers
            cursor = page["next_cursor"]
        else:
            assert set(page) == {"data"}
            cursor = resp.headers.get("X-Next-Cursor")
        return page["data"], None if cursor is None else f"{first}&cursor={cursor}"

    async with run_demo(DemoSettings(records=1000, next_cursor_in=next_cursor_in)) as demo:
        first = f"{demo.url}/cursor?limit=300"
        walked = await walk_by(session, first, await token(session, demo), step)
    assert walked == (records(0, 1000), 4)


@pytest.mark.parametrize("next_link_in", ["body", "header"])
async def test_next_link_in_one_place_walks_the_whole_dataset(
    session: aiohttp.ClientSession, next_link_in: Carrier
) -> None:
    def step(url: str, page: Json, resp: aiohttp.ClientResponse) -> tuple[list[Json], str | None]:
        assert page["count"] == 1000
        if next_link_in == "body":
            assert "Link" not in resp.headers
            return page["results"], page["next"]
        assert set(page) == {"count", "results"}
        rels = links(resp.headers["Link"])
        return page["results"], urljoin(url, rels["next"]) if "next" in rels else None

    async with run_demo(DemoSettings(records=1000, next_link_in=next_link_in)) as demo:
        first = f"{demo.url}/link?limit=300"
        walked = await walk_by(session, first, await token(session, demo), step)
    assert walked == (records(0, 1000), 4)


async def test_opaque_links_carry_a_token_and_walk_the_whole_dataset(
    session: aiohttp.ClientSession,
) -> None:
    def step(url: str, page: Json, resp: aiohttp.ClientResponse) -> tuple[list[Json], str | None]:
        for link in filter(None, (page["next"], page["previous"])):
            assert "after=" in link and "offset=" not in link
        return page["results"], page["next"]

    async with run_demo(DemoSettings(records=1000, opaque_links=True)) as demo:
        auth = await token(session, demo)
        walked = await walk_by(session, f"{demo.url}/link?limit=300", auth, step)
        status, _, _ = await get_json(session, f"{demo.url}/link?after=bm9wZQ", auth)
    assert walked == (records(0, 1000), 4)
    assert status == 400  # a token it did not give


def test_the_cli_sets_where_each_family_tells_how_the_data_goes_on() -> None:
    flags = ["--totals-in", "header", "--next-cursor-in", "body", "--next-link-in", "header"]
    settings = settings_from(parse_args(flags))
    assert (settings.totals_in, settings.next_cursor_in, settings.next_link_in) == (
        "header",
        "body",
        "header",
    )
    default = settings_from(parse_args([]))
    assert (default.totals_in, default.next_cursor_in, default.next_link_in) == ("both",) * 3
    with pytest.raises(SystemExit):
        parse_args(["--totals-in", "footer"])


@pytest.mark.parametrize(
    "changes",
    [
        {"totals_in": "footer"},
        {"next_cursor_in": ""},
        {"next_link_in": "Header"},
        {"totals_in": "body", "json_meta_header": True},
    ],
)
def test_a_carrier_out_of_its_choices_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        DemoSettings(**changes)
