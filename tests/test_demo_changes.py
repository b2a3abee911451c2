"""The demo API's /changes: updated_at, the inclusive updated_since filter, the stable
(updated_at, id) order, and the switch that adds and updates records between runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from harvester.demo import DemoServer, DemoSettings, run_demo
from harvester.demo.__main__ import parse_args, settings_from
from harvester.demo.changes import changes_records

from .test_demo import get_json, token

SIZES = {"records": 300, "changes_added": 20, "changes_updated": 12}


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    async with run_demo(DemoSettings(**SIZES)) as server:
        yield server


async def all_pages(
    session: aiohttp.ClientSession, demo: DemoServer, query: str = ""
) -> list[dict[str, Any]]:
    auth = await token(session, demo)
    found: list[dict[str, Any]] = []
    while True:
        url = f"{demo.url}/changes?limit=50&offset={len(found)}{query}"
        status, page, _ = await get_json(session, url, auth)
        assert status == 200, page
        found += page["data"]
        if not page["data"]:
            return found


def order(records: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(r["updated_at"], r["id"]) for r in records]


async def test_generation_zero_is_the_dataset_with_updated_at_in_order(demo: DemoServer) -> None:
    async with aiohttp.ClientSession() as session:
        served = await all_pages(session, demo)
    assert [r["id"] for r in served] == list(range(300))
    assert (
        served[1]["updated_at"]
        == "2024-01-01T00:01:00.000Z"
        == served[1]["created_at"][:16] + ":00.000Z"
    )
    assert {r["version"] for r in served} == {0}


async def test_updated_since_is_inclusive_and_the_order_is_by_updated_at_then_id(
    demo: DemoServer,
) -> None:
    demo.settings.changes_generation = 2
    async with aiohttp.ClientSession() as session:
        everything = await all_pages(session, demo)
        since = everything[250]["updated_at"]
        after = await all_pages(session, demo, f"&updated_since={since.replace('Z', '%2B00:00')}")
    assert order(everything) == sorted(order(everything))
    assert after == [r for r in everything if r["updated_at"] >= since]
    assert after[0]["updated_at"] == since  # inclusive
    assert everything == changes_records(300, 20, 12, 2)


async def test_the_next_generation_adds_and_updates_records(demo: DemoServer) -> None:
    async with aiohttp.ClientSession() as session:
        before = {r["id"]: r for r in await all_pages(session, demo)}
        async with session.post(f"{demo.url}/admin/next-generation") as resp:
            assert resp.status == 200 and (await resp.json()) == {"generation": 1}
        after = {r["id"]: r for r in await all_pages(session, demo)}
    assert sorted(set(after) - set(before)) == list(range(300, 320))  # changes_added
    updated = [i for i in before if after[i] != before[i]]
    assert len(updated) == 12 and all(after[i]["version"] == 1 for i in updated)
    newest_before = max(r["updated_at"] for r in before.values())
    late = [i for i in updated if after[i]["updated_at"] < newest_before]
    # Every fourth update lands a minute before the last generation's newest value: only a
    # lookback finds it.
    assert len(late) == 3


def test_the_command_line_sets_the_generation() -> None:
    args = parse_args(
        ["--changes-generation", "3", "--changes-added", "5", "--changes-updated", "2"]
    )
    settings = settings_from(args)
    assert (settings.changes_generation, settings.changes_added, settings.changes_updated) == (
        3,
        5,
        2,
    )
    with pytest.raises(ValueError, match="changes_added"):
        DemoSettings(changes_added=-1)
