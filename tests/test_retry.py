"""Retry: what is retryable, how long to wait (Retry-After is the floor), the tenacity loop."""

from __future__ import annotations

import email.utils
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest

from harvester.config import RetryConfig
from harvester.retry import (
    InvalidBody,
    RetryableStatus,
    RetryPolicy,
    in_whole_seconds,
    parse_retry_after,
    retry_cause,
)

WHEN = datetime(2025, 3, 14, 15, 9, 26, tzinfo=UTC)


class FakeSleep:
    """An injected `sleep` that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class TopOfRange(random.Random):
    """A random source whose jitter always picks the ceiling: shows the bare backoff curve."""

    def uniform(self, a: float, b: float) -> float:
        return b


def policy(
    *, rng: random.Random | None = None, sleep: FakeSleep | None = None, **retry: Any
) -> RetryPolicy:
    defaults: dict[str, Any] = {"initial_backoff": 1.0, "max_backoff": 8.0, "max_attempts": 4}
    config = RetryConfig(**{**defaults, **retry})
    if sleep is None:
        return RetryPolicy(config, rng=rng)
    return RetryPolicy(config, rng=rng, sleep=sleep)


def status(code: int, retry_after: float | None = None) -> RetryableStatus:
    return RetryableStatus(code, retry_after=retry_after, body="")


async def call_with_retries(
    p: RetryPolicy,
    fn: Callable[[], Awaitable[str]],
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> str:
    """The way the fetcher drives the loop."""
    async for attempt in p.retrying(on_retry):
        with attempt:
            return await fn()
    raise AssertionError("tenacity neither returned nor raised")


def failing(
    *errors: BaseException, result: str = "done"
) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """An async function that raises `errors` in turn, then returns `result`; and its call log."""
    calls: list[int] = []

    async def fn() -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return fn, calls


# --- parse_retry_after -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 5 ", 5.0), ("0", 0.0), ("1.5", 1.5)],
)
def test_delta_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value) == expected


def test_http_date_counts_from_now() -> None:
    header = email.utils.format_datetime(WHEN, usegmt=True)
    assert parse_retry_after(header, now=WHEN.timestamp() - 30) == 30.0


def test_http_date_without_zone_is_gmt() -> None:
    header = WHEN.strftime("%a, %d %b %Y %H:%M:%S")
    assert parse_retry_after(header, now=WHEN.timestamp() - 10) == 10.0


def test_past_http_date_means_now() -> None:
    header = email.utils.format_datetime(WHEN, usegmt=True)
    assert parse_retry_after(header, now=WHEN.timestamp() + 3600) == 0.0


@pytest.mark.parametrize("value", [None, "", "garbage", "-5", "nan", "inf", "1e400", "soon-ish"])
def test_unusable_value_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=WHEN.timestamp()) is None


# --- wait_for --------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap() -> None:
    p = policy(rng=TopOfRange(), initial_backoff=0.5, max_backoff=6.0)
    assert [p.wait_for(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 6.0, 6.0, 6.0]


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 9])
def test_jitter_stays_in_the_upper_half(attempt: int) -> None:
    p = policy(rng=random.Random(attempt), initial_backoff=1.0, max_backoff=8.0)
    ceiling = min(8.0, 2.0 ** (attempt - 1))
    waits = [p.wait_for(attempt) for _ in range(2000)]
    assert all(ceiling / 2 <= w <= ceiling for w in waits)
    # Jitter actually spreads: both ends of the band are reached.
    assert min(waits) < ceiling * 0.55
    assert max(waits) > ceiling * 0.95


def test_waits_grow_with_the_attempt_number() -> None:
    p = policy(rng=random.Random(3), initial_backoff=1.0, max_backoff=64.0)
    means = [sum(p.wait_for(n) for _ in range(500)) / 500 for n in range(1, 7)]
    assert means == sorted(means)
    assert means[-1] > 20 * means[0]


@pytest.mark.parametrize("retry_after", [3.0, 100.0, 1000.0])
def test_retry_after_is_the_floor_even_above_max_backoff(retry_after: float) -> None:
    for seed in range(200):
        p = policy(rng=random.Random(seed), initial_backoff=1.0, max_backoff=8.0)
        for attempt in range(1, 8):
            wait = p.wait_for(attempt, retry_after)
            assert wait >= retry_after
            if retry_after > 8.0:
                assert wait == retry_after


def test_short_retry_after_leaves_the_backoff() -> None:
    p = policy(rng=random.Random(1), initial_backoff=1.0, max_backoff=8.0)
    assert all(4.0 <= p.wait_for(4, 0.1) <= 8.0 for _ in range(500))


@pytest.mark.parametrize("retry_after", [None, 0.0])
def test_zero_backoff_waits_zero(retry_after: float | None) -> None:
    p = policy(initial_backoff=0.0, max_backoff=0.0)
    assert [p.wait_for(n, retry_after) for n in range(1, 10)] == [0.0] * 9


def test_zero_backoff_still_honours_retry_after() -> None:
    assert policy(initial_backoff=0.0, max_backoff=0.0).wait_for(1, 5.0) == 5.0


def test_wait_for_a_very_late_attempt_is_capped() -> None:
    assert policy(rng=TopOfRange(), max_attempts=5000).wait_for(2000) == 8.0


# --- what is retryable -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (status(503), "5xx"),
        (status(500), "5xx"),
        (status(429), "429"),
        (status(408), "408"),
        (InvalidBody("cut short", body="{"), "invalid_body"),
        (orjson.JSONDecodeError("bad", "{", 1), "invalid_body"),
        (aiohttp.ClientPayloadError("cut short"), "invalid_body"),
        (aiohttp.ServerDisconnectedError(), "connection"),
        (aiohttp.ClientConnectionError("reset"), "connection"),
        (TimeoutError(), "timeout"),
        (aiohttp.ServerTimeoutError("slow"), "timeout"),
        (ValueError("no"), None),
        (KeyError("no"), None),
        (aiohttp.ClientResponseError(None, (), status=404), None),  # type: ignore[arg-type]
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_retry_cause_and_is_retryable(exc: BaseException, cause: str | None) -> None:
    assert retry_cause(exc) == cause
    assert policy().is_retryable(exc) is (cause is not None)


def test_retry_after_above_max_retry_after_fails_where_long_quotas_fail() -> None:
    p = policy(max_retry_after=600.0, on_long_quota="fail")
    assert p.is_retryable(status(503, retry_after=600.0))
    assert not p.is_retryable(status(503, retry_after=601.0))
    assert not p.is_retryable(status(429, retry_after=86400.0))


def test_retry_after_above_max_retry_after_is_waited_for_by_default() -> None:
    p = policy(max_retry_after=600.0)
    assert p.is_retryable(status(429, retry_after=86400.0))
    assert p.wait_for(1, retry_after=86400.0) == 86400.0  # never shortened


def test_a_held_first_refusal_waits_for_its_retry_after_alone() -> None:
    """A refusal a throttle's cool-down holds every worker for: the first retry waits for that
    alone (its Retry-After, never shortened; untold, the cool-down's own pause), not a backoff
    of its own on top that would hold the oldest page back while the others go on."""
    p = policy(rng=TopOfRange(), initial_backoff=0.5, max_backoff=8.0)
    assert p.wait_for(1, None, held=True) == 0.0
    assert p.wait_for(1, 0.02, held=True) == 0.02
    assert p.wait_for(1, 3.0, held=True) == 3.0


def test_a_held_request_refused_again_backs_off_as_any_other() -> None:
    """Only the first step of the schedule is skipped: a page lasts as long as before against
    a long refusal (a quota window with no Retry-After, an overloaded server)."""
    p = policy(rng=TopOfRange(), initial_backoff=0.5, max_backoff=8.0)
    assert [p.wait_for(n, None, held=True) for n in range(1, 7)] == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert [p.wait_for(n, held=True) for n in range(2, 7)] == [p.wait_for(n) for n in range(2, 7)]
    assert p.wait_for(2, 3.0, held=True) == 3.0  # a Retry-After is still the floor


def test_retry_after_zero_is_backed_off_held_or_not() -> None:
    """A "Retry-After: 0" pauses no worker (the cool-down holds nothing): the backoff stands."""
    p = policy(rng=TopOfRange(), initial_backoff=0.5, max_backoff=8.0)
    assert [p.wait_for(n, 0.0, held=True) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


async def test_only_refusals_are_held() -> None:
    """In a loop whose refusals a throttle holds, a 429 without Retry-After is retried at once
    (the throttle's cool-down is its wait); a 500 still backs off, and so does a request
    refused after an earlier failure."""
    sleep = FakeSleep()
    p = policy(sleep=sleep, rng=TopOfRange(), initial_backoff=0.5, max_backoff=8.0, max_attempts=8)
    fn, calls = failing(status(429), status(500), status(503), status(503, retry_after=2.0))

    async for attempt in p.retrying(held=True):
        with attempt:
            await fn()

    assert len(calls) == 5
    assert sleep.waits == [0.0, 1.0, 2.0, 4.0]


# --- the tenacity loop -----------------------------------------------------------------------


async def test_retries_until_success_and_waits_at_least_retry_after() -> None:
    sleep = FakeSleep()
    p = policy(sleep=sleep, rng=random.Random(0), max_attempts=4)
    fn, calls = failing(status(503, retry_after=7), status(503, retry_after=7))
    retried: list[tuple[BaseException, float]] = []

    result = await call_with_retries(p, fn, lambda exc, wait: retried.append((exc, wait)))

    assert result == "done"
    assert len(calls) == 3
    assert len(sleep.waits) == 2
    assert all(w >= 7 for w in sleep.waits)
    assert [wait for _, wait in retried] == sleep.waits
    assert all(isinstance(exc, RetryableStatus) and exc.status == 503 for exc, _ in retried)


async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    sleep = FakeSleep()
    p = policy(sleep=sleep, max_attempts=3)
    errors = [status(502), status(503), status(504), status(500)]
    fn, calls = failing(*errors)

    with pytest.raises(RetryableStatus) as info:
        await call_with_retries(p, fn)

    assert info.value is errors[2]
    assert len(calls) == 3
    assert len(sleep.waits) == 2


async def test_non_retryable_error_is_raised_at_once() -> None:
    sleep = FakeSleep()
    retried: list[tuple[BaseException, float]] = []
    fn, calls = failing(ValueError("bad record"))

    with pytest.raises(ValueError, match="bad record"):
        await call_with_retries(
            policy(sleep=sleep), fn, lambda exc, wait: retried.append((exc, wait))
        )

    assert (calls, sleep.waits, retried) == ([1], [], [])


async def test_retry_after_beyond_the_limit_is_raised_at_once() -> None:
    sleep = FakeSleep()
    fn, calls = failing(status(503, retry_after=3600))
    with pytest.raises(RetryableStatus):
        await call_with_retries(
            policy(sleep=sleep, max_retry_after=600.0, on_long_quota="fail"), fn
        )
    assert (calls, sleep.waits) == ([1], [])


async def test_one_attempt_means_no_retry() -> None:
    sleep = FakeSleep()
    fn, calls = failing(status(503))
    with pytest.raises(RetryableStatus):
        await call_with_retries(policy(sleep=sleep, max_attempts=1), fn)
    assert (calls, sleep.waits) == ([1], [])


async def test_mixed_causes_are_all_retried() -> None:
    sleep = FakeSleep()
    p = policy(sleep=sleep, initial_backoff=0.0, max_backoff=0.0, max_attempts=5)
    fn, calls = failing(
        aiohttp.ServerDisconnectedError(), TimeoutError(), InvalidBody("x", body="")
    )
    assert await call_with_retries(p, fn) == "done"
    assert (len(calls), sleep.waits) == (4, [0.0, 0.0, 0.0])


@pytest.mark.parametrize(
    ("value", "whole"),
    [("1", True), ("120", True), ("Wed, 21 Oct 2026 07:28:00 GMT", True), ("0.25", False)],
)
def test_a_retry_after_in_whole_seconds_is_told_from_an_exact_one(value: str, whole: bool) -> None:
    assert parse_retry_after(value) is not None
    assert in_whole_seconds(value) is whole
