"""One page fetch against exact sequences of answers: retries, Retry-After, 401s, bad bodies."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from harvester.auth import TokenManager
from harvester.config import Config, RetryConfig
from harvester.demo import DemoSettings, run_demo
from harvester.errors import AuthError, PageFetchError, RecordsError
from harvester.fetch import Fetched, Fetcher
from harvester.pagination import make_planner
from harvester.ratelimit import Throttle
from harvester.retry import RetryPolicy
from harvester.runner import run
from harvester.stats import Stats

from .conftest import SECRET, FakeTime, make_config, no_wait_policy

BASE = "https://api.test"
TOKEN_URL = f"{BASE}/oauth2/token"
PAGE0 = re.compile(r"^https://api\.test/items\?.*offset=0.*$")


class Harness:
    """A Fetcher wired like the runner wires it, with sleeps recorded instead of slept."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stats = Stats()
        self.waits: list[float] = []

        async def record_sleep(seconds: float) -> None:
            self.waits.append(seconds)

        self.policy = RetryPolicy(config.retry, sleep=record_sleep)
        self.planner = make_planner(config.pagination)
        self.time = FakeTime()

    def throttle(self) -> Throttle:
        return Throttle(
            self.config.concurrency,
            self.stats,
            clock=self.time.clock,
            sleep=self.time.sleep,
            max_pause=self.policy.config.max_retry_after,
        )

    def fetcher(self, session: aiohttp.ClientSession, tokens: Any, throttle: Throttle) -> Fetcher:
        """A Fetcher whose tokens come from `tokens` (a TokenManager or a stand-in)."""
        return Fetcher(self.config, session, tokens, self.policy, self.stats, throttle)

    async def fetch(self, index: int = 0) -> Fetched:
        async with aiohttp.ClientSession() as session:
            throttle = self.throttle()
            tokens = TokenManager(
                self.config.auth, session, self.policy, self.stats, throttle=throttle
            )
            fetcher = Fetcher(self.config, session, tokens, self.policy, self.stats, throttle)
            return await fetcher.fetch(self.planner, self.planner.request(index))


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(make_config(BASE, tmp_path / "out.jsonl", retry={"max_attempts": 4}))


def body(first: int = 0, count: int = 3, total: int = 3) -> dict[str, Any]:
    return {"items": [{"id": i} for i in range(first, first + count)], "total": total}


def tokens(mocked: aioresponses, count: int = 3) -> None:
    for n in range(1, count + 1):
        mocked.post(TOKEN_URL, payload={"access_token": f"tok-{n}", "expires_in": 3600})


def data_requests(mocked: aioresponses) -> list[Any]:
    return [
        call for (method, _), calls in mocked.requests.items() if method == "GET" for call in calls
    ]


async def test_a_page_becomes_json_lines_with_its_total(
    mock_http: aioresponses, harness: Harness
) -> None:
    tokens(mock_http)
    mock_http.get(PAGE0, payload=body())
    fetched = await harness.fetch()
    assert fetched.page.data == b'{"id":0}\n{"id":1}\n{"id":2}\n'
    assert (fetched.page.count, fetched.total) == (3, 3)
    call = data_requests(mock_http)[0]
    assert call.kwargs["headers"]["Authorization"] == "Bearer tok-1"
    assert call.kwargs["headers"]["Accept"] == "application/json"


async def test_retryable_statuses_are_retried_and_counted(
    mock_http: aioresponses, harness: Harness
) -> None:
    tokens(mock_http)
    mock_http.get(PAGE0, status=503)
    mock_http.get(PAGE0, status=500)
    mock_http.get(PAGE0, payload=body())
    fetched = await harness.fetch()
    assert fetched.page.count == 3
    assert harness.stats.retries == {"5xx": 2}
    assert harness.stats.requests == 3


