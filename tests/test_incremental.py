"""Incremental runs (harvester.incremental) through the real CLI against the demo's /changes.

"Exactly once" for a dataset whose records change: the folder's run files, read in name order,
hold each version of a record, (primary key, cursor value), at most once, and every record's
latest version; a reader keeping the last line per key gets the dataset as it is now.
"""

from __future__ import annotations

import random
import signal
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from harvester.config import parse_config
from harvester.demo import DemoServer, run_demo
from harvester.demo.changes import changes_records
from harvester.errors import ConfigError
from harvester.state import STATE_NAME, WatermarkState
from harvester.versions import select

from .conftest import faulty_demo, raw_config, run_cli
from .test_crash import cli, harvest

RECORDS, ADDED, UPDATED = 1_000, 600, 60
PAGE_SIZE = 20


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    settings = faulty_demo(
        RECORDS,
        latency=0.02,
        changes_added=ADDED,
        changes_updated=UPDATED,
    )
    async with run_demo(settings) as server:
        yield server


def raw(url: str, folder: Path, **incremental: Any) -> dict[str, Any]:
    document = raw_config(
        url,
        folder / "changes",
        source={"url": f"{url}/changes", "records": "data"},
        pagination={"page_size": PAGE_SIZE},
        concurrency={"workers": 4},
        retry={"max_attempts": 10},
        output={"checkpoint_every": 0.05},
    )
    document["incremental"] = {
        "field": "updated_at",
        "param": "updated_since",
        "initial": "2024-01-01T00:00:00Z",
        "lookback": 300,
        "primary_key": "id",
        **incremental,
    }
    return document


def write(folder: Path, document: dict[str, Any]) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def run_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jsonl"))


def folder_records(folder: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(line) for path in run_files(folder) for line in path.read_bytes().splitlines()
    ]


def assert_each_version_once(folder: Path) -> None:
    versions = [(r["id"], r["updated_at"]) for r in folder_records(folder)]
    assert len(versions) == len(set(versions)), "a record version twice in the folder"


def assert_latest(folder: Path, generation: int) -> None:
    """Each version once, and the last line per id is the record as the API serves it now."""
    assert_each_version_once(folder)
    latest = {r["id"]: r for r in folder_records(folder)}
    now = {r["id"]: r for r in changes_records(RECORDS, ADDED, UPDATED, generation)}
    assert latest == now


def assert_state_keeps_only_the_lookback(folder: Path) -> None:
    """The state holds the versions at or after the next window's start, and no other."""
    state = orjson.loads((folder / STATE_NAME).read_bytes())
    stored = datetime.fromisoformat(state["cursor"])
    boundary = stored - timedelta(seconds=300)
    recent = {
        (str(r["id"]), orjson.dumps(r["updated_at"]).decode())
        for r in folder_records(folder)
        if datetime.fromisoformat(r["updated_at"]) >= boundary
    }
    assert {tuple(pair) for pair in state["seen"]} == recent
    assert state["cursor"] == max(r["updated_at"] for r in folder_records(folder))


