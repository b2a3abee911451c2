"""End to end against the demo API on a loopback port: every record exactly once, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from harvester.config import Config
from harvester.demo import DemoSettings, run_demo
from harvester.errors import AuthError, RecordsError
from harvester.runner import run
from harvester.stats import Stats

from .conftest import HANG, expected_bytes, faulty_demo, make_config, no_wait_policy


async def harvest(config: Config, **kwargs: Any) -> Stats:
    async with asyncio.timeout(HANG):  # a regression fails this test, not the suite
        return await run(config, policy=no_wait_policy(**_retry(config)), **kwargs)


def _retry(config: Config) -> dict[str, Any]:
    return {"max_attempts": config.retry.max_attempts, "statuses": config.retry.statuses}


def range_sections(url: str, **pagination: Any) -> dict[str, Any]:
    return {
        "source": {"url": f"{url}/range-items", "records": ""},
        "pagination": {"style": "range", "total": "content-range", **pagination},
    }


async def test_offset_harvest_is_exact(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(DemoSettings(records=2_345)) as demo:
        stats = await harvest(make_config(demo.url, out))
    assert out.read_bytes() == expected_bytes(2_345)
    assert (stats.records, stats.pages, stats.total_records) == (2_345, 24, 2_345)
    assert stats.token_requests == 1 and stats.retries == {}
    assert not Path(f"{out}.part").exists()


async def test_total_from_a_header_and_a_start_offset(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(DemoSettings(records=1_000)) as demo:
        config = make_config(
            demo.url, out, pagination={"total": "header:X-Total-Count", "start": 150}
        )
        await harvest(config)
    assert out.read_bytes() == expected_bytes(850, first=150)


async def test_range_harvest_is_exact(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(DemoSettings(records=1_234)) as demo:
        stats = await harvest(make_config(demo.url, out, **range_sections(demo.url)))
    assert out.read_bytes() == expected_bytes(1_234)
    assert stats.pages == 13


async def test_a_server_ignoring_range_is_read_once(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(DemoSettings(records=777, ignore_range=True)) as demo:
        stats = await harvest(make_config(demo.url, out, **range_sections(demo.url)))
        data_requests = demo.stats.data_requests
    assert out.read_bytes() == expected_bytes(777)
    assert data_requests == 1 and stats.pages == 1


async def test_a_server_capping_the_page_size_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(DemoSettings(records=1_000, max_page_size=30)) as demo:
        stats = await harvest(make_config(demo.url, out, pagination={"page_size": 100}))
    assert out.read_bytes() == expected_bytes(1_000)
    assert any("page_size lowered from 100 to 30" in w for w in stats.warnings)


async def test_an_empty_dataset_gives_an_empty_file(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(DemoSettings(records=0)) as demo:
        stats = await harvest(make_config(demo.url, out))
    assert out.read_bytes() == b"" and stats.records == 0


async def test_max_records_stops_early(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(DemoSettings(records=5_000)) as demo:
        stats = await harvest(make_config(demo.url, out), max_records=333)
        data_requests = demo.stats.data_requests
    assert out.read_bytes() == expected_bytes(333)
    assert stats.records == 333 and data_requests <= 4


async def test_faults_token_expiry_and_429s_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    """The issue's acceptance run: 20,000 records, latency, 5% faults, 2 s tokens, 429s."""
    out = tmp_path / "items.jsonl"
    settings = faulty_demo(20_000, latency=0.08, seed=1)
    async with run_demo(settings) as demo:
        config = make_config(demo.url, out, concurrency={"workers": 8}, retry={"max_attempts": 10})
        stats = await harvest(config)
        served = demo.stats.as_dict()
    assert out.read_bytes() == expected_bytes(20_000)
    assert stats.records == 20_000
    faults = served["faults"]
    assert faults["5xx"] and faults["drop"] and faults["truncate"] and faults["429"]
    # A dropped connection is retried once inside aiohttp itself (any idempotent GET, on a new
    # connection too), so only a second drop in a row reaches our retry counter: not asserted.
    assert stats.retries["5xx"] and stats.retries["429"]
    assert stats.retries["invalid_body"]
    # One token per lifetime (refreshed a little early), not one per worker or per request.
    lifetimes = stats.elapsed / 2.0
    assert 2 <= stats.token_requests <= lifetimes / 0.9 + 2
    assert stats.token_requests < config.concurrency.workers


async def test_a_burst_of_401s_mid_run_causes_one_new_token(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    # The server revokes every token at its 10th data request: the workers in flight then all
    # get 401 for the same token, and exactly one new token must follow.
    settings = DemoSettings(records=3_000, latency=0.01, revoke_tokens_after=10)
    async with run_demo(settings) as demo:
        stats = await harvest(make_config(demo.url, out, concurrency={"workers": 8}))
        rejected = demo.stats.faults["401"]
    assert out.read_bytes() == expected_bytes(3_000)
    assert stats.token_requests == 2
    assert stats.retries["401"] == rejected >= 1


async def test_wrong_scope_fails_fast(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(DemoSettings(records=100)) as demo:
        with pytest.raises(AuthError) as caught:
            await harvest(make_config(demo.url, out, auth={"scope": "admin"}))
        token_requests = demo.stats.token_requests
    assert caught.value.error == "invalid_scope" and token_requests == 1
    assert not out.exists()


async def test_a_missing_total_is_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(DemoSettings(records=100)) as demo:
        with pytest.raises(RecordsError, match="total.missing"):
            await harvest(make_config(demo.url, out, pagination={"total": "body:total.missing"}))
    assert not out.exists()
