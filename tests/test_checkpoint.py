"""The checkpoint file, the Checkpointer, and the sinks' side of resuming: cut back, go on."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from harvester.chain_sink import ChainSink
from harvester.checkpoint import (
    Checkpoint,
    Checkpointer,
    CheckpointFile,
    checkpoint_path,
    dataset_fingerprint,
    differences,
)
from harvester.errors import OutputError, RecordsError, ResumeError
from harvester.sink import OrderedSink, Page
from harvester.stats import Stats

from .conftest import make_config

BASE = "https://api.test"


def page(index: int, size: int = 3, first: int | None = None) -> Page:
    start = index * size if first is None else first
    data = b"".join(orjson.dumps({"id": i}) + b"\n" for i in range(start, start + size))
    return Page(index, data, size, url=f"{BASE}/items?page={index}")


def fingerprint(**pagination: Any) -> dict[str, Any]:
    return dataset_fingerprint(make_config(BASE, Path("out.jsonl"), pagination=pagination))


# --- the fingerprint ----------------------------------------------------------------------


def test_the_fingerprint_names_what_changed() -> None:
    found = differences(fingerprint(page_size=100), fingerprint(page_size=50))
    assert found == ["pagination.page_size was 100, is now 50"]


def test_no_secret_value_is_kept_in_the_fingerprint(tmp_path: Path) -> None:
    config = make_config(
        f"{BASE}/v1?api_key=k-in-the-url",
        tmp_path / "o",
        source={"params": {"api_key": "k-1234-secret"}, "headers": {"X-Api-Key": "k-header"}},
    )
    shown = orjson.dumps(dataset_fingerprint(config)).decode()
    for secret in ("k-in-the-url", "k-1234-secret", "k-header"):
        assert secret not in shown
    assert dataset_fingerprint(config)["source.params.api_key"] == "***"


def test_a_changed_header_or_sample_size_is_another_dataset(tmp_path: Path) -> None:
    one = make_config(BASE, tmp_path / "o", source={"headers": {"X-Tenant": "a"}})
    two = make_config(BASE, tmp_path / "o", source={"headers": {"X-Tenant": "b"}})
    assert differences(dataset_fingerprint(one), dataset_fingerprint(two)) == [
        "source.headers.X-Tenant was 'a', is now 'b'"
    ]
    assert differences(dataset_fingerprint(one, max_records=250), dataset_fingerprint(one)) == [
        "--max-records was 250, is now not set"
    ]


def test_concurrency_and_output_are_not_part_of_the_dataset(tmp_path: Path) -> None:
    one = make_config(BASE, tmp_path / "a", concurrency={"workers": 2})
    two = make_config(BASE, tmp_path / "b", concurrency={"workers": 30})
    assert dataset_fingerprint(one) == dataset_fingerprint(two)


# --- the file ---------------------------------------------------------------------------


def checkpoint(**sink: Any) -> Checkpoint:
    return Checkpoint(fingerprint=fingerprint(), plan={"page_size": 100}, sink=sink)


def test_a_saved_checkpoint_loads_back_and_leaves_no_temporary(tmp_path: Path) -> None:
    file = CheckpointFile(tmp_path / "out.jsonl")
    file.save(checkpoint(pages=3, records=9, bytes=99))
    assert file.path == checkpoint_path(tmp_path / "out.jsonl") == tmp_path / "out.jsonl.checkpoint"
    loaded = file.load(fingerprint())
    assert loaded is not None and loaded.sink == {"pages": 3, "records": 9, "bytes": 99}
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl.checkpoint"]


def test_no_checkpoint_loads_as_none(tmp_path: Path) -> None:
    assert CheckpointFile(tmp_path / "out.jsonl").load(fingerprint()) is None


def test_a_checkpoint_for_another_dataset_fails_naming_the_difference(tmp_path: Path) -> None:
    file = CheckpointFile(tmp_path / "out.jsonl")
    file.save(checkpoint(pages=1))
    with pytest.raises(ResumeError) as caught:
        file.load(fingerprint(page_size=250))
    message = str(caught.value)
    assert "pagination.page_size was 100, is now 250" in message
    assert "--fresh" in message and str(file.path) in message
    assert caught.value.exit_code == 2
    assert caught.value.differences == ("pagination.page_size was 100, is now 250",)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{not json", "is not a harvester checkpoint"),
        (b'{"x": 1}', "is not a harvester checkpoint"),
        (b'{"version": 99, "fingerprint": {}, "plan": {}, "sink": {}}', "another version"),
    ],
)
def test_a_damaged_checkpoint_fails_clearly(tmp_path: Path, content: bytes, fragment: str) -> None:
    (tmp_path / "out.jsonl.checkpoint").write_bytes(content)
    with pytest.raises(ResumeError, match=fragment):
        CheckpointFile(tmp_path / "out.jsonl").load(fingerprint())


def test_a_checkpoint_that_is_a_symbolic_link_is_never_read_through(tmp_path: Path) -> None:
    """A link put there between the run's check and its load (the run refuses one at start):
    load refuses it as every other open of the run's files does, and reads nothing."""
    elsewhere = tmp_path / "elsewhere.checkpoint"
    CheckpointFile(tmp_path / "elsewhere").save(checkpoint(pages=1))
    elsewhere.rename(tmp_path / "target")
    (tmp_path / "out.jsonl.checkpoint").symlink_to(tmp_path / "target")
    with pytest.raises(OutputError, match="is a symbolic link"):
        CheckpointFile(tmp_path / "out.jsonl").load(fingerprint())


