"""--shard K/N and harvester merge, through the real CLI against the demo API.

The issue's acceptance run is here: 30,000 records, 3% 5xx, 2 s tokens, a 60 req/s limit; 6
shards 3 at a time, one SIGKILLed mid-way and restarted; the merged file byte for byte the one
uninterrupted run's. Kills are timed by progress (the shard's own DEBUG lines), never by clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import harvester
from harvester import merge
from harvester.config import load_config
from harvester.demo import DemoServer, DemoSettings, run_demo
from harvester.manifest import manifest_path
from harvester.output import OutputLock
from harvester.shard import Shard, shard_path, slice_of

from .conftest import SECRET, assert_one_clear_line, expected_bytes, run_cli, write_config
from .test_crash import cli

# --- the slices -------------------------------------------------------------------------------


@given(units=st.integers(0, 5_000), count=st.integers(1, 64))
def test_slices_cover_every_unit_once_in_order(units: int, count: int) -> None:
    slices = [slice_of(Shard(index=k, count=count), units) for k in range(count)]
    assert slices[0][0] == 0 and slices[-1][1] == units
    for (_, end), (start, _) in zip(slices, slices[1:], strict=False):
        assert end == start
    sizes = [end - start for start, end in slices]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize(
    ("output", "name"),
    [
        ("out/data.jsonl", "data.shard-00002-of-00006.jsonl"),
        ("data", "data.shard-00002-of-00006"),
        ("/x/.hidden", ".hidden.shard-00002-of-00006"),
    ],
)
def test_shard_file_names_keep_the_suffixes_last(output: str, name: str) -> None:
    assert shard_path(output, 2, 6).name == name


# --- refusals: each exits 2 with one line naming its cause ------------------------------------


CURSOR = {
    "source__url": "http://127.0.0.1:9/cursor",
    "source__records": "data",
    "pagination__style": "cursor",
    "pagination__next_cursor": "body:next_cursor",
}
PARTITION = {"param_from": "id_from", "param_to": "id_to", "start": 0, "end": 3000, "parts": 3}


@pytest.mark.parametrize(
    ("changes", "args", "needles"),
    [
        ({}, ["--shard", "6/6"], ["--shard", "6/6", "K must be 0 to 5"]),
        ({"pagination__total": "unknown"}, ["--shard", "0/2"], ["pagination.total", "unknown"]),
        (CURSOR, ["--shard", "0/2"], ["pagination.partition", "cannot cut"]),
        ({}, ["--shard", "0/2", "--max-records", "10"], ["--max-records", "--shard"]),
        (
            {**CURSOR, "pagination__partition": PARTITION},
            ["--shard", "0/4"],
            ["pagination.partition.parts", "fewer windows than the 4 shards"],
        ),
        ({"output__path": "out/items.csv"}, ["--shard", "0/2"], ["output.format", "JSON Lines"]),
        ({}, ["--concurrent-shards", "2"], ["--concurrent-shards", "goes with --shard"]),
        ({}, ["--shard", "0/2", "--concurrent-shards", "3"], ["--concurrent-shards", "1 to 2"]),
    ],
    ids=["K>=N", "unknown total", "cursor", "max-records", "parts<N", "csv", "P alone", "P>N"],
)
async def test_a_shard_that_cannot_be_cut_is_refused_before_any_request(
    tmp_path: Path, changes: dict[str, Any], args: list[str], needles: list[str]
) -> None:
    # Port 9 (discard): nothing listens; a refusal must come before any connection.
    config = write_config(tmp_path, "http://127.0.0.1:9", **changes)
    result = await run_cli(str(config), "--progress", "none", *args)
    assert result.code == 2, result.output
    assert_one_clear_line(result, *needles)
    assert not (tmp_path / "out").exists()


async def test_a_shard_argument_not_k_of_n_is_a_usage_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9")
    result = await run_cli(str(config), "--shard", "two")
    assert result.code == 2
    assert "--shard: must be K/N" in result.stderr


# --- the acceptance run ---------------------------------------------------------------------

RECORDS, PAGE_SIZE, SHARDS, AT_ONCE = 30_000, 100, 6, 3
PAGES = RECORDS // PAGE_SIZE
KILLED = 1  # the shard SIGKILLed mid-way
WORKERS = 12  # 4 per shard, three at a time
BUFFERED = 16


def config_in(folder: Path, url: str, **changes: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_config(folder, url, **changes)


def acceptance_config(folder: Path, url: str, **changes: Any) -> Path:
    return config_in(
        folder,
        url,
        **{
            "pagination__page_size": PAGE_SIZE,
            # The API's 60/s, split among the 3 shards at once (concurrency.scope: run).
            "concurrency__rate_limit": 60,
            "concurrency__workers": WORKERS,
            "concurrency__max_buffered_pages": BUFFERED,
            "retry__max_attempts": 10,
            "output__checkpoint_every": 0.05,
            **changes,
        },
    )


@contextlib.asynccontextmanager
async def shard_process(config: Path, shard: int) -> AsyncIterator[Process]:
    """The CLI harvesting `shard` (of SHARDS, AT_ONCE at a time), its DEBUG lines on a pipe."""
    shards = ["--shard", f"{shard}/{SHARDS}", "--concurrent-shards", str(AT_ONCE)]
    async with cli(config, "--log-level", "DEBUG", *shards) as run:
        yield run.process


Process = asyncio.subprocess.Process


async def finish(process: Process) -> str:
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()[-3000:]
    return stderr.decode()


async def kill_mid_way(process: Process, pages: int) -> None:
    """SIGKILL once the shard has had `pages` pages answered 200 (its DEBUG lines say so)."""
    assert process.stderr is not None
    seen = 0
    async with asyncio.timeout(60):
        while line := (await process.stderr.readline()).decode():
            seen += " answered 200" in line
            if seen >= pages:
                process.kill()
                await process.communicate()
                return
    pytest.fail("the shard ended before it was killed")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_six_shards_three_at_a_time_one_killed_merge_to_one_runs_bytes(
    tmp_path: Path,
) -> None:
    plain = tmp_path / "plain"
    async with run_demo(DemoSettings(records=RECORDS, client_secret=SECRET)) as reference:
        one_run = acceptance_config(plain, reference.url, concurrency__rate_limit=None)
        result = await run_cli(str(one_run), "--progress", "none")
        assert result.code == 0, result.output
    expected = sha256(plain / "out" / "items.jsonl")

    settings = DemoSettings(
        records=RECORDS,
        client_secret=SECRET,
        fault_rate=0.03,
        token_lifetime=2.0,
        rate_limit=60,
        latency=0.01,
    )
    folder = tmp_path / "sharded"
    async with run_demo(settings) as demo:
        config = acceptance_config(folder, demo.url)
        slots = asyncio.Semaphore(AT_ONCE)

        async def shard(k: int) -> None:
            async with slots:
                if k == KILLED:
                    async with shard_process(config, k) as process:
                        await kill_mid_way(process, pages=PAGES // SHARDS // 2)
                    assert process.returncode == -signal.SIGKILL
                async with shard_process(config, k) as process:
                    await finish(process)

        await asyncio.gather(*(shard(k) for k in range(SHARDS)))
        served_before = demo.stats.data_requests, demo.stats.token_requests

        # An engine reruns a finished task: it must make no request at all.
        async with shard_process(config, 4) as process:
            stderr = await finish(process)
        assert (demo.stats.data_requests, demo.stats.token_requests) == served_before
        assert "finished already" in stderr

        merged = await run_cli("merge", str(config), "--shards", str(SHARDS))
        assert merged.code == 0, merged.output
        stats = demo.stats

    output = folder / "out" / "items.jsonl"
    assert sha256(output) == expected
    assert sorted(p.name for p in output.parent.iterdir()) == ["items.jsonl"]  # nothing left
    assert stats.statuses[429] == 0
    # Every request accounted for: each page once, page 0 once more per shard after the first
    # (every shard reads the total from it), a retry per refusal, and the pages the killed
    # shard had fetched but not yet committed, fetched again by its rerun.
    retries = stats.data_requests - stats.statuses[200]
    again = {url: n - 1 for url, n in stats.served.items() if n > 1}
    first_page = f"/items?offset=0&limit={PAGE_SIZE}"
    assert again.pop(first_page) == SHARDS - 1
    low, end = slice_of(Shard(index=KILLED, count=SHARDS), PAGES)
    killed_slice = {f"/items?offset={i * PAGE_SIZE}&limit={PAGE_SIZE}" for i in range(low, end)}
    assert set(again) <= killed_slice
    assert sum(again.values()) <= WORKERS // AT_ONCE + BUFFERED
    assert len(stats.served) == PAGES
    assert stats.data_requests == PAGES + SHARDS - 1 + retries + sum(again.values())


# --- cursor windows ------------------------------------------------------------------------


async def test_twelve_cursor_windows_over_four_shards_merge_to_one_runs_bytes(
    tmp_path: Path,
) -> None:
    records = 3_000
    async with run_demo(DemoSettings(records=records, client_secret=SECRET)) as demo:
        cursor = {
            **CURSOR,
            "source__url": f"{demo.url}/cursor",
            "pagination__partition": {**PARTITION, "end": records, "parts": 12},
        }
        one = config_in(tmp_path / "one", demo.url, **cursor)
        assert (await run_cli(str(one), "--progress", "none")).code == 0
        config = config_in(tmp_path / "sharded", demo.url, **cursor)
        for k in range(4):
            result = await run_cli(str(config), "--progress", "none", "--shard", f"{k}/4")
            assert result.code == 0, result.output
        manifest = orjson.loads(manifest_path(shard_path(output_in(config), 3, 4)).read_bytes())
        assert (manifest["unit"], manifest["slice"], manifest["of"]) == ("windows", [9, 12], 12)
        merged = await run_cli("merge", str(config), "--shards", "4")
        assert merged.code == 0, merged.output
    assert sha256(output_in(config)) == sha256(output_in(one))


def output_in(config: Path) -> Path:
    return config.parent / "out" / "items.jsonl"


# --- merge refusals -------------------------------------------------------------------------


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    async with run_demo(DemoSettings(records=600, client_secret=SECRET)) as server:
        yield server


async def shards_of(config: Path, count: int, *which: int) -> None:
    for k in which or range(count):
        result = await run_cli(str(config), "--progress", "none", "--shard", f"{k}/{count}")
        assert result.code == 0, result.output


async def merge_refused(config: Path, shards: int, *needles: str) -> None:
    """harvester merge fails with exit 2, one line holding `needles`, and no output."""
    result = await run_cli("merge", str(config), "--shards", str(shards))
    assert result.code == 2
    assert_one_clear_line(result, *needles)
    assert not output_in(config).exists()


async def test_merge_names_a_missing_shard_and_writes_nothing(
    tmp_path: Path, demo: DemoServer
) -> None:
    config = write_config(tmp_path, demo.url)
    await shards_of(config, 3, 0, 2)
    await merge_refused(config, 3, "shard 1/3", "has no manifest", "--shard 1/3")


async def test_merge_names_a_shard_harvested_with_another_config(
    tmp_path: Path, demo: DemoServer
) -> None:
    config = write_config(tmp_path, demo.url)
    await shards_of(config, 2, 0)
    other = config_in(
        tmp_path / "other",
        demo.url,
        pagination__page_size=60,
        output__path=str(output_in(config)),
    )
    await shards_of(other, 2, 1)
    await merge_refused(config, 2, "shard 1/2", "another config", "pagination.page_size")


async def test_merge_names_a_shard_whose_bytes_changed_and_writes_nothing(
    tmp_path: Path, demo: DemoServer
) -> None:
    config = write_config(tmp_path, demo.url)
    await shards_of(config, 2)
    second = shard_path(output_in(config), 1, 2)
    data = bytearray(second.read_bytes())
    data[10] ^= 1  # the same size: only the sha256 can tell
    second.write_bytes(bytes(data))
    await merge_refused(config, 2, "shard 1/2", "sha256")
    assert shard_path(output_in(config), 0, 2).exists()  # nothing removed on a failure


async def test_merge_asked_for_another_count_of_shards_says_so(
    tmp_path: Path, demo: DemoServer
) -> None:
    config = write_config(tmp_path, demo.url)
    await shards_of(config, 2)
    await merge_refused(config, 3, "shard 0/3", "has no manifest", "--shards 2?")


async def test_a_fresh_reharvest_cut_short_is_never_taken_for_finished(
    tmp_path: Path, demo: DemoServer
) -> None:
    config = write_config(tmp_path, demo.url, pagination__page_size=20)
    await shards_of(config, 2)
    async with cli(config, "--log-level", "DEBUG", "--shard", "1/2", "--fresh") as run:
        await run.line_containing(" answered 200")  # the first page: it has begun
        run.process.kill()
        await run.process.communicate()
    # Its manifest went before its first request: merge refuses, a rerun harvests.
    await merge_refused(config, 2, "shard 1/2")
    served = demo.stats.data_requests
    await shards_of(config, 2, 1)
    assert demo.stats.data_requests > served
    merged = await run_cli("merge", str(config), "--shards", "2")
    assert merged.code == 0, merged.output
    assert output_in(config).read_bytes() == expected_bytes(600)


async def test_a_shard_being_harvested_is_not_merged(tmp_path: Path, demo: DemoServer) -> None:
    config = write_config(tmp_path, demo.url)
    await shards_of(config, 2)
    with OutputLock(shard_path(output_in(config), 1, 2), warn=print):  # as a running harvest
        await merge_refused(config, 2, "shard 1/2", "is being harvested now")


async def test_a_merge_killed_after_its_rename_is_finished_by_the_next(
    tmp_path: Path, demo: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, demo.url)
    await shards_of(config, 3)
    removed: list[Path] = []
    remove = merge.remove_tree

    def dies_on_the_second(path: Path) -> None:
        if len(removed) == 1:
            raise KeyboardInterrupt  # as a SIGKILL: nothing after it runs
        removed.append(path)
        remove(path)

    monkeypatch.setattr(merge, "remove_tree", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        merge.merge_shards(load_config(config), count=3)
    monkeypatch.setattr(merge, "remove_tree", remove)
    assert output_in(config).read_bytes() == expected_bytes(600)

    again = await run_cli("merge", str(config), "--shards", "3")
    assert again.code == 0, again.output
    assert "merged already" in again.stderr
    assert output_in(config).read_bytes() == expected_bytes(600)
    assert sorted(p.name for p in output_in(config).parent.iterdir()) == ["items.jsonl"]


def test_a_shard_cannot_go_to_a_writer(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9"))
    with pytest.raises(TypeError, match="not a writer"):
        asyncio.run(
            harvester.run(config, shard=Shard(index=0, count=2), writer=lambda *_: NotImplemented)
        )


async def test_fewer_workers_than_shards_at_once_is_said(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", concurrency__workers=4)
    result = await run_cli(
        str(config), "--shard", "0/6", "--stats-json", str(tmp_path / "stats.json")
    )
    warnings = orjson.loads((tmp_path / "stats.json").read_bytes())["warnings"]
    assert any("concurrency.workers is 4, below the 6 shards at once" in w for w in warnings)
    assert result.code == 1  # nothing listens on port 9: the warning came first


async def test_scope_shard_gives_each_shard_the_whole_budget(tmp_path: Path) -> None:
    from harvester.config import load_config
    from harvester.shard import shard_config

    def budget(scope: str) -> tuple[int, float | None]:
        path = write_config(
            tmp_path, "http://127.0.0.1:9", concurrency__workers=12, concurrency__rate_limit=30
        )
        raw = path.read_text()
        path.write_text(raw.replace("rate_limit: 30", f"rate_limit: 30\n  scope: {scope}"))
        config = shard_config(load_config(path), Shard(index=0, count=6, concurrent=3))
        return config.concurrency.workers, config.concurrency.rate_limit

    assert budget("run") == (4, 10.0)
    assert budget("shard") == (12, 30)