@pytest.mark.parametrize("retry_after", ["7", "Wed, 21 Oct 2099 07:28:00 GMT"])
async def test_retry_after_is_the_floor_of_the_wait(
    mock_http: aioresponses, harness: Harness, retry_after: str
) -> None:
    tokens(mock_http)
    mock_http.get(PAGE0, status=429, headers={"Retry-After": retry_after})
    mock_http.get(PAGE0, payload=body())
    if "2099" in retry_after:
        harness.policy = RetryPolicy(
            RetryConfig(max_retry_after=10**10), sleep=harness.policy._sleep
        )
    await harness.fetch()
    assert len(harness.waits) == 1 and harness.waits[0] >= 7
    assert harness.stats.retries == {"429": 1}


async def test_a_refused_page_waits_for_the_cool_down_alone_an_error_backs_off(
    mock_http: aioresponses, tmp_path: Path
) -> None:
    """A 429 without Retry-After: every worker waits out the throttle's pause, the refused
    page with them and no longer (a backoff of its own held the reorder window back). A 500
    backs off as before. (Waits recorded, not slept.)"""
    retry = {"max_attempts": 4, "initial_backoff": 0.5, "max_backoff": 8.0}
    harness = Harness(make_config(BASE, tmp_path / "out.jsonl", retry=retry))
    tokens(mock_http)
    mock_http.get(PAGE0, status=429)
    mock_http.get(PAGE0, status=500)
    mock_http.get(PAGE0, payload=body())
    started = harness.time.now
    await harness.fetch()
    assert harness.waits[0] == 0.0
    assert harness.time.now - started >= 0.25  # the cool-down, slept on the throttle's clock
    assert 0.5 <= harness.waits[1] <= 1.0  # the 500: the backoff after a second attempt
    assert harness.stats.retries == {"429": 1, "5xx": 1}


async def test_a_retry_after_beyond_max_retry_after_fails_the_page(
    mock_http: aioresponses, harness: Harness
) -> None:
    tokens(mock_http)
    mock_http.get(PAGE0, status=503, headers={"Retry-After": "86400"})
    fail = dataclasses.replace(harness.policy.config, on_long_quota="fail")
    harness.policy = RetryPolicy(fail, sleep=harness.policy._sleep)
    with pytest.raises(PageFetchError, match="max_retry_after") as caught:
        await harness.fetch()
    assert caught.value.status == 503
    assert harness.waits == []


async def test_other_4xx_fail_fast_with_status_url_and_excerpt(
    mock_http: aioresponses, tmp_path: Path
) -> None:
    config = make_config(
        BASE, tmp_path / "o.jsonl", source={"url": f"{BASE}/items?api_key=k3y-123"}
    )
    tokens(mock_http)
    mock_http.get(re.compile(r".*offset=0.*"), status=404, body="no such collection")
    harness = Harness(config)
    with pytest.raises(PageFetchError) as caught:
        await harness.fetch()
    error = caught.value
    assert (error.status, error.page, error.body) == (404, 0, "no such collection")
    assert "k3y-123" not in str(error) and "api_key=***" in error.url
    assert len(data_requests(mock_http)) == 1


async def test_giving_up_after_max_attempts(mock_http: aioresponses, harness: Harness) -> None:
    tokens(mock_http)
    mock_http.get(PAGE0, status=502, body="bad gateway", repeat=True)
    with pytest.raises(PageFetchError, match="gave up after 4 attempts") as caught:
        await harness.fetch()
    assert caught.value.status == 502
    assert len(data_requests(mock_http)) == 4


async def test_truncated_bodies_and_dropped_connections_are_retried(
    mock_http: aioresponses, harness: Harness
) -> None:
    tokens(mock_http)
    mock_http.get(PAGE0, body=orjson.dumps(body())[:20])
    mock_http.get(PAGE0, exception=aiohttp.ServerDisconnectedError())
    mock_http.get(PAGE0, exception=TimeoutError())
    mock_http.get(PAGE0, payload=body())
    assert (await harness.fetch()).page.count == 3
    assert harness.stats.retries == {"invalid_body": 1, "connection": 1, "timeout": 1}