# --- the Checkpointer -------------------------------------------------------------------


class FakeSink:
    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.finished = False
        self.flushes = 0

    @property
    def committed_records(self) -> int:
        return int(self.state.get("records", 1))

    def flush(self) -> tuple[dict[str, Any], list[int]]:
        self.flushes += 1
        return dict(self.state), []


def make_checkpointer(
    tmp_path: Path, sink: FakeSink, plan: dict[str, Any] | None
) -> tuple[Checkpointer, CheckpointFile, Stats]:
    file, stats = CheckpointFile(tmp_path / "out.jsonl"), Stats()
    keeper = Checkpointer(file, sink, fingerprint={}, every=3600, stats=stats, plan=plan)
    return keeper, file, stats


async def test_nothing_is_written_while_no_record_is_committed(tmp_path: Path) -> None:
    keeper, file, _ = make_checkpointer(tmp_path, FakeSink({"records": 0}), plan={"pages": 1})
    file.save(Checkpoint(fingerprint={}, plan={}, sink={"records": 0}))  # an earlier run's
    async with keeper:
        await keeper.save()
    assert not file.path.exists()


async def test_nothing_is_written_before_the_plan_is_known(tmp_path: Path) -> None:
    keeper, file, _ = make_checkpointer(tmp_path, FakeSink({"pages": 0}), plan=None)
    async with keeper:
        await keeper.save()
    assert not file.path.exists()


async def test_an_unfinished_run_saves_once_more_and_a_finished_one_removes_it(
    tmp_path: Path,
) -> None:
    sink = FakeSink({"pages": 1})
    keeper, file, stats = make_checkpointer(tmp_path, sink, plan={"page_size": 3})
    with pytest.raises(RuntimeError):
        async with keeper:
            await keeper.save()
            sink.state = {"pages": 2}
            raise RuntimeError("a worker failed")
    assert file.load({}) is not None and file.load({}).sink == {"pages": 2}  # type: ignore[union-attr]
    assert stats.checkpoints == 2

    sink.finished = True
    async with make_checkpointer(tmp_path, sink, plan={"page_size": 3})[0]:
        pass
    assert not file.path.exists()


async def test_an_unchanged_state_is_not_written_again(tmp_path: Path) -> None:
    keeper, _, stats = make_checkpointer(tmp_path, FakeSink({"pages": 1}), plan={})
    async with keeper:
        await keeper.save()
        await keeper.save()
    assert stats.checkpoints == 1


