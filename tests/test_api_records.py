"""stream() and iter_records(): the records of a JSON Lines harvest, in order, as values; no file,
no checkpoint; leaving the loop early ends the harvest cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

import harvester
from harvester.demo import DemoServer, DemoSettings, run_demo
from harvester.read import ExactNumber, encode_records

from .api_helpers import demo_in_thread, finished, start_python
from .conftest import SECRET, write_config
from .test_crash import crash_config


@pytest.fixture
async def exact_demo() -> Any:
    """The demo API with numbers no double holds, so records carry ExactNumber values."""
    async with run_demo(DemoSettings(records=1_000, client_secret=SECRET, exact_numbers=True)) as d:
        yield d


@pytest.mark.parametrize("style", ["offset", "open end", "cursor windows"])
async def test_stream_gives_exactly_the_records_a_jsonl_harvest_writes(
    exact_demo: DemoServer, tmp_path: Path, style: str
) -> None:
    config = crash_config(tmp_path, exact_demo.url, style)  # the crash test's styles
    await harvester.harvest_async(config, progress=False)
    written = (tmp_path / "out" / "items.jsonl").read_bytes()
    (tmp_path / "out" / "items.jsonl").unlink()
    records = [r async for r in harvester.stream(config, progress=False)]
    assert len(records) == 1_000
    assert encode_records(records) == written  # the same values, the same order
    assert any(isinstance(v, ExactNumber) for r in records for v in r.values())
    assert sorted(os.listdir(tmp_path / "out")) == []  # no file, no checkpoint, no lock


async def test_stream_takes_max_records_and_overrides(demo: DemoServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, demo.url)
    records = [
        r
        async for r in harvester.stream(
            config, max_records=75, overrides={"pagination.page_size": 20}, progress=False
        )
    ]
    assert [r["id"] for r in records] == list(range(75))


async def test_breaking_out_of_stream_ends_the_harvest_cleanly(
    demo: DemoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path, demo.url, concurrency__workers=4)
    async with contextlib.aclosing(harvester.stream(config, progress=False)) as records:
        async for record in records:
            if record["id"] == 120:
                break
    # No worker, no checkpointer, no session left (the demo API's own tasks aside).
    serving = ("harvester/demo", "aiohttp/web_")
    left = [t for t in asyncio.all_tasks() if not any(s in repr(t) for s in serving)]
    assert left == [asyncio.current_task()]
    gc.collect()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_iter_records_in_a_script_and_under_a_running_loop(tmp_path: Path) -> None:
    with demo_in_thread(DemoSettings(records=600, client_secret=SECRET)) as demo:
        config = write_config(tmp_path, demo.url)
        plain = list(harvester.iter_records(config, progress=False))

        async def inside_a_coroutine() -> list[Any]:
            return list(harvester.iter_records(config, progress=False))

        under_loop = asyncio.run(inside_a_coroutine())
    assert [r["id"] for r in plain] == list(range(600))
    assert under_loop == plain


def test_breaking_out_of_iter_records_stops_the_harvest_and_its_thread(tmp_path: Path) -> None:
    settings = DemoSettings(records=5_000, client_secret=SECRET, latency=0.01)
    with demo_in_thread(settings) as demo:
        config = write_config(tmp_path, demo.url, concurrency__workers=4)
        for record in harvester.iter_records(config, progress=False):
            if record["id"] == 99:
                break
        requests = demo.server.stats.data_requests
    # The generator was closed at the break: its thread is gone, the harvest did not go on.
    assert not [t for t in threading.enumerate() if t.name.startswith("harvester")]
    assert requests < 100


def test_a_slow_consumer_holds_the_harvest_back(tmp_path: Path) -> None:
    # 100 pages of 50. Ahead of the page being read there can only be: the iterator's buffer
    # (8 pages) and the page waiting for room in it, the writer's hand-over (2), the reorder
    # window (4) and the workers' pages in flight (4): about 20 requests, never the whole dataset.
    with demo_in_thread(DemoSettings(records=5_000, client_secret=SECRET)) as demo:
        config = write_config(
            tmp_path, demo.url, concurrency__workers=4, concurrency__max_buffered_pages=4
        )
        records = harvester.iter_records(config, progress=False)
        first = next(records)
        ahead = demo.after_requests(40)
        with contextlib.suppress(TimeoutError):
            ahead.result(timeout=2)  # never reached: the harvest waits for this reader
        ahead.cancel()
        requested = demo.server.stats.data_requests
        records.close()
    assert first["id"] == 0
    assert requested <= 25


async def test_iter_records_in_a_plain_script(demo: DemoServer, tmp_path: Path) -> None:
    write_config(tmp_path, demo.url)
    code = (
        "import harvester\n"
        "ids = [r['id'] for r in harvester.iter_records('config.yaml', progress=False)]\n"
        "print(len(ids), ids == sorted(ids))\n"
        "for r in harvester.iter_records('config.yaml', progress=False):\n"
        "    break\n"
        "print('left early', r['id'])\n"
    )
    status, stdout, stderr = await finished(await start_python(code, tmp_path))
    assert status == 0, stderr
    assert stdout.split("\n")[:2] == ["1000 True", "left early 0"]
    assert stderr == ""  # no warning, no unclosed session


def test_iter_records_needs_no_output_section(tmp_path: Path) -> None:
    with demo_in_thread(DemoSettings(records=600, client_secret=SECRET)) as demo:
        raw = yaml.safe_load(write_config(tmp_path, demo.url).read_text())
        del raw["output"]
        records = list(harvester.iter_records(raw, max_records=60, progress=False))
    assert [r["id"] for r in records] == list(range(60))