async def test_an_html_page_with_status_200_fails_without_retry(
    mock_http: aioresponses, harness: Harness
) -> None:
    tokens(mock_http)
    mock_http.get(PAGE0, body="<html>Please log in</html>", content_type="text/html")
    with pytest.raises(PageFetchError, match="text/html, not JSON"):
        await harness.fetch()
    assert len(data_requests(mock_http)) == 1


@pytest.mark.parametrize(
    ("answer", "content_type", "needle"),
    [
        (b'{"items": [], "total": 0} and more', "application/json", "unexpected content after"),
        (b'{"items": [], "total": 0}', "application/json; charset=klingon", "charset 'klingon'"),
        (b"", "application/json", "empty body"),
    ],
)
async def test_a_whole_200_that_is_not_json_fails_without_retry(
    mock_http: aioresponses, harness: Harness, answer: bytes, content_type: str, needle: str
) -> None:
    tokens(mock_http)
    mock_http.get(PAGE0, body=answer, headers={"Content-Type": content_type})
    with pytest.raises(PageFetchError, match=needle) as caught:
        await harness.fetch()
    assert caught.value.status == 200 and f"answered {content_type}, not JSON" in str(caught.value)
    assert len(data_requests(mock_http)) == 1


async def test_a_latin1_page_of_big_numbers_is_written_as_sent(
    mock_http: aioresponses, harness: Harness
) -> None:
    tokens(mock_http)
    sent = '{"items": [{"id": 18446744073709551616, "name": "café", "x": 1e400}], "total": 1}'
    latin1 = "application/json; charset=iso-8859-1"
    mock_http.get(PAGE0, body=sent.encode("iso-8859-1"), headers={"Content-Type": latin1})
    fetched = await harness.fetch()
    assert fetched.page.data == '{"id":18446744073709551616,"name":"café","x":1e400}\n'.encode()
    assert fetched.total == 1


async def test_a_401_refreshes_the_token_and_retries(
    mock_http: aioresponses, harness: Harness
) -> None:
    tokens(mock_http)
    mock_http.get(PAGE0, status=401)
    mock_http.get(PAGE0, payload=body())
    assert (await harness.fetch()).page.count == 3
    sent = [c.kwargs["headers"]["Authorization"] for c in data_requests(mock_http)]
    assert sent == ["Bearer tok-1", "Bearer tok-2"]
    assert harness.stats.token_requests == 2 and harness.stats.retries == {"401": 1}


async def test_a_401_with_a_fresh_token_fails_the_run(
    mock_http: aioresponses, harness: Harness
) -> None:
    tokens(mock_http)
    mock_http.get(PAGE0, status=401, repeat=True)
    with pytest.raises(AuthError, match="freshly issued token") as caught:
        await harness.fetch()
    assert caught.value.status == 401
    assert harness.stats.token_requests == 2


async def test_a_missing_records_path_names_the_path_and_the_keys(
    mock_http: aioresponses, tmp_path: Path
) -> None:
    harness = Harness(make_config(BASE, tmp_path / "o.jsonl", source={"records": "data.rows"}))
    tokens(mock_http)
    mock_http.get(PAGE0, payload={"data": {"items": [], "count": 0}, "total": 0})
    with pytest.raises(RecordsError) as caught:
        await harness.fetch()
    assert caught.value.path == "data.rows"
    assert "items, count" in str(caught.value)


async def test_range_pages_send_the_range_header_and_read_content_range(
    mock_http: aioresponses, tmp_path: Path
) -> None:
    config = make_config(
        BASE,
        tmp_path / "o.jsonl",
        source={"url": f"{BASE}/range", "records": ""},
        pagination={"style": "range", "page_size": 2, "total": "content-range"},
    )
    harness = Harness(config)
    tokens(mock_http)
    mock_http.get(
        f"{BASE}/range",
        status=206,
        payload=[{"id": 2}, {"id": 3}],
        headers={"Content-Range": "items 2-3/5"},
    )
    fetched = await harness.fetch(index=1)
    assert (fetched.page.count, fetched.total) == (2, 5)
    assert data_requests(mock_http)[0].kwargs["headers"]["Range"] == "items=2-3"


