"""The demo's users -> orders pair: /users by offset with a total, each user's orders by page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from harvester.demo import DemoServer, DemoSettings, run_demo
from harvester.demo.users import expected_order, orders_of

from .test_demo import get_json, session, token

__all__ = ["session"]  # the fixture, used by name


async def call(session: aiohttp.ClientSession, url: str, auth: dict[str, str]) -> tuple[int, Any]:
    status, body, _ = await get_json(session, url, auth)
    return status, body


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    async with run_demo(DemoSettings(users=60, orders_max=25)) as server:
        yield server


async def test_users_are_offset_pages_with_a_total(
    demo: DemoServer, session: aiohttp.ClientSession
) -> None:
    auth = await token(session, demo)
    status, body = await call(session, f"{demo.url}/users?offset=50&limit=20", auth)
    assert status == 200 and body["total"] == 60
    assert body["items"] == [{"id": u, "name": f"user-{u:05d}"} for u in range(50, 60)]


async def test_orders_vary_per_user_and_end_with_404_past_the_last_page(
    demo: DemoServer, session: aiohttp.ClientSession
) -> None:
    auth = await token(session, demo)
    counts = [orders_of(u, demo.settings) for u in range(60)]
    assert 0 in counts and max(counts) > 20  # users with none, users with three pages of 10
    user = counts.index(max(counts))
    seen = []
    for page in range(1, 4):
        url = f"{demo.url}/users/{user}/orders?page={page}&page_size=10"
        status, body = await call(session, url, auth)
        assert status == 200 and body["count"] == max(counts) and body["total_pages"] == 3
        seen.extend(body["results"])
    assert seen == [expected_order(user, j) for j in range(max(counts))]
    status, _ = await call(session, f"{demo.url}/users/{user}/orders?page=4&page_size=10", auth)
    assert status == 404
    empty = counts.index(0)
    status, body = await call(session, f"{demo.url}/users/{empty}/orders", auth)
    assert status == 200 and body["results"] == [] and body["total_pages"] == 1


async def test_missing_users_answer_404(demo: DemoServer, session: aiohttp.ClientSession) -> None:
    auth = await token(session, demo)
    demo.settings.missing_users_every = 5
    assert (await call(session, f"{demo.url}/users/4/orders", auth))[0] == 404
    assert (await call(session, f"{demo.url}/users/5/orders", auth))[0] == 200
    assert (await call(session, f"{demo.url}/users/60/orders", auth))[0] == 404  # past the end
    assert (await call(session, f"{demo.url}/users/x/orders", auth))[0] == 404
    demo.settings.orders_fixed = 20
    _, body = await call(session, f"{demo.url}/users/7/orders?page_size=10", auth)
    assert body["count"] == 20 and body["total_pages"] == 2
