"""The ordered sink: shuffled pages come out in order; the window bounds what is buffered."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import orjson
import pytest

from harvester.errors import OutputError
from harvester.sink import OrderedSink, Page
from harvester.stats import Stats


def page(index: int, size: int = 3) -> Page:
    records = [{"id": index * size + i} for i in range(size)]
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    return Page(index, data, size)


def ids(path: Path) -> list[int]:
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


async def test_shuffled_pages_come_out_in_order(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    order = list(range(50))
    random.Random(7).shuffle(order)
    stats = Stats()
    async with OrderedSink(out, window=50, stats=stats) as sink:
        for index in order:
            await sink.put(page(index))
        await sink.finish()
    assert ids(out) == list(range(150))
    assert (stats.pages, stats.records, stats.bytes) == (50, 150, out.stat().st_size)
    assert not (tmp_path / "out.jsonl.part").exists()


async def test_committed_counts_only_contiguous_pages(tmp_path: Path) -> None:
    async with OrderedSink(tmp_path / "o.jsonl", window=10, stats=Stats()) as sink:
        await sink.put(page(1))
        await sink.put(page(2))
        assert (sink.committed_pages, sink.committed_records, sink.buffered) == (0, 0, 2)
        await sink.put(page(0))
        assert (sink.committed_pages, sink.committed_records, sink.buffered) == (3, 9, 0)
        assert sink.committed_bytes == len(page(0).data) * 3


async def test_window_blocks_pages_beyond_it_until_the_oldest_is_written(tmp_path: Path) -> None:
    async with OrderedSink(tmp_path / "o.jsonl", window=4, stats=Stats()) as sink:
        await sink.wait_for_slot(3)  # inside the window: returns at once
        waiter = asyncio.create_task(sink.wait_for_slot(4))
        for index in (1, 2, 3):
            await sink.put(page(index))
        await asyncio.sleep(0)  # let the waiter run: it must still be blocked
        assert not waiter.done()
        await sink.put(page(0))
        await asyncio.wait_for(waiter, timeout=5)
        assert sink.committed_pages == 4


async def test_buffered_pages_never_exceed_the_window(tmp_path: Path) -> None:
    """Workers finishing in reverse order: what waits in memory stays below the window."""
    window, most = 8, 0
    async with OrderedSink(tmp_path / "o.jsonl", window=window, stats=Stats()) as sink:

        async def worker(index: int) -> None:
            nonlocal most
            await sink.wait_for_slot(index)
            # Later pages finish first, the worst case for reordering.
            for _ in range(window - index % window):
                await asyncio.sleep(0)
            await sink.put(page(index))
            most = max(most, sink.buffered)

        async with asyncio.TaskGroup() as group:
            for index in range(100):
                group.create_task(worker(index))
        await sink.finish()
    assert most < window
    assert ids(tmp_path / "o.jsonl") == list(range(300))


async def test_unfinished_harvest_leaves_only_the_part_file(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    with pytest.raises(RuntimeError, match="boom"):
        async with OrderedSink(out, window=4, stats=Stats()) as sink:
            await sink.put(page(0))
            raise RuntimeError("boom")
    assert not out.exists()
    assert (tmp_path / "o.jsonl.part").exists()


async def test_finish_replaces_an_existing_output_atomically(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    out.write_text("old\n")
    async with OrderedSink(out, window=4, stats=Stats()) as sink:
        await sink.put(page(0))
        assert out.read_text() == "old\n"  # untouched until the harvest is complete
        await sink.finish()
    assert ids(out) == [0, 1, 2]


async def test_max_records_cuts_the_last_page(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    stats = Stats()
    async with OrderedSink(out, window=4, stats=stats, max_records=5) as sink:
        await sink.put(page(0))
        assert not sink.full
        await sink.put(page(2))
        await sink.put(page(1))
        assert sink.full
        await sink.finish()
    assert ids(out) == [0, 1, 2, 3, 4]
    assert stats.records == 5


async def test_a_page_delivered_twice_is_a_bug_not_data(tmp_path: Path) -> None:
    async with OrderedSink(tmp_path / "o.jsonl", window=4, stats=Stats()) as sink:
        await sink.put(page(0))
        with pytest.raises(RuntimeError, match="twice"):
            await sink.put(page(0))


async def test_creates_missing_folders(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "o.jsonl"
    async with OrderedSink(out, window=4, stats=Stats()) as sink:
        await sink.put(page(0))
        await sink.finish()
    assert ids(out) == [0, 1, 2]


async def test_unwritable_folder_is_an_output_error(tmp_path: Path) -> None:
    # A parent that is a file fails for every user, root included (chmod would not).
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError) as caught:
        async with OrderedSink(tmp_path / "file" / "o.jsonl", window=4, stats=Stats()):
            pass
    assert caught.value.path.endswith("o.jsonl.part")


async def test_output_path_that_is_a_folder_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "o.jsonl.part").mkdir()
    with pytest.raises(OutputError):
        async with OrderedSink(tmp_path / "o.jsonl", window=4, stats=Stats()):
            pass