async def test_a_416_is_an_empty_page_past_the_end(mock_http: aioresponses, tmp_path: Path) -> None:
    config = make_config(
        BASE,
        tmp_path / "o.jsonl",
        source={"url": f"{BASE}/range", "records": ""},
        pagination={"style": "range", "page_size": 2, "total": "content-range"},
    )
    tokens(mock_http)
    mock_http.get(f"{BASE}/range", status=416, headers={"Content-Range": "items */4"})
    fetched = await Harness(config).fetch(index=2)
    assert (fetched.page.count, fetched.total, fetched.complete) == (0, 4, True)


async def test_no_request_is_ever_sent_with_the_secret_in_the_url(
    mock_http: aioresponses, harness: Harness
) -> None:
    tokens(mock_http)
    mock_http.get(PAGE0, payload=body())
    await harness.fetch()
    for (_, url), _calls in mock_http.requests.items():
        assert "demo-secret" not in str(url)
    assert URL(TOKEN_URL) in {url for (_, url) in mock_http.requests}


async def test_a_page_fetched_again_after_a_401_goes_first_as_a_retry(
    mock_http: aioresponses, harness: Harness
) -> None:
    """After a 401 and a fresh token, the page's next request is a retry: it takes its place
    and slot ahead of first attempts (turn.py), as one after a 429 or a 500 does."""
    asked: list[bool] = []

    class Recording(Throttle):
        def request(self, *, counted: bool = True, again: bool = False) -> Any:
            if counted:
                asked.append(again)
            return super().request(counted=counted, again=again)

    harness.throttle = lambda: Recording(  # type: ignore[method-assign]
        harness.config.concurrency, harness.stats, clock=harness.time.clock
    )
    tokens(mock_http)
    mock_http.get(PAGE0, status=401)
    mock_http.get(PAGE0, status=500)
    mock_http.get(PAGE0, payload=body())
    await harness.fetch()
    assert asked == [False, True, True]


async def test_a_401_on_a_token_the_api_accepted_before_is_an_expiry_not_a_refusal(
    mock_http: aioresponses, harness: Harness
) -> None:
    """tok-2 is refused for this page after other pages used it: it expired, so refresh again."""
    tokens(mock_http)
    async with aiohttp.ClientSession() as session:
        manager = TokenManager(harness.config.auth, session, harness.policy, harness.stats)
        fetcher = Fetcher(harness.config, session, manager, harness.policy, harness.stats)

        def accepted_elsewhere(url: URL, **kwargs: Any) -> CallbackResult:
            # Meanwhile another worker's page succeeded with tok-2.
            token = manager._token
            assert token is not None and token.value == "tok-2"
            manager.accepted(token)
            return CallbackResult(status=503)

        mock_http.get(PAGE0, status=401)  # tok-1
        mock_http.get(PAGE0, callback=accepted_elsewhere)  # tok-2, 503
        mock_http.get(PAGE0, status=401)  # tok-2 has expired by now
        mock_http.get(PAGE0, payload=body())  # tok-3
        planner = harness.planner
        fetched = await fetcher.fetch(planner, planner.request(0))
    assert fetched.page.count == 3
    sent = [c.kwargs["headers"]["Authorization"] for c in data_requests(mock_http)]
    assert sent == ["Bearer tok-1", "Bearer tok-2", "Bearer tok-2", "Bearer tok-3"]


