"""The fault suite: each fault alone and all together, against the demo API on loopback.

Every run must write exactly the expected records (none lost, none duplicated), and count each
retry under its cause, in step with what the server says it did. Backoff is zero (config), so
the only waits are the server's own: Retry-After, the latency, the answers slower than the
client's timeout.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from harvester.demo import DemoSettings, run_demo
from harvester.runner import run
from harvester.stats import Stats

from .conftest import HANG, expected_bytes, make_config

RECORDS = 5_000
# Enough attempts that a page outlives any run of faults these rates can draw.
RETRY = {"max_attempts": 30, "initial_backoff": 0, "max_backoff": 0}
WORKERS = 8
TIMEOUT = 0.3  # source.timeout: well above a loopback answer, well below slow_seconds
LIFETIME = 0.2  # token_lifetime: several expiries in a run of under a second


async def harvest(
    tmp_path: Path, settings: DemoSettings, **sections: dict[str, Any]
) -> tuple[Stats, dict[str, Any]]:
    """Harvest the demo API with `settings`; check the output; the client's and server's stats."""
    out = tmp_path / "items.jsonl"
    async with run_demo(settings) as demo:
        concurrency = {"workers": WORKERS, "max_buffered_pages": 4 * WORKERS}
        config = make_config(
            demo.url,
            out,
            retry=RETRY,
            source={"timeout": TIMEOUT},
            concurrency=concurrency,
            **sections,
        )
        async with asyncio.timeout(HANG):  # a regression fails this test, not the suite
            stats = await run(config, stats=Stats())
        served = demo.stats.as_dict()
    assert out.read_bytes() == expected_bytes(settings.records)
    assert stats.records == settings.records and not stats.warnings
    return stats, served


def hidden_drops(stats: Stats, served: dict[str, Any]) -> int:
    """Drops aiohttp retried on its own: it resends a GET once after a disconnect, unseen by us.

    Every request of ours reaches the server once, plus once more for each such resend.
    """
    return int(served["data_requests"]) - stats.requests


async def test_5xx_answers(tmp_path: Path) -> None:
    stats, served = await harvest(tmp_path, DemoSettings(records=RECORDS, fault_rate=0.1))
    assert stats.retries["5xx"] == served["faults"]["5xx"] > 0
    assert set(stats.retries) == {"5xx"}


async def test_dropped_connections(tmp_path: Path) -> None:
    # Half the requests dropped: aiohttp's own resend hides a single drop, so only a drop of the
    # resend as well reaches our retries, about one attempt in four.
    stats, served = await harvest(tmp_path, DemoSettings(records=RECORDS, drop_rate=0.5))
    hidden = hidden_drops(stats, served)
    assert stats.retries["connection"] == served["faults"]["drop"] - hidden > 0
    assert hidden > 0 and set(stats.retries) == {"connection"}


async def test_truncated_bodies(tmp_path: Path) -> None:
    # Two ways a body comes short: JSON cut with a matching Content-Length (an orjson error), and
    # the connection closed short of the Content-Length (aiohttp's ClientPayloadError).
    settings = DemoSettings(records=RECORDS, truncate_rate=0.05, cut_rate=0.05, seed=3)
    stats, served = await harvest(tmp_path, settings)
    faults = served["faults"]
    assert faults["truncate"] > 0 and faults["cut"] > 0
    assert stats.retries["invalid_body"] == faults["truncate"] + faults["cut"]
    assert set(stats.retries) == {"invalid_body"}


async def test_answers_slower_than_the_timeout(tmp_path: Path) -> None:
    settings = DemoSettings(records=RECORDS, slow_rate=0.1, slow_seconds=10 * TIMEOUT)
    stats, served = await harvest(tmp_path, settings)
    assert stats.retries["timeout"] == served["faults"]["slow"] > 0
    assert set(stats.retries) == {"timeout"}


async def test_tokens_expiring_every_fifth_of_a_second(tmp_path: Path) -> None:
    # 100 pages at 50 ms over 8 workers: about 0.65 s, three or more token lifetimes.
    settings = DemoSettings(records=RECORDS, token_lifetime=LIFETIME, latency=0.05)
    stats, served = await harvest(tmp_path, settings, pagination={"page_size": 50})
    # Refreshed ahead of expiry (at 90% of the lifetime), once per lifetime, never per worker;
    # a request that still meets an expired token is one 401 and shares the next refresh.
    assert 3 <= stats.token_requests <= stats.elapsed / (0.9 * LIFETIME) + 2
    assert stats.token_requests == served["tokens_issued"]
    assert stats.retries.get("401", 0) == served["faults"]["401"]


async def test_a_burst_of_401s(tmp_path: Path) -> None:
    # Every token revoked at once mid-run, as when the API rotates its keys. The token endpoint
    # takes 50 ms, so the workers keep sending the old token meanwhile: each gets one 401, then
    # waits for the one new token that serves them all.
    settings = DemoSettings(records=RECORDS, revoke_tokens_after=20, token_latency=0.05)
    stats, served = await harvest(tmp_path, settings)
    assert 1 < stats.retries["401"] == served["faults"]["401"] <= WORKERS
    assert stats.token_requests == 2 and set(stats.retries) == {"401"}


async def test_a_429_storm_with_retry_after(tmp_path: Path) -> None:
    # Late in the run: the throttle takes the storm for a rate limit and learns a rate from the
    # successes of the second before it, which the rest of the run then keeps to.
    settings = DemoSettings(records=RECORDS, storm_at=40, storm_seconds=0.3, retry_after=0.1)
    stats, served = await harvest(tmp_path, settings)
    assert stats.retries["429"] == served["faults"]["429_storm"] == served["statuses"][429] > 0
    assert stats.cool_downs >= 1 and set(stats.retries) == {"429"}


async def test_every_fault_at_once(tmp_path: Path) -> None:
    settings = DemoSettings(
        records=RECORDS,
        latency=0.01,
        fault_rate=0.1,
        drop_rate=0.05,
        truncate_rate=0.03,
        cut_rate=0.03,
        slow_rate=0.03,
        slow_seconds=10 * TIMEOUT,
        token_lifetime=LIFETIME,
        revoke_tokens_after=30,
        storm_at=60,
        storm_seconds=0.3,
        retry_after=0.05,
        seed=7,
    )
    stats, served = await harvest(tmp_path, settings)
    faults, retries = served["faults"], stats.retries
    assert retries["5xx"] == faults["5xx"] > 0
    assert retries["connection"] == faults["drop"] - hidden_drops(stats, served)
    assert retries["invalid_body"] == faults["truncate"] + faults["cut"] > 0
    assert retries["timeout"] == faults["slow"] > 0
    assert retries["401"] == faults["401"] > 0
    assert retries["429"] == faults["429_storm"] == served["statuses"][429] > 0
    assert 2 <= stats.token_requests <= stats.elapsed / (0.9 * LIFETIME) + 3
