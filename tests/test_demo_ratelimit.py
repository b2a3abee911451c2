"""The demo API's rate-limit headers, through real HTTP on a loopback port and a fake clock."""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harvester.demo import DemoServer, DemoSettings, run_demo
from harvester.demo.__main__ import parse_args, settings_from
from harvester.demo.ratelimit import Quota, TokenBucket, quota_headers
from harvester.demo.settings import RateLimitHeaders

from .conftest import expected_bytes, run_cli, write_config_file

X = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
IETF = (
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
    "RateLimit",
)
FAMILIES: dict[RateLimitHeaders, tuple[str, ...]] = {"x": X, "ietf": IETF, "both": X + IETF}


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def token(session: aiohttp.ClientSession, demo: DemoServer) -> dict[str, str]:
    """Authorization headers with a fresh token (the token endpoint is not rate limited)."""
    form = {"grant_type": "client_credentials", "client_id": "demo", "client_secret": "demo-secret"}
    async with session.post(f"{demo.url}/oauth2/token", data=form) as resp:
        assert resp.status == 200
        return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


async def get(
    session: aiohttp.ClientSession,
    demo: DemoServer,
    auth: Mapping[str, str],
    path: str = "/items?limit=1",
) -> tuple[int, Mapping[str, str]]:
    async with session.get(f"{demo.url}{path}", headers=auth) as resp:
        await resp.read()
        return resp.status, resp.headers


def limit_headers(headers: Mapping[str, str]) -> set[str]:
    """The names of the rate-limit headers among `headers`, as the API spelled them."""
    return {name for name in headers if re.match(r"(x-)?ratelimit", name, re.IGNORECASE)}


def structured(field: str) -> dict[str, int]:
    """`limit=5, remaining=4, reset=1` as a dict, keys in order, each value a bare integer."""
    items = [item.strip().split("=") for item in field.split(",")]
    assert all(len(item) == 2 and item[1].isdigit() for item in items), field
    return {key: int(value) for key, value in items}


def ints(headers: Mapping[str, str], *names: str) -> list[int]:
    return [int(headers[name]) for name in names]


async def seven_answers(
    session: aiohttp.ClientSession, clock: FakeClock, settings: DemoSettings
) -> list[tuple[int, Mapping[str, str]]]:
    """Seven requests in a row at the demo with `settings`, its clock standing still."""
    async with run_demo(settings, clock=clock) as demo:
        auth = await token(session, demo)
        return [await get(session, demo, auth) for _ in range(7)]


@pytest.mark.parametrize("style", ["x", "ietf", "both"])
async def test_each_family_is_on_every_answer_of_a_burst(
    session: aiohttp.ClientSession, clock: FakeClock, style: RateLimitHeaders
) -> None:
    settings = DemoSettings(records=10, rate_limit=5.0, rate_limit_headers=style)
    answers = await seven_answers(session, clock, settings)
    assert [status for status, _ in answers] == [200] * 5 + [429] * 2
    for _, headers in answers:
        assert limit_headers(headers) == set(FAMILIES[style])
    remaining = "X-RateLimit-Remaining" if style == "x" else "RateLimit-Remaining"
    assert [int(headers[remaining]) for _, headers in answers] == [4, 3, 2, 1, 0, 0, 0]
    assert {headers["Retry-After"] for status, headers in answers if status == 429} == {"1"}


@pytest.mark.parametrize(
    "settings",
    [
        DemoSettings(records=10, rate_limit=5.0),
        DemoSettings(records=10, rate_limit=5.0, rate_limit_headers="none"),
        DemoSettings(records=10, rate_limit=None, rate_limit_headers="both"),
    ],
    ids=["default", "none", "no-rate-limit"],
)
async def test_no_headers_with_none_or_without_a_rate_limit(
    session: aiohttp.ClientSession, clock: FakeClock, settings: DemoSettings
) -> None:
    answers = await seven_answers(session, clock, settings)
    expected = [200] * 7 if settings.rate_limit is None else [200] * 5 + [429] * 2
    assert [status for status, _ in answers] == expected
    assert all(limit_headers(headers) == set() for _, headers in answers)