async def test_a_stop_during_a_periodic_save_still_writes_the_last_state(tmp_path: Path) -> None:
    """A periodic save takes its snapshot, then writes it in a thread. If the run closes first,
    that thread writes nothing (never after the close): the close must write the state itself,
    though it is the one the periodic save took. Before, the checkpoint on disk was an older
    one, and the .part file held more than it vouched for (seen in test_crash under load)."""
    sink = FakeSink({"pages": 1})
    keeper, file, _ = make_checkpointer(tmp_path, sink, plan={})
    keeper._write(keeper._snapshot())  # type: ignore[arg-type]  # an earlier save, written
    sink.state = {"pages": 2}
    pending = keeper._snapshot()  # the periodic save's, its thread not yet run
    assert pending is not None

    async with keeper:
        pass
    keeper._write(pending)  # the thread, after the close: skipped

    loaded = file.load({})
    assert loaded is not None and loaded.sink == {"pages": 2}


async def test_a_late_save_never_overwrites_a_newer_checkpoint(tmp_path: Path) -> None:
    """A periodic save runs in a thread; if it ends after a later save, or after the run has
    closed, it must not put its older state back."""
    sink = FakeSink({"pages": 1})
    keeper, file, stats = make_checkpointer(tmp_path, sink, plan={})
    older = keeper._snapshot()
    sink.state = {"pages": 2}
    newer = keeper._snapshot()
    assert older is not None and newer is not None
    keeper._write(newer)
    keeper._write(older)
    loaded = file.load({})
    assert loaded is not None and loaded.sink == {"pages": 2}
    sink.finished = True
    async with keeper:
        pass
    sink.state = {"pages": 3}
    keeper._write(newer)  # a save that was still running when the checkpoint was removed
    assert not file.path.exists() and stats.checkpoints == 1


async def test_a_sink_that_cannot_flush_keeps_the_older_checkpoint(tmp_path: Path) -> None:
    class FullDisk(FakeSink):
        def flush(self) -> tuple[dict[str, Any], list[int]]:
            raise OSError(28, "No space left on device")

    keeper, file, _ = make_checkpointer(tmp_path, FullDisk({}), plan={})
    file.save(checkpoint(pages=5))
    async with keeper:
        await keeper.save()
    loaded = file.load(fingerprint())
    assert loaded is not None and loaded.sink == {"pages": 5}


async def test_the_checkpointer_saves_every_few_seconds_by_itself(tmp_path: Path) -> None:
    file, stats = CheckpointFile(tmp_path / "out.jsonl"), Stats()
    waits: list[float] = []
    second_wait = asyncio.Event()

    async def sleep(seconds: float) -> None:  # the first wait passes; the second one parks
        waits.append(seconds)
        if len(waits) > 1:
            second_wait.set()
            await asyncio.Event().wait()

    async with OrderedSink(tmp_path / "out.jsonl", window=8, stats=stats) as sink:
        await sink.put(page(0))
        keeper = Checkpointer(
            file, sink, fingerprint={}, every=5.0, stats=stats, plan={}, sleep=sleep
        )
        async with keeper:
            await second_wait.wait()
            assert stats.checkpoints == 1
        loaded = file.load({})
    assert waits == [5.0, 5.0]
    assert loaded is not None and loaded.sink["pages"] == 1
    assert loaded.sink["bytes"] == len(page(0).data)


# --- sinks resuming -----------------------------------------------------------------------


async def write_pages(out: Path, count: int, stats: Stats) -> dict[str, Any]:
    async with OrderedSink(out, window=8, stats=stats) as sink:
        for index in range(count):
            await sink.put(page(index))
        state, descriptors = sink.flush()
    for fd in descriptors:
        os.close(fd)
    return state


