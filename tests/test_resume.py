"""Stop a harvest part-way (a stop request, a failure), run it again: every record exactly once.

Runs the real runner against the demo API on a loopback port. Stops are triggered by progress
(pages committed), never by time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from harvester.config import Config
from harvester.demo import DemoServer, run_demo
from harvester.errors import Interrupted, PageFetchError, ResumeError, TotalChangedError
from harvester.runner import run
from harvester.sink import OrderedSink
from harvester.stats import Stats
from harvester.stop import Stop

from .conftest import HANG, expected_bytes, faulty_demo, make_config, no_wait_policy

RECORDS = 3_000


class StopAfter(Stop):
    """Asks to stop once `pages` pages are written, as a Ctrl-C at that moment would."""

    def __init__(self, stats: Stats, pages: int) -> None:
        super().__init__(grace=30)
        self._stats, self._pages = stats, pages

    @property
    def requested(self) -> bool:
        if self.reason is None and self._stats.pages >= self._pages:
            self.reason = "SIGINT"
        return self.reason is not None


STYLES: dict[str, dict[str, Any]] = {
    "offset": {},
    "open-end": {
        "source": {"url": "{url}/stream"},
        "pagination": {"total": "unknown"},
    },
    "cursor-partitioned": {
        "source": {"url": "{url}/cursor", "records": "data"},
        "pagination": {
            "style": "cursor",
            "total": "unknown",
            "next_cursor": "body:next_cursor",
            "partition": {
                "param_from": "id_from",
                "param_to": "id_to",
                "start": 0,
                "end": RECORDS,
                "parts": 4,
            },
        },
    },
    "link": {
        "source": {"url": "{url}/link", "records": "results"},
        "pagination": {"style": "link", "total": "body:count"},
    },
}


def config_for(style: str, url: str, out: Path, **extra: Any) -> Config:
    sections: dict[str, dict[str, Any]] = {}
    for name, values in STYLES[style].items():
        sections[name] = {
            k: v.format(url=url) if isinstance(v, str) else v for k, v in values.items()
        }
    sections.setdefault("pagination", {})
    sections["concurrency"] = {"workers": 4, "max_buffered_pages": 8}
    for name, values in extra.items():
        sections[name] = {**sections.get(name, {}), **values}
    return make_config(url, out, **sections)


async def harvest(config: Config, stats: Stats, **kwargs: Any) -> Stats:
    async with asyncio.timeout(HANG):  # a regression fails this test, not the suite
        return await run(config, stats=stats, policy=no_wait_policy(max_attempts=20), **kwargs)


def checkpoint_of(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(Path(f"{out}.checkpoint").read_bytes())
    return data


def committed_bytes(checkpoint: dict[str, Any]) -> int:
    sink = checkpoint["sink"]
    return int(sink["bytes"]) if "bytes" in sink else int(sink["chains"][0]["bytes"])


@pytest.mark.parametrize("style", list(STYLES))
async def test_stopped_three_times_then_resumed_every_record_once(
    style: str, tmp_path: Path
) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(faulty_demo(RECORDS, token_lifetime=3600)) as demo:
        config = config_for(style, demo.url, out)
        resumed_at = []
        for pages in (2, 9, 17):
            stats = Stats()
            with pytest.raises(Interrupted) as caught:
                await harvest(config, stats, stop=StopAfter(stats, pages))
            assert caught.value.exit_code == 130
            assert "run the same command again to resume" in str(caught.value)
            assert not out.exists()
            checkpoint = checkpoint_of(out)
            part = Path(f"{out}.part")
            # Everything written in order was checkpointed: the .part holds no more, no less.
            assert part.stat().st_size == committed_bytes(checkpoint)
            resumed_at.append(stats.resumed_records)
        stats = Stats()
        await harvest(config, stats)
        served = demo.stats.statuses[200] - demo.stats.faults["truncate"]
    assert out.read_bytes() == expected_bytes(RECORDS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.jsonl"]
    assert resumed_at[0] == 0 and resumed_at[1] > 0 and resumed_at[2] > resumed_at[1]
    assert stats.resumed_records > resumed_at[2]
    pages = RECORDS // 100
    # Each stop costs at most the pages in flight and buffered, fetched again.
    assert served <= pages + 4 + 3 * (8 + 4 + 1)


async def test_a_failed_run_resumes_from_where_it_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(faulty_demo(RECORDS, token_lifetime=3600)) as demo:
        break_after(monkeypatch, demo, pages=12)
        config = config_for("offset", demo.url, out, retry={"max_attempts": 2})
        with pytest.raises(PageFetchError):
            await run(config, policy=no_wait_policy(max_attempts=2))
        assert checkpoint_of(out)["sink"]["pages"] >= 12
        monkeypatch.undo()
        demo.settings.fault_rate = 0.0
        stats = Stats()
        await harvest(config, stats)
    assert out.read_bytes() == expected_bytes(RECORDS)
    assert stats.resumed_records >= 1_200


def break_after(monkeypatch: pytest.MonkeyPatch, demo: DemoServer, *, pages: int) -> None:
    """Every data request fails with a 5xx once `pages` pages are written."""
    put = OrderedSink.put

    async def put_then_break(self: OrderedSink, page: Any, wanted: Any = None) -> None:
        await put(self, page, wanted)
        if self.committed_pages >= pages:
            demo.settings.fault_rate, demo.settings.drop_rate = 1.0, 0.0
            demo.settings.truncate_rate = demo.settings.throttle_rate = 0.0

    monkeypatch.setattr(OrderedSink, "put", put_then_break)


async def stop_once(config: Config, pages: int) -> None:
    stats = Stats()
    with pytest.raises(Interrupted):
        await harvest(config, stats, stop=StopAfter(stats, pages))


async def test_a_checkpoint_for_other_settings_is_refused_until_fresh(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(faulty_demo(RECORDS, token_lifetime=3600)) as demo:
        await stop_once(config_for("offset", demo.url, out), pages=5)
        changed = config_for("offset", demo.url, out, pagination={"page_size": 50})
        with pytest.raises(ResumeError) as caught:
            await harvest(changed, Stats())
        assert caught.value.exit_code == 2
        assert "pagination.page_size was 100, is now 50" in str(caught.value)
        assert "--fresh" in str(caught.value)
        stats = Stats()
        await harvest(changed, stats, fresh=True)
    assert out.read_bytes() == expected_bytes(RECORDS)
    assert stats.resumed_records == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.jsonl"]


async def test_fresh_removes_every_spool_of_a_partitioned_run(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(faulty_demo(RECORDS, token_lifetime=3600)) as demo:
        config = config_for("cursor-partitioned", demo.url, out)
        await stop_once(config, pages=10)
        assert len(list(tmp_path.glob("items.jsonl.part*"))) > 1
        await harvest(config, Stats(), fresh=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.jsonl"]


async def test_a_checkpoint_without_its_part_file_starts_over_with_a_warning(
    tmp_path: Path,
) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(faulty_demo(RECORDS, token_lifetime=3600)) as demo:
        config = config_for("offset", demo.url, out)
        await stop_once(config, pages=5)
        Path(f"{out}.part").unlink()
        stats = Stats()
        await harvest(config, stats)
    assert out.read_bytes() == expected_bytes(RECORDS)
    assert stats.resumed_records == 0
    assert any("is gone" in w for w in stats.warnings)


async def test_a_stop_before_the_first_page_leaves_nothing_to_resume(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(faulty_demo(RECORDS, token_lifetime=3600)) as demo:
        config = config_for("offset", demo.url, out)
        stop = Stop(grace=0)
        stop.reason = "SIGTERM"
        with pytest.raises(Interrupted, match="stopped by SIGTERM before any record was written"):
            await harvest(config, Stats(), stop=stop)
        assert not Path(f"{out}.checkpoint").exists()
        await harvest(config, Stats())
    assert out.read_bytes() == expected_bytes(RECORDS)


async def test_data_that_changed_between_runs_is_not_resumed_into(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(faulty_demo(RECORDS, token_lifetime=3600)) as demo:
        config = config_for("offset", demo.url, out)
        await stop_once(config, pages=5)
        demo.settings.records = RECORDS + 50  # records added while the harvest was stopped
        with pytest.raises(TotalChangedError, match="--fresh") as caught:
            await harvest(config, Stats())
        assert (caught.value.total_at_start, caught.value.total_now) == (RECORDS, RECORDS + 50)
        assert not out.exists()
        await harvest(config, Stats(), fresh=True)
    assert out.read_bytes() == expected_bytes(RECORDS + 50)


async def test_a_sample_resumes_only_with_the_same_max_records(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(faulty_demo(RECORDS, token_lifetime=3600)) as demo:
        config = config_for("offset", demo.url, out)
        stats = Stats()
        with pytest.raises(Interrupted):
            await harvest(config, stats, max_records=1_250, stop=StopAfter(stats, 3))
        with pytest.raises(ResumeError, match="--max-records was 1250, is now not set"):
            await harvest(config, Stats())
        await harvest(config, Stats(), max_records=1_250)
    assert out.read_bytes() == expected_bytes(1_250)


async def test_a_sample_that_reached_its_size_when_stopped_is_finished(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(faulty_demo(RECORDS, token_lifetime=3600)) as demo:
        stats = Stats()
        # The stop comes with the page that completes the sample: nothing is left to do.
        await harvest(
            config_for("offset", demo.url, out), stats, max_records=250, stop=StopAfter(stats, 3)
        )
    assert stats.records == 250 and out.exists()
    assert not Path(f"{out}.checkpoint").exists()


async def test_a_resumed_partitioned_run_still_knows_the_total(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(faulty_demo(RECORDS, token_lifetime=3600)) as demo:
        partition = STYLES["cursor-partitioned"]["pagination"]["partition"]
        config = config_for(
            "link", demo.url, out, concurrency={"workers": 1}, pagination={"partition": partition}
        )
        await stop_once(config, pages=12)  # window 0 done, window 1 begun, 2 and 3 not
        stats = Stats()
        await harvest(config, stats)
    assert stats.total_records == RECORDS and stats.records == RECORDS


async def test_the_stop_message_says_what_is_safe_and_how_to_go_on(tmp_path: Path) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(faulty_demo(RECORDS, token_lifetime=3600)) as demo:
        config = config_for("cursor-partitioned", demo.url, out)
        stats = Stats()
        with pytest.raises(Interrupted) as caught:
            await harvest(config, stats, fresh=True, stop=StopAfter(stats, 4))
    message = str(caught.value)
    assert f"records are safe in {out}.part and its window spools" in message
    assert "run the same command without --fresh again to resume" in message
    assert caught.value.signal == "SIGINT"


async def test_a_stop_at_once_as_the_output_is_renamed_leaves_a_finished_harvest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "items.jsonl"
    stop = Stop(grace=30)
    finish = OrderedSink.finish

    async def finish_then_stop(self: OrderedSink, **kwargs: Any) -> None:
        await finish(self, **kwargs)
        stop.request("SIGINT", at_once=True)  # lands on the next await: the clean-up

    monkeypatch.setattr(OrderedSink, "finish", finish_then_stop)
    async with run_demo(faulty_demo(RECORDS, token_lifetime=3600)) as demo:
        stats = await harvest(config_for("offset", demo.url, out), Stats(), stop=stop)
    assert stats.records == RECORDS and out.read_bytes() == expected_bytes(RECORDS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.jsonl"]


async def test_a_windowed_sample_that_window_zero_fills_is_finished_on_a_stop(
    tmp_path: Path,
) -> None:
    out = tmp_path / "items.jsonl"
    async with run_demo(faulty_demo(RECORDS, token_lifetime=3600)) as demo:
        config = config_for("cursor-partitioned", demo.url, out, concurrency={"workers": 1})
        stats = Stats()
        await harvest(config, stats, max_records=250, stop=StopAfter(stats, 3))
    assert out.read_bytes() == expected_bytes(250)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.jsonl"]
