"""Every pagination style against the demo API, with faults and token revocation switched on."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from aioresponses import aioresponses

from harvester.config import Config, parse_config
from harvester.demo import DemoSettings, run_demo
from harvester.errors import AuthError, RecordsError
from harvester.runner import run
from harvester.stats import Stats

from .conftest import expected_bytes, faulty_demo, make_config, no_wait_policy

# One file each, of one endpoint: several resources are tests/test_resources.py's, and the
# incremental example writes a folder (tests/test_incremental.py runs it).
EXAMPLES = sorted(
    path
    for path in (Path(__file__).parent.parent / "examples").glob("*.yaml")
    if not {"resources", "incremental"} & set(yaml.safe_load(path.read_text()))
)
RECORDS = 3_000
FAULTY = faulty_demo(RECORDS, revoke_tokens_after=25, seed=2)


def example_config(path: Path, url: str, out: Path, **pagination: Any) -> Config:
    """An example config pointed at the demo API running at `url`."""
    raw = yaml.safe_load(path.read_text().replace("http://127.0.0.1:8765", url))
    raw["output"]["path"] = str(out)
    raw["retry"] = {"max_attempts": 10}
    raw["pagination"].update(pagination)
    return parse_config(raw, environ={})


def test_every_style_has_an_example() -> None:
    styles = {yaml.safe_load(p.read_text())["pagination"]["style"] for p in EXAMPLES}
    assert styles == {"offset", "range", "page", "cursor", "link"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
async def test_each_example_harvests_every_record_once_in_order(
    example: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    async with run_demo(FAULTY) as demo:
        stats = await run(
            example_config(example, demo.url, out), policy=no_wait_policy(max_attempts=10)
        )
        served = demo.stats.as_dict()
    assert out.read_bytes() == expected_bytes(RECORDS)
    assert stats.records == RECORDS and not stats.warnings
    assert served["faults"]["401"] >= 1 and stats.token_requests >= 2  # revoked mid-run


async def test_unknown_total_wastes_at_most_one_request_per_worker(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    example = next(p for p in EXAMPLES if p.stem == "unknown-total")
    async with run_demo(DemoSettings(records=2_550)) as demo:
        config = example_config(example, demo.url, out)
        stats = await run(config, policy=no_wait_policy())
        served = demo.stats.data_requests
    assert out.read_bytes() == expected_bytes(2_550)
    # 25 full pages, the short one, and the ask for the records right after its own, which
    # proves that nothing follows them.
    needed = 27
    assert served - needed == stats.discarded_pages <= config.concurrency.workers


async def test_an_empty_page_past_the_end_of_an_exact_multiple_ends_it(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    async with run_demo(DemoSettings(records=500)) as demo:
        config = make_config(
            demo.url,
            out,
            source={"url": f"{demo.url}/stream"},
            pagination={"total": "unknown"},
            concurrency={"workers": 3},
        )
        stats = await run(config, policy=no_wait_policy())
    assert out.read_bytes() == expected_bytes(500)
    assert stats.discarded_pages <= 3


@pytest.mark.parametrize(("workers", "window"), [(1, 1), (1, 32), (8, 1), (8, 32)])
async def test_a_page_cap_with_unknown_total_is_followed_not_taken_for_the_end(
    tmp_path: Path, workers: int, window: int
) -> None:
    out = tmp_path / "out.jsonl"
    async with run_demo(DemoSettings(records=1_000, max_page_size=40)) as demo:
        config = make_config(
            demo.url,
            out,
            source={"url": f"{demo.url}/stream"},
            pagination={"total": "unknown"},
            concurrency={"workers": workers, "max_buffered_pages": window},
        )
        stats = await run(config, policy=no_wait_policy())
    assert out.read_bytes() == expected_bytes(1_000)
    assert any("at most 40 records per page" in w for w in stats.warnings)


@pytest.mark.parametrize("stem", ["cursor", "link"])
async def test_a_looping_api_fails_instead_of_looping_forever(stem: str, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    example = next(p for p in EXAMPLES if p.stem == stem)
    async with run_demo(DemoSettings(records=1_000, loop_cursor_at=300)) as demo:
        with pytest.raises(RecordsError, match="looping") as caught:
            await run(example_config(example, demo.url, out), policy=no_wait_policy())
    assert caught.value.page == 4  # pages 0..3 were new; the fifth repeats the third
    assert not out.exists()


async def test_a_next_link_to_another_host_never_gets_the_token(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    example = next(p for p in EXAMPLES if p.stem == "link-body")
    # 127.0.0.2 is loopback too, but another host as far as URLs go.
    async with run_demo(DemoSettings(records=500), host="127.0.0.2") as other:
        settings = DemoSettings(records=500, cross_host_next=other.url)
        async with run_demo(settings) as demo:
            with pytest.raises(AuthError, match="allow_cross_host") as caught:
                await run(example_config(example, demo.url, out), policy=no_wait_policy())
        assert other.stats.faults["401"] == 1  # it was asked, without a token
    assert "127.0.0.2" in caught.value.url


async def test_allow_cross_host_sends_the_token_to_the_other_host(
    mock_http: aioresponses, tmp_path: Path
) -> None:
    mock_http.post("https://api.test/oauth2/token", payload={"access_token": "t-1"})
    first = {"results": [{"id": 0}], "next": "https://cdn.test/page2"}
    mock_http.get(re.compile(r"^https://api\.test/link.*"), payload=first)
    mock_http.get("https://cdn.test/page2", payload={"results": [{"id": 1}], "next": None})
    raw_pagination = {"style": "link", "next_url": "body:next", "allow_cross_host": True}
    config = make_config(
        "https://api.test",
        tmp_path / "o.jsonl",
        source={"url": "https://api.test/link", "records": "results"},
        pagination={**raw_pagination, "total": "unknown"},
    )
    await run(config, policy=no_wait_policy())
    (call,) = [
        c for (m, u), calls in mock_http.requests.items() if u.host == "cdn.test" for c in calls
    ]
    assert call.kwargs["headers"]["Authorization"] == "Bearer t-1"


async def test_partitioned_cursor_is_identical_to_the_sequential_harvest(tmp_path: Path) -> None:
    example = next(p for p in EXAMPLES if p.stem == "cursor")
    sequential, parallel = tmp_path / "seq.jsonl", tmp_path / "par.jsonl"
    partition = {"param_from": "id_from", "param_to": "id_to", "start": 0, "end": 2_000, "parts": 7}
    async with run_demo(DemoSettings(records=2_000)) as demo:
        await run(example_config(example, demo.url, sequential), policy=no_wait_policy())
        config = example_config(example, demo.url, parallel, partition=partition)
        stats = await run(config, policy=no_wait_policy(), max_records=None)
    assert parallel.read_bytes() == sequential.read_bytes() == expected_bytes(2_000)
    assert stats.records == 2_000
    assert not list(tmp_path.glob("*.part*"))  # the window spools are gone


async def test_max_records_across_partition_windows(tmp_path: Path) -> None:
    example = next(p for p in EXAMPLES if p.stem == "cursor-partitioned")
    out = tmp_path / "out.jsonl"
    async with run_demo(DemoSettings(records=20_000)) as demo:
        stats = await run(
            example_config(example, demo.url, out), policy=no_wait_policy(), max_records=3_210
        )
    assert out.read_bytes() == expected_bytes(3_210)
    assert stats.records == 3_210


async def test_a_total_that_disagrees_with_the_records_is_a_warning_with_both_numbers(
    mock_http: aioresponses, tmp_path: Path
) -> None:
    mock_http.post("https://api.test/oauth2/token", payload={"access_token": "t-1"})
    page0 = {"results": [{"id": 0}, {"id": 1}], "count": 5, "next": "/link?offset=2"}
    mock_http.get("https://api.test/link?limit=100", payload=page0)
    mock_http.get("https://api.test/link?offset=2", payload={"results": [{"id": 2}], "count": 5})
    config = make_config(
        "https://api.test",
        tmp_path / "o.jsonl",
        source={"url": "https://api.test/link", "records": "results"},
        pagination={"style": "link", "next_url": "body:next", "total": "body:count"},
    )
    stats = Stats()
    await run(config, stats=stats, policy=no_wait_policy())
    assert stats.records == 3
    assert any("advertised 5 records and 3 were written" in w for w in stats.warnings)
    assert stats.as_dict()["total_records"] == 5


@pytest.mark.parametrize("max_records", [None, 150])
async def test_unknown_total_with_a_window_smaller_than_the_workers_finishes(
    tmp_path: Path, max_records: int | None
) -> None:
    """Workers parked beyond the end (or past --max-records) must be let go, not wait forever."""
    out = tmp_path / "out.jsonl"
    async with run_demo(DemoSettings(records=250)) as demo:
        config = make_config(
            demo.url,
            out,
            source={"url": f"{demo.url}/stream"},
            pagination={"total": "unknown"},
            concurrency={"workers": 8, "max_buffered_pages": 2},
        )
        await asyncio.wait_for(
            run(config, policy=no_wait_policy(), max_records=max_records), timeout=30
        )
    assert out.read_bytes() == expected_bytes(max_records or 250)


async def test_max_records_beyond_a_partitioned_dataset_counts_what_was_written(
    tmp_path: Path,
) -> None:
    example = next(p for p in EXAMPLES if p.stem == "cursor-partitioned")
    out = tmp_path / "out.jsonl"
    async with run_demo(DemoSettings(records=1_000)) as demo:
        stats = await run(
            example_config(example, demo.url, out), policy=no_wait_policy(), max_records=5_000
        )
    assert out.read_bytes() == expected_bytes(1_000)
    assert stats.records == 1_000