async def test_an_ordered_sink_resumes_cutting_back_what_the_checkpoint_does_not_vouch_for(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    state = await write_pages(out, 2, Stats())
    part = tmp_path / "out.jsonl.part"
    part.write_bytes(part.read_bytes() + page(2).data + b'{"id": 9')  # written after it, cut off
    stats = Stats()
    async with OrderedSink(out, window=8, stats=stats, resume=state) as sink:
        assert (sink.committed_pages, stats.records) == (2, 6)
        await sink.put(page(2))
        await sink.put(page(3))
        await sink.finish()
    assert out.read_bytes() == b"".join(page(i).data for i in range(4))
    assert (stats.pages, stats.records, stats.bytes) == (4, 12, out.stat().st_size)


async def test_a_part_file_shorter_than_the_checkpoint_says_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    state = await write_pages(out, 2, Stats())
    part = tmp_path / "out.jsonl.part"
    part.write_bytes(part.read_bytes()[:-5])
    with pytest.raises(ResumeError, match="fewer than the .* it vouches for"):
        async with OrderedSink(out, window=8, stats=Stats(), resume=state):
            pass


async def test_a_part_file_edited_mid_record_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    state = await write_pages(out, 2, Stats())
    part = tmp_path / "out.jsonl.part"
    part.write_bytes(part.read_bytes()[:-1] + b" ")
    with pytest.raises(ResumeError, match="does not end a record"):
        async with OrderedSink(out, window=8, stats=Stats(), resume=state):
            pass


async def test_a_missing_spool_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    state = {"chains": [{"pages": 0}, {"pages": 1, "records": 3, "bytes": 30}]}
    with pytest.raises(ResumeError, match=r"out\.jsonl\.part\.1 is gone"):
        async with ChainSink(out, chains=2, stats=Stats(), resume=state):
            pass


async def test_a_chain_sink_resumes_each_window_where_it_stopped(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    async with ChainSink(out, chains=3, stats=Stats()) as sink:
        await sink.put(0, page(0, first=0), after={"cursor": "a"})
        await sink.put(1, page(0, first=100), after=None)  # window 1 done
        await sink.put(2, page(0, first=200), after={"cursor": "c"})
        state, descriptors = sink.flush()
        await sink.put(2, page(1, first=203), after={"cursor": "d"})  # after the checkpoint
    for fd in descriptors:
        os.close(fd)
    stats = Stats()
    async with ChainSink(out, chains=3, stats=stats, resume=state) as sink:
        assert [sink.carry_on(k) for k in range(3)] == [
            (False, {"cursor": "a"}),
            (True, None),
            (False, {"cursor": "c"}),
        ]
        assert stats.records == 9
        await sink.put(0, page(1, first=3), after=None)
        await sink.put(2, page(1, first=203), after=None)
        await sink.finish()
    expected = [page(0, first=0), page(1, first=3), page(0, first=100)]
    expected += [page(0, first=200), page(1, first=203)]
    assert out.read_bytes() == b"".join(p.data for p in expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


# --- the repeated-page check --------------------------------------------------------------


async def test_a_page_repeating_the_previous_one_fails(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    again = Page(1, page(0).data, 3, url=f"{BASE}/items?page=1")
    with pytest.raises(RecordsError) as caught:
        async with OrderedSink(out, window=8, stats=Stats()) as sink:
            await sink.put(page(0))
            await sink.put(again)
    assert "repeats the records of page 0" in str(caught.value)
    assert caught.value.page == 1 and caught.value.url == f"{BASE}/items?page=1"
    assert not out.exists()


async def test_a_repeat_across_a_resume_is_caught_by_its_digest(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    state = await write_pages(out, 2, Stats())
    with pytest.raises(RecordsError, match="repeats the records of page 1"):
        async with OrderedSink(out, window=8, stats=Stats(), resume=state) as sink:
            await sink.put(Page(2, page(1).data, 3))


async def test_empty_pages_and_other_windows_are_no_repeats(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    async with ChainSink(out, chains=2, stats=Stats()) as sink:
        await sink.put(0, page(0), after={"c": 1})
        await sink.put(1, page(0), after=None)  # the same records in another window: allowed
        await sink.put(0, Page(1, b"", 0), after={"c": 2})
        await sink.put(0, Page(2, b"", 0), after=None)
        await sink.finish()
    assert out.read_bytes() == page(0).data * 2


async def test_an_unwritable_resume_reports_the_path(tmp_path: Path) -> None:
    folder = tmp_path / "out.jsonl"
    folder.mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        async with OrderedSink(folder, window=8, stats=Stats(), resume={"bytes": 0, "pages": 0}):
            pass