async def test_a_worker_that_waited_for_a_token_still_waits_out_a_cool_down(
    mock_http: aioresponses, harness: Harness
) -> None:
    """A token refresh in progress must not let its waiters past a cool-down begun meanwhile."""
    gate = asyncio.Event()
    sent_at: list[float] = []

    class SlowTokens:
        async def current(self) -> None:
            await gate.wait()  # a slow token endpoint

        def accepted(self, token: Any) -> None:
            pass

    def answer(url: URL, **kwargs: Any) -> CallbackResult:
        sent_at.append(harness.time.clock())
        return CallbackResult(payload=body())

    mock_http.get(PAGE0, callback=answer)
    throttle = harness.throttle()
    async with aiohttp.ClientSession() as session:
        fetcher = harness.fetcher(session, SlowTokens(), throttle)
        waiting = asyncio.create_task(fetcher.fetch(harness.planner, harness.planner.request(0)))
        await asyncio.sleep(0)  # the worker now waits for its token
        async with throttle.request() as ticket:  # another worker's request gets a 429
            ticket.observe(429, {"Retry-After": "5"})
        cool_until = harness.time.clock() + 5
        gate.set()
        await waiting
    assert sent_at and sent_at[0] >= cool_until


async def test_a_pages_time_starts_after_the_token_refresh_it_waited_for(
    mock_http: aioresponses, harness: Harness
) -> None:
    """Let through the throttle, a worker may still refresh a token (it expired while it
    waited): the API's time for its page starts when the page is sent. Counted from the
    throttle, a slow refresh made the page look queued at the API (which ends the slow start)
    and sent before any cool-down begun meanwhile."""
    calls = 0

    class RefreshingTokens:
        async def current(self) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:  # the second look, past the throttle: a refresh of a second
                await harness.time.sleep(1.0)

        def accepted(self, token: Any) -> None:
            pass

    mock_http.get(PAGE0, payload=body())
    throttle = harness.throttle()
    async with aiohttp.ClientSession() as session:
        fetcher = harness.fetcher(session, RefreshingTokens(), throttle)
        await fetcher.fetch(harness.planner, harness.planner.request(0))

    assert throttle._api_time.shortest == 0.0  # answered at once, not a second later


async def test_a_token_that_goes_stale_during_a_cool_down_is_not_sent(
    mock_http: aioresponses, tmp_path: Path
) -> None:
    """A cool-down outlasting the token: the request goes out with a new one, not the stale one.

    Sent stale, a new token never accepted yet would pass for one the API refuses.
    """
    harness = Harness(make_config(BASE, tmp_path / "out.jsonl"))
    for n in (1, 2):
        mock_http.post(TOKEN_URL, payload={"access_token": f"tok-{n}", "expires_in": 10})
    mock_http.get(PAGE0, payload=body())
    throttle = harness.throttle()
    async with aiohttp.ClientSession() as session:
        manager = TokenManager(
            harness.config.auth,
            session,
            harness.policy,
            harness.stats,
            clock=harness.time.clock,
            throttle=throttle,
        )
        fetcher = Fetcher(harness.config, session, manager, harness.policy, harness.stats, throttle)
        assert (await manager.current()) is not None  # tok-1, good for 9 s of the fake clock
        async with throttle.request() as ticket:  # another worker's request gets a 429
            ticket.observe(429, {"Retry-After": "60"})
        fetched = await fetcher.fetch(harness.planner, harness.planner.request(0))
    assert fetched.page.count == 3
    sent = [c.kwargs["headers"]["Authorization"] for c in data_requests(mock_http)]
    assert sent == ["Bearer tok-2"] and harness.time.clock() >= 1060
    assert harness.stats.token_requests == 2 and harness.stats.retries == {}


async def test_debug_lines_tell_each_request_and_retry_and_info_each_cool_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="harvester")
    settings = DemoSettings(records=3_000, throttle_rate=0.3, retry_after=0, seed=3)
    async with run_demo(settings) as demo:
        config = make_config(
            demo.url,
            tmp_path / "out.jsonl",
            source={"url": f"{demo.url}/items", "params": {"api_key": SECRET}},
        )
        stats = await run(config, policy=no_wait_policy())
    lines = [record.getMessage() for record in caplog.records]
    answered = [line for line in lines if re.search(r"page \d+: .* answered \d{3}$", line)]
    retried = [line for line in lines if "retried in" in line]
    assert len(answered) == stats.requests
    assert len(retried) == sum(stats.retries.values()) > 0
    assert any(line.startswith("cool-down: 429") for line in lines)
    assert not any(SECRET in line for line in lines)
