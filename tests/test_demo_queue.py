"""The demo API's queueing limiter (nginx's limit_req without nodelay): the queue on an injected
clock, the demo through real HTTP on a loopback port, and harvester's CLI against it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from harvester.demo import DemoServer, DemoSettings, run_demo
from harvester.demo.__main__ import parse_args, settings_from
from harvester.demo.queue import HANG_UP_CHECK, LeakyQueue, wait_turn

from .conftest import FakeTime, expected_bytes, run_cli
from .test_demo_ratelimit import get, limit_headers, limited_harvest, token

Answer = tuple[int, Mapping[str, str]]


@dataclass
class OnePerSecond:
    """The demo at 1 request/s with a queue of 1, on a fake clock, its first request answered."""

    demo: DemoServer
    fake: FakeTime
    session: aiohttp.ClientSession
    auth: dict[str, str]
    first: Answer

    async def get(self) -> Answer:
        return await get(self.session, self.demo, self.auth)

    async def send_late(self) -> asyncio.Task[Answer]:
        """Send a request; return once it waits in the queue (the clock never moves on its own)."""
        task = asyncio.create_task(self.get())
        await self.demo.wait_for_requests(self.demo.stats.data_requests + 1)
        return task


@contextlib.asynccontextmanager
async def one_per_second(**changes: Any) -> AsyncIterator[OnePerSecond]:
    settings = DemoSettings(**{"records": 10, "rate_limit": 1.0, "rate_limit_queue": 1, **changes})
    fake = FakeTime()
    async with run_demo(settings, clock=fake.clock) as demo, aiohttp.ClientSession() as session:
        auth = await token(session, demo)
        first = await get(session, demo, auth)
        yield OnePerSecond(demo, fake, session, auth, first)


def delays(queue: LeakyQueue, count: int) -> list[float | None]:
    """The delays of `count` requests arriving together; None for a refused one."""
    turns = [queue.admit() for _ in range(count)]
    return [None if turn is None else turn.delay for turn in turns]


# The queue on an injected clock


def test_a_request_within_the_rate_goes_on_at_once() -> None:
    fake = FakeTime()
    queue = LeakyQueue(4.0, 3, clock=fake.clock)
    assert delays(queue, 1) == [0.0]
    fake.now += 0.25
    assert delays(queue, 1) == [0.0]
    fake.now += 5.0
    assert delays(queue, 1) == [0.0] and queue.waiting == 0


def test_requests_over_the_rate_wait_k_over_the_rate() -> None:
    # 4/s, a turn every 0.25 s (exact in binary, as every time in these tests).
    fake = FakeTime()
    queue = LeakyQueue(4.0, 3, clock=fake.clock)
    assert delays(queue, 4) == [0.0, 0.25, 0.5, 0.75]
    assert queue.waiting == 3


def test_the_request_that_finds_the_queue_full_is_refused_and_changes_nothing() -> None:
    fake = FakeTime()
    queue = LeakyQueue(4.0, 3, clock=fake.clock)
    delays(queue, 4)
    assert delays(queue, 3) == [None, None, None] and queue.waiting == 3
    fake.now += 0.25  # the first turn has come: one place free, behind the last turn given
    assert delays(queue, 2) == [0.75, None]


def test_a_drained_queue_admits_at_once_again() -> None:
    fake = FakeTime()
    queue = LeakyQueue(4.0, 3, clock=fake.clock)
    delays(queue, 4)  # the last turn comes 0.75 s from now
    fake.now += 0.75
    # Empty, and still the pace: the next turn is 0.25 s after the last.
    assert queue.waiting == 0 and delays(queue, 1) == [0.25]
    fake.now += 0.5
    assert queue.waiting == 0 and delays(queue, 2) == [0.0, 0.25]


async def test_wait_turn_sleeps_until_the_turn_in_short_slices() -> None:
    fake = FakeTime()
    queue = LeakyQueue(2.0, 1, clock=fake.clock)
    queue.admit()
    turn = queue.admit()
    assert turn is not None and turn.delay == 0.5
    assert await wait_turn(queue, turn, gone=lambda: False, sleep=fake.sleep)
    assert sum(fake.slept) == pytest.approx(0.5) and max(fake.slept) <= HANG_UP_CHECK
    assert queue.waiting == 0


async def test_a_cancelled_waiter_frees_its_place() -> None:
    fake = FakeTime()
    queue = LeakyQueue(1.0, 1, clock=fake.clock)
    waiting = asyncio.Event()

    async def sleep_until_cancelled(seconds: float) -> None:
        waiting.set()
        await asyncio.Event().wait()

    queue.admit()
    turn = queue.admit()
    assert turn is not None and queue.admit() is None  # full
    task = asyncio.create_task(
        wait_turn(queue, turn, gone=lambda: False, sleep=sleep_until_cancelled)
    )
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert queue.waiting == 0
    # Its place is free; its turn is not given again, so the pace never quickens.
    again = queue.admit()
    assert again is not None and again.delay == 2.0


async def test_a_waiter_whose_client_went_away_frees_its_place() -> None:
    fake = FakeTime()
    queue = LeakyQueue(1.0, 1, clock=fake.clock)
    queue.admit()
    turn = queue.admit()
    assert turn is not None
    assert not await wait_turn(queue, turn, gone=lambda: True, sleep=fake.sleep)
    assert fake.slept == [] and queue.waiting == 0


# The demo API in queue mode, through real HTTP on a fake clock


async def test_the_queue_answers_late_and_refuses_when_full() -> None:
    async with one_per_second(rate_limit_status=503) as api:
        late = await api.send_late()
        refused = await api.get()
        assert not late.done()
        api.fake.now += 1.0
        answered = await late
    assert [api.first[0], refused[0], answered[0]] == [200, 503, 200]
    # As nginx's limit_req: no rate-limit headers, no Retry-After.
    assert all(limit_headers(headers) == set() for _, headers in (api.first, refused, answered))
    assert "Retry-After" not in refused[1]
    stats = api.demo.stats
    assert stats.queued == 1 and stats.faults["429"] == 1 and stats.statuses == {200: 2, 503: 1}


async def test_a_client_that_hangs_up_while_queued_frees_its_place() -> None:
    async with one_per_second() as api:
        url = URL(api.demo.url)
        assert url.host is not None and url.port is not None
        _, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(
            f"GET /items?limit=1 HTTP/1.1\r\nHost: {url.host}\r\n"
            f"Authorization: {api.auth['Authorization']}\r\n\r\n".encode()
        )
        await api.demo.wait_for_requests(2)
        assert (await api.get())[0] == 429  # the queue is full
        writer.close()
        await writer.wait_closed()
        await api.demo.wait_for_queue(0)
        late = await api.send_late()  # a place again, not a refusal
        api.fake.now += 2.0  # the hung-up request's turn, then this one's
        status, _ = await late
    assert status == 200
    assert api.demo.stats.left_queue == 1 and api.demo.stats.queued == 2
    # Nothing was answered to the client that hung up.
    assert api.demo.stats.statuses == {200: 2, 429: 1}


async def test_a_stopping_server_answers_its_queue_at_once() -> None:
    settings = DemoSettings(records=10, rate_limit=1.0, rate_limit_queue=1)
    async with aiohttp.ClientSession() as session:
        async with run_demo(settings, clock=FakeTime().clock) as demo:
            auth = await token(session, demo)
            await get(session, demo, auth)
            late = asyncio.create_task(get(session, demo, auth))
            await demo.wait_for_requests(2)
        # Answered as the server stopped, though the clock never reached its turn.
        assert (await late)[0] == 200


async def test_the_bucket_refuses_with_the_status_asked_and_retry_after() -> None:
    async with one_per_second(rate_limit_queue=0, rate_limit_status=503) as api:
        refused = await api.get()
    assert (api.first[0], refused[0], refused[1]["Retry-After"]) == (200, 503, "1")


def test_the_cli_flags_and_the_settings() -> None:
    argv = ["--rate-limit", "50", "--rate-limit-queue", "10", "--rate-limit-status", "503"]
    settings = settings_from(parse_args(argv))
    assert (settings.rate_limit_queue, settings.rate_limit_status) == (10, 503)
    default = settings_from(parse_args([]))
    assert (default.rate_limit_queue, default.rate_limit_status) == (0, 429)
    with pytest.raises(SystemExit):
        parse_args(["--rate-limit-status", "500"])


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"rate_limit_queue": 5}, "rate_limit_queue"),
        ({"rate_limit": 5.0, "rate_limit_queue": -1}, "rate_limit_queue"),
        ({"rate_limit": 5.0, "rate_limit_queue": 5, "rate_limit_headers": "x"}, "headers"),
        ({"rate_limit": 5.0, "rate_limit_status": 500}, "rate_limit_status"),
    ],
)
def test_settings_out_of_range_are_refused(changes: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        DemoSettings(**changes)  # type: ignore[arg-type]


# harvester's CLI against the queue


async def test_harvester_keeps_to_a_queue_without_being_refused(tmp_path: Path) -> None:
    # nginx's limit_req zone rate=50r/s burst=10 with its 503s; harvester knows no rate.
    records = 300
    settings = DemoSettings(
        records=records, latency=0.02, rate_limit=50.0, rate_limit_queue=10, rate_limit_status=503
    )
    async with run_demo(settings) as demo:
        config = limited_harvest(tmp_path, demo.url)
        result = await run_cli(str(config))
    assert result.code == 0, result.output
    assert (tmp_path / "out.jsonl").read_bytes() == expected_bytes(records)
    refused, requests = demo.stats.statuses[503], demo.stats.data_requests
    assert demo.stats.queued > 0  # it met the queue: its first requests go together
    assert refused <= 0.02 * requests, (refused, requests, demo.stats.queued, result.stderr)