async def test_three_runs_with_changes_between_then_a_fourth_killed_at_random_moments(
    demo: DemoServer, tmp_path: Path
) -> None:
    config = write(tmp_path, raw(demo.url, tmp_path))
    folder = tmp_path / "changes"
    stats = tmp_path / "stats.json"
    for generation in range(3):
        demo.settings.changes_generation = generation
        await harvest(config, "--stats-json", str(stats))
        assert len(run_files(folder)) == generation + 1
        assert {f.stat().st_mode & 0o777 for f in run_files(folder)} == {0o600}  # owner-only
        assert_latest(folder, generation)
        outcome = orjson.loads(stats.read_bytes())["incremental"]
        assert outcome["state_bytes"] == (folder / STATE_NAME).stat().st_size
        assert_state_keeps_only_the_lookback(folder)
    # The late updates were found by the lookback only: they are older than the stored value.
    late = [r for r in folder_records(folder) if r["version"] == 2 and r["id"] < RECORDS]
    assert any(
        r["updated_at"] < max(x["updated_at"] for x in changes_records(RECORDS, ADDED, UPDATED, 1))
        for r in late
    )

    demo.settings.changes_generation = 3
    rng = random.Random(13)
    left = (ADDED + UPDATED) // PAGE_SIZE  # pages the window holds at least
    kills = resumed = 0
    while left >= 4 and kills < 4:
        # The first kill early (before any checkpoint, likely), the others mid-window.
        at = rng.randint(1, 3) if kills == 0 else rng.randint(left // 3, left * 2 // 3)
        async with cli(config) as run:
            await run.signal_after(demo, at, signal.SIGKILL)
            code, stderr = await run.ended()
        assert code == -signal.SIGKILL, stderr
        kills += 1
        left -= at
        assert len(run_files(folder)) == 3  # the killed run's file never appears unfinished
        assert_each_version_once(folder)
        resumed += (folder / ".harvester" / "run.jsonl.checkpoint").exists()
    assert kills >= 2 and resumed >= 1  # not every kill landed before the first checkpoint
    await harvest(config)
    assert len(run_files(folder)) == 4
    assert_latest(folder, 3)


async def test_a_run_with_nothing_new_exits_0_adds_no_file_and_says_so(
    demo: DemoServer, tmp_path: Path
) -> None:
    demo.settings.fault_rate = demo.settings.drop_rate = demo.settings.truncate_rate = 0
    config = write(tmp_path, raw(demo.url, tmp_path, lookback=0))
    await harvest(config)
    result = await run_cli(str(config), "--progress", "none")
    assert result.code == 0, result.output
    assert "nothing new since" in result.output
    assert len(run_files(tmp_path / "changes")) == 1
    assert_latest(tmp_path / "changes", 0)


async def test_the_state_is_advanced_only_after_the_run_file_is_in_place(
    demo: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that dies between its file and its state repeats nothing on the next start."""
    from harvester import incremental, runner

    folder = tmp_path / "changes"
    config = parse_config(raw(demo.url, tmp_path), environ={})
    await runner.run(config)
    demo.settings.changes_generation = 1

    def dies(*args: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(incremental, "save_state", dies)
    with pytest.raises(KeyboardInterrupt):
        await runner.run(config)
    assert len(run_files(folder)) == 2  # the file is in place; the state is the old one
    monkeypatch.undo()
    await runner.run(config)  # finishes the same run: same name, nothing written again
    assert len(run_files(folder)) == 2
    assert_latest(folder, 1)
    assert not (folder / ".harvester").exists()


async def test_full_refresh_builds_a_new_generation_and_replaces_the_folder(
    demo: DemoServer, tmp_path: Path
) -> None:
    config = write(tmp_path, raw(demo.url, tmp_path))
    folder = tmp_path / "changes"
    await harvest(config)
    demo.settings.changes_generation = 1
    await harvest(config)
    assert len(run_files(folder)) == 2
    async with cli(config, "--full-refresh") as run:  # killed: the old folder stays whole
        await run.signal_after(demo, 2, signal.SIGKILL)
        await run.ended()
    assert len(run_files(folder)) == 2
    assert_latest(folder, 1)
    await harvest(config, "--full-refresh")
    assert len(run_files(folder)) == 1  # one file: the whole dataset as it is now
    assert_latest(folder, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["changes", "config.yaml"]


async def test_a_missing_cursor_fails_naming_the_record_or_is_included(
    demo: DemoServer, tmp_path: Path
) -> None:
    demo.settings.fault_rate = demo.settings.drop_rate = demo.settings.truncate_rate = 0
    document = raw(demo.url, tmp_path)
    document["source"] = {"url": f"{demo.url}/items", "records": "items"}  # no updated_at
    result = await run_cli(str(write(tmp_path, document)), "--progress", "none")
    assert result.code == 1
    assert "record 0 of the run" in result.stderr and "has no updated_at" in result.stderr
    assert "Traceback" not in result.stderr
    document["incremental"]["on_missing_cursor"] = "include"
    result = await run_cli(str(write(tmp_path, document)), "--progress", "none")
    assert result.code == 0, result.output
    assert len(folder_records(tmp_path / "changes")) == RECORDS


async def test_an_api_that_ignores_the_window_fails(demo: DemoServer, tmp_path: Path) -> None:
    demo.settings.fault_rate = demo.settings.drop_rate = demo.settings.truncate_rate = 0
    document = raw(demo.url, tmp_path, field="id", initial=100, lookback=0)
    document["source"] = {"url": f"{demo.url}/items", "records": "items"}  # no such filter
    result = await run_cli(str(write(tmp_path, document)), "--progress", "none")
    assert result.code == 1
    assert (
        "before the window's start 100: the API does not filter by updated_since" in result.stderr
    )
    assert run_files(tmp_path / "changes") == []


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"param": None}, "incremental.param", "{incremental.start}"),
        ({"initial": "yesterday"}, "incremental.initial", "ISO 8601"),
        ({"initial": 5, "lookback": 1.5}, "incremental.lookback", "whole number"),
        ({"lookback": -1}, "incremental.lookback", ">= 0"),
        ({"field": ""}, "incremental.field", "cursor value"),
    ],
)
def test_bad_incremental_sections_name_the_key(
    tmp_path: Path, change: dict[str, Any], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw("http://127.0.0.1:1", tmp_path, **change), environ={})
    assert caught.value.key == key and words in str(caught.value)


def test_the_start_may_be_a_placeholder_instead_of_a_parameter(tmp_path: Path) -> None:
    document = raw("http://127.0.0.1:1", tmp_path, param=None)
    document["source"]["params"] = {"filter": "updated_at>={incremental.start}"}
    assert parse_config(document, environ={}).incremental is not None
    document["incremental"]["param"] = "updated_since"
    with pytest.raises(ConfigError, match="not both"):
        parse_config(document, environ={})


def test_the_folder_must_be_jsonl(tmp_path: Path) -> None:
    document = raw("http://127.0.0.1:1", tmp_path)
    document["output"]["path"] = str(tmp_path / "changes.csv")
    with pytest.raises(ConfigError) as caught:
        parse_config(document, environ={})
    assert caught.value.key == "output.format"


def test_select_keeps_new_versions_warns_once_on_disorder_and_keeps_a_small_state(
    tmp_path: Path,
) -> None:
    config = parse_config(raw("http://127.0.0.1:1", tmp_path, lookback=60), environ={})
    lines = [
        {"id": 1, "updated_at": "2024-01-01T00:00:00Z"},  # already in the folder
        {"id": 2, "updated_at": "2024-01-01T00:05:00Z"},
        {"id": 3, "updated_at": "2024-01-01T00:04:30Z"},  # out of order
        {"id": 2, "updated_at": "2024-01-01T00:05:00Z"},  # the same version again
        {"id": 4, "updated_at": "2024-01-01T00:03:00Z"},  # out of order again: one warning
    ]
    staging = tmp_path / "run.jsonl"
    staging.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    before = WatermarkState(cursor="2024-01-01T00:00:00Z", seen={("1", '"2024-01-01T00:00:00Z"')})
    warnings: list[str] = []
    with (tmp_path / "kept.jsonl").open("wb") as out:
        kept, after = select(staging, before, config, "2024-01-01T00:00:00Z", warnings.append, out)
    assert kept == 3
    assert [
        orjson.loads(line)["id"] for line in (tmp_path / "kept.jsonl").read_bytes().splitlines()
    ] == [2, 3, 4]
    assert len(warnings) == 1 and "out of updated_at order (record 2" in warnings[0]
    # The newest value, not the last one; only the versions within the lookback of it kept.
    assert after.cursor == "2024-01-01T00:05:00Z"
    assert after.seen == {("2", '"2024-01-01T00:05:00Z"'), ("3", '"2024-01-01T00:04:30Z"')}


async def test_a_sample_cannot_advance_the_state(demo: DemoServer, tmp_path: Path) -> None:
    """--max-records would store a value past records never kept: refused before any request."""
    result = await run_cli(str(write(tmp_path, raw(demo.url, tmp_path))), "--max-records", "5")
    assert result.code == 2 and "incremental: max_records cannot go with" in result.stderr
    assert demo.stats.data_requests == 0


async def test_the_example_harvests_the_changes_through_faults(tmp_path: Path) -> None:
    """examples/incremental.yaml (make example EXAMPLE=incremental) against a faulty demo."""
    example = Path(__file__).parent.parent / "examples" / "incremental.yaml"
    settings = faulty_demo(RECORDS, revoke_tokens_after=10, seed=2)
    async with run_demo(settings) as demo:
        text = example.read_text().replace("http://127.0.0.1:8765", demo.url)
        document = yaml.safe_load(text)
        document["output"]["path"] = str(tmp_path / "changes")
        document["retry"] = {"max_attempts": 10, "initial_backoff": 0, "max_backoff": 0}
        result = await run_cli(str(write(tmp_path, document)), "--progress", "none")
    assert result.code == 0, result.output
    assert folder_records(tmp_path / "changes") == changes_records(RECORDS, 100, 40, 0)