async def test_refusals_without_retry_after_where_the_switch_says(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    settings = DemoSettings(records=10, rate_limit=5.0, rate_limit_retry_after=False)
    answers = await seven_answers(session, clock, settings)
    assert [status for status, _ in answers] == [200] * 5 + [429] * 2
    assert not any("Retry-After" in headers for _, headers in answers)
    flag = settings_from(parse_args(["--rate-limit", "5", "--rate-limit-no-retry-after"]))
    assert not flag.rate_limit_retry_after
    assert settings_from(parse_args([])).rate_limit_retry_after


async def test_ietf_headers_count_down_and_refill_with_the_clock(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    settings = DemoSettings(records=10, rate_limit=5.0, rate_limit_headers="ietf")
    async with run_demo(settings, clock=clock) as demo:
        auth = await token(session, demo)
        first = [(await get(session, demo, auth))[1] for _ in range(3)]
        clock.now += 0.5  # 2.5 tokens back: 2 + 2.5 = 4.5, and this request spends one
        _, refilled = await get(session, demo, auth)
        clock.now += 10.0  # full again, whatever was spent
        _, rested = await get(session, demo, auth)
    names = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
    assert [ints(headers, *names) for headers in first] == [[5, 4, 1], [5, 3, 1], [5, 2, 1]]
    assert ints(refilled, *names) == [5, 3, 1] and ints(rested, *names) == [5, 4, 1]
    for headers in [*first, refilled, rested]:
        assert headers["RateLimit-Policy"] == "5;w=1"
        field = structured(headers["RateLimit"])
        assert list(field) == ["limit", "remaining", "reset"]
        assert list(field.values()) == ints(headers, *names)


async def test_a_slow_limit_has_a_longer_window_and_reset(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    # 0.25/s: a burst of 1, full again 4 s after it is spent.
    settings = DemoSettings(records=10, rate_limit=0.25, rate_limit_headers="ietf")
    async with run_demo(settings, clock=clock) as demo:
        auth = await token(session, demo)
        status, spent = await get(session, demo, auth)
        clock.now += 1.0
        refused, told = await get(session, demo, auth)
        clock.now += 3.0
        again, _ = await get(session, demo, auth)
    assert (status, refused, again) == (200, 429, 200)
    assert re.fullmatch(r"(\d+);w=(\d+)", spent["RateLimit-Policy"])
    assert spent["RateLimit-Policy"] == told["RateLimit-Policy"] == "1;w=4"
    assert structured(spent["RateLimit"]) == {"limit": 1, "remaining": 0, "reset": 4}
    assert structured(told["RateLimit"]) == {"limit": 1, "remaining": 0, "reset": 3}
    # Retry-After is unchanged: the wait for one slot, which here is the wait for a full bucket.
    assert told["Retry-After"] == told["RateLimit-Reset"] == "3"


async def test_x_reset_is_unix_time_when_the_bucket_is_full(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    settings = DemoSettings(records=10, rate_limit=0.25, rate_limit_headers="x")
    async with run_demo(settings, clock=clock) as demo:
        auth = await token(session, demo)
        before = time.time()
        _, spent = await get(session, demo, auth)
        clock.now += 1.0
        status, told = await get(session, demo, auth)
        after = time.time()
    assert status == 429
    assert ints(spent, *X[:2]) == [1, 0] and ints(told, *X[:2]) == [1, 0]
    # Full 4 s after the first request, then 3 s after the second; Unix time, rounded up.
    assert math.ceil(before + 4) <= int(spent["X-RateLimit-Reset"]) <= math.ceil(after + 4)
    assert math.ceil(before + 3) <= int(told["X-RateLimit-Reset"]) <= math.ceil(after + 3)


async def test_both_families_agree(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    settings = DemoSettings(records=10, rate_limit=3.0, rate_limit_headers="both")
    async with run_demo(settings, clock=clock) as demo:
        auth = await token(session, demo)
        answers = []
        for _ in range(5):
            answers.append((await get(session, demo, auth), time.time()))
            clock.now += 0.05
    assert [status for (status, _), _ in answers] == [200, 200, 200, 429, 429]
    for (_, headers), now in answers:
        field = structured(headers["RateLimit"])
        assert headers["X-RateLimit-Limit"] == headers["RateLimit-Limit"] == str(field["limit"])
        remaining = headers["X-RateLimit-Remaining"]
        assert remaining == headers["RateLimit-Remaining"] == str(field["remaining"])
        assert headers["RateLimit-Reset"] == str(field["reset"])
        assert headers["RateLimit-Policy"] == "3;w=1"
        # The epoch is now + the exact delta rounded up; the delta alone is rounded up.
        delta = int(headers["X-RateLimit-Reset"]) - now
        assert field["reset"] - 1.5 < delta < field["reset"] + 1
    assert [int(headers["RateLimit-Remaining"]) for (_, headers), _ in answers] == [2, 1, 0, 0, 0]


async def test_every_answer_after_the_limiter_has_them(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    # The token check comes after the limiter: a 401 has spent a slot too, and says so.
    settings = DemoSettings(records=10, rate_limit=10.0, rate_limit_headers="ietf")
    async with run_demo(settings, clock=clock) as demo:
        answers = [await get(session, demo, {}, path="/cursor")]
        auth = await token(session, demo)
        answers.append(await get(session, demo, auth, path="/cursor?limit=0"))
        demo.settings.fault_rate = 1.0
        answers.append(await get(session, demo, auth, path="/link"))
        demo.settings.fault_rate, demo.settings.throttle_rate = 0.0, 1.0
        answers.append(await get(session, demo, auth, path="/pages"))
        demo.settings.throttle_rate = 0.0
        demo.settings.rate_limit_headers = "none"  # live, like every setting
        answers.append(await get(session, demo, auth))
    assert [status for status, _ in answers[:2]] == [401, 400]
    assert answers[2][0] in (500, 502, 503) and answers[3][0] == 429
    remaining = [headers.get("RateLimit-Remaining") for _, headers in answers]
    assert remaining == ["9", "8", "7", "6", None]
    assert answers[4][0] == 200 and limit_headers(answers[4][1]) == set()


@contextlib.asynccontextmanager
async def bound_session(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A session whose connections leave from `address` (all of 127.0.0.0/8 is loopback)."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(connector=connector) as client:
        yield client


@pytest.mark.parametrize("per_address", [True, False])
async def test_each_client_address_gets_the_whole_rate_per_address(
    clock: FakeClock, per_address: bool
) -> None:
    settings = DemoSettings(records=10, rate_limit=3.0, rate_limit_per_address=per_address)
    async with (
        run_demo(settings, clock=clock) as demo,
        bound_session("127.0.0.2") as first,
        bound_session("127.0.0.3") as second,
    ):
        statuses: dict[str, list[int]] = {}
        for name, client in (("127.0.0.2", first), ("127.0.0.3", second)):
            auth = await token(client, demo)
            statuses[name] = [(await get(client, demo, auth))[0] for _ in range(4)]
    assert statuses["127.0.0.2"] == [200, 200, 200, 429]
    # One bucket for all: the second address finds it spent.
    assert statuses["127.0.0.3"] == ([200, 200, 200, 429] if per_address else [429] * 4)
    assert demo.stats.clients == {"127.0.0.2": 4, "127.0.0.3": 4}


async def test_clients_on_one_address_share_its_bucket(clock: FakeClock) -> None:
    settings = DemoSettings(
        records=10, rate_limit=4.0, rate_limit_per_address=True, rate_limit_headers="ietf"
    )
    async with (
        run_demo(settings, clock=clock) as demo,
        bound_session("127.0.0.2") as first,
        bound_session("127.0.0.2") as second,
        bound_session("127.0.0.3") as other,
    ):
        auth = await token(first, demo)
        answers = [await get(client, demo, auth) for client in (first, second) * 3]
        elsewhere = await get(other, demo, auth)
    assert [status for status, _ in answers] == [200] * 4 + [429] * 2
    assert [headers["RateLimit-Remaining"] for _, headers in answers[:4]] == ["3", "2", "1", "0"]
    assert elsewhere[0] == 200 and elsewhere[1]["RateLimit-Remaining"] == "3"


def test_the_cli_flag_and_the_setting() -> None:
    args = parse_args(["--rate-limit", "50", "--rate-limit-headers", "both"])
    settings = settings_from(args)
    assert settings.rate_limit == 50 and settings.rate_limit_headers == "both"
    assert settings_from(parse_args([])).rate_limit_headers == "none"
    assert not settings.rate_limit_per_address
    assert settings_from(parse_args(["--rate-limit-per-address"])).rate_limit_per_address
    with pytest.raises(SystemExit):
        parse_args(["--rate-limit-headers", "github"])
    with pytest.raises(ValueError, match="rate_limit_headers"):
        DemoSettings(rate_limit_headers="github")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rate", "limit", "window"),
    [(50.0, 50, 1), (1.0, 1, 1), (0.5, 1, 2), (0.3, 1, 4), (2.5, 2, 1)],
)
def test_the_policy_never_promises_more_than_the_rate(rate: float, limit: int, window: int) -> None:
    bucket = TokenBucket(rate, clock=lambda: 0.0)
    assert bucket.acquire() == 0.0
    quota = bucket.quota()
    assert (quota.limit, quota.window) == (limit, window)
    assert quota.limit / quota.window <= rate


def test_quota_headers_by_hand() -> None:
    quota = Quota(limit=50, window=1, remaining=7, until_full=0.86)
    assert quota_headers(quota, "none", now=1_700_000_000.5) == {}
    assert quota_headers(quota, "both", now=1_700_000_000.5) == {
        "X-RateLimit-Limit": "50",
        "X-RateLimit-Remaining": "7",
        "X-RateLimit-Reset": "1700000002",
        "RateLimit-Limit": "50",
        "RateLimit-Remaining": "7",
        "RateLimit-Reset": "1",
        "RateLimit-Policy": "50;w=1",
        "RateLimit": "limit=50, remaining=7, reset=1",
    }
    # At least 1 while anything is spent, however little.
    assert Quota(limit=5, window=1, remaining=4, until_full=1e-12).reset == 1


# --- harvester's CLI against a limiter without Retry-After ---------------------------------


def limited_harvest(folder: Path, url: str, **sections: dict[str, Any]) -> Path:
    """A config file for harvester against a rate-limited demo: 16 workers, the default reorder
    window, two records a page (many requests for few records)."""
    return write_config_file(
        folder,
        url,
        pagination={"page_size": 2},
        concurrency={"workers": 16, "max_buffered_pages": 64},
        **sections,
    )


async def test_a_page_refused_without_retry_after_is_retried_after_the_cool_down_alone(
    tmp_path: Path,
) -> None:
    """A limiter that sends no Retry-After (the `limits` library's sliding log behind a framework
    that sends none): every worker waits harvester's own short pause, and the refused page
    with them and no longer. With a backoff of its own on top (0.25-0.5 s here), the page
    held the ordered output back until the reorder window was full and every worker stood
    still, and the shortfall then passed for the API's rate (70-84% of a 50/s sliding log).
    The backoff is set, as this test is about it."""
    records = 400
    settings = DemoSettings(
        records=records, latency=0.02, rate_limit=50.0, rate_limit_retry_after=False
    )
    async with run_demo(settings) as demo:
        retry = {"max_attempts": 8, "initial_backoff": 0.5, "max_backoff": 8}
        config = limited_harvest(tmp_path, demo.url, retry=retry)
        result = await run_cli(str(config), "--log-level", "DEBUG")
    assert result.code == 0, result.output
    assert (tmp_path / "out.jsonl").read_bytes() == expected_bytes(records)
    first_waits: dict[int, str] = {}
    for page, wait in re.findall(r"page (\d+): 429, retried in ([\d.]+) s", result.stderr):
        first_waits.setdefault(int(page), wait)
    assert demo.stats.statuses[429] > 0 and first_waits, result.stderr[-2000:]
    assert set(first_waits.values()) == {"0.00"}, first_waits
