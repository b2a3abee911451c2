"""Crash tests: the real CLI killed mid-run against a faulty demo API, then resumed.

Kill moments are chosen by progress, never by time: the test waits until the demo API has
received the nth data request (n from a seeded RNG), then signals the process. A run cannot
finish before it has made one request per page it still needs, so a kill at n <= that many
requests always lands mid-run. benchmarks/crash_test.py does the same at length, by time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from harvester.checkpoint import CheckpointFile, checkpoint_path
from harvester.demo import DemoServer, run_demo
from harvester.output import lock_path
from harvester.runner import run
from harvester.sink import part_path

from .conftest import expected_bytes, faulty_demo, make_config, no_wait_policy
from .test_cli import SECRET, write_config

RECORDS = 3_000
PAGE_SIZE = 25
WORKERS = 4
PARTS = 4
PAGES = RECORDS // PAGE_SIZE  # also with PARTS windows: each holds a whole number of pages


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    settings = faulty_demo(RECORDS, latency=0.02, client_secret=SECRET)
    async with run_demo(settings) as server:
        yield server


STYLES: dict[str, dict[str, Any]] = {
    "offset": {},
    "open end": {"source__url": "/stream", "pagination__total": "unknown"},
    "cursor windows": {
        "source__url": "/cursor",
        "source__records": "data",
        "pagination__style": "cursor",
        "pagination__next_cursor": "body:next_cursor",
        "pagination__partition": {
            "param_from": "id_from",
            "param_to": "id_to",
            "start": 0,
            "end": RECORDS,
            "parts": PARTS,
        },
    },
}


def crash_config(folder: Path, url: str, style: str, **changes: Any) -> Path:
    settings = {k: f"{url}{v}" if k == "source__url" else v for k, v in STYLES[style].items()}
    return write_config(
        folder,
        url,
        **{
            "pagination__page_size": PAGE_SIZE,
            "concurrency__workers": WORKERS,
            "retry__max_attempts": 10,
            "output__checkpoint_every": 0.05,
            **settings,
            **changes,
        },
    )


@contextlib.asynccontextmanager
async def cli(config: Path, *args: str) -> AsyncIterator[Run]:
    """`python -m harvester CONFIG ARGS` as a subprocess, killed and reaped on the way out if
    the test left it running (a failed assertion, a timeout)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "harvester",
        str(config),
        "--progress",
        "none",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield Run(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()


async def harvest(config: Path, *args: str) -> None:
    """A run left to finish: it must succeed."""
    async with cli(config, *args) as run:
        code, stderr = await run.ended()
    assert code == 0, stderr


@dataclass
class Run:
    """A CLI process that the test may signal while the demo API keeps serving it."""

    process: asyncio.subprocess.Process

    async def after_requests(self, demo: DemoServer, requests: int) -> None:
        """Return once the demo API has received `requests` more data requests; fail if the
        process ends first."""
        target = demo.stats.data_requests + requests
        waiting = asyncio.ensure_future(demo.wait_for_requests(target))
        exited = asyncio.ensure_future(self.process.wait())
        await asyncio.wait([waiting, exited], return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        if not waiting.done():
            waiting.cancel()
            stderr = await self.stderr()
            pytest.fail(f"exited {self.process.returncode} before request {requests}:\n{stderr}")

    async def signal_after(self, demo: DemoServer, requests: int, signum: int) -> None:
        await self.after_requests(demo, requests)
        self.process.send_signal(signum)

    async def line_containing(self, text: str) -> str:
        """The first line on stderr that holds `text`, read as the process writes it."""
        assert self.process.stderr is not None
        async with asyncio.timeout(30):
            while line := (await self.process.stderr.readline()).decode():
                if text in line:
                    return line
        pytest.fail(f"no line with {text!r} on stderr")

    async def stderr(self) -> str:
        _, stderr = await asyncio.wait_for(self.process.communicate(), timeout=30)
        return stderr.decode()

    async def ended(self) -> tuple[int, str]:
        stderr = await self.stderr()
        assert self.process.returncode is not None
        return self.process.returncode, stderr


def output_of(folder: Path) -> Path:
    return folder / "out" / "items.jsonl"


def load_checkpoint(output: Path) -> dict[str, Any] | None:
    path = checkpoint_path(output)
    if not path.exists():
        return None
    checkpoint: dict[str, Any] = orjson.loads(path.read_bytes())
    return checkpoint


def committed_files(output: Path, checkpoint: dict[str, Any]) -> list[tuple[Path, int, int]]:
    """Each file the checkpoint counts on: (path, id of its first record, records vouched for)."""
    sink, part = checkpoint["sink"], part_path(output)
    if "chains" not in sink:
        return [(part, 0, sink["records"])]
    window = RECORDS // PARTS
    return [
        (part if k == 0 else part.with_name(f"{part.name}.{k}"), k * window, c["records"])
        for k, c in enumerate(sink["chains"])
        if c["pages"]
    ]


def assert_vouches_only_for_written_data(output: Path, checkpoint: dict[str, Any]) -> None:
    for path, first, records in committed_files(output, checkpoint):
        committed = expected_bytes(records, first)
        assert path.read_bytes()[: len(committed)] == committed, path.name


def add_unvouched_tail(output: Path, checkpoint: dict[str, Any]) -> None:
    """Append what a kill between the data's flush and the checkpoint's rename leaves behind:
    records the checkpoint does not count, the last one torn. (Such kills are rare: the data is
    buffered, so the files mostly end where the last checkpoint does.)"""
    for path, first, records in committed_files(output, checkpoint):
        with path.open("ab") as handle:
            handle.write(expected_bytes(3, first + records)[:-20])


def pages_left(checkpoint: dict[str, Any] | None) -> int:
    """Data requests a run starting from `checkpoint` makes at the least."""
    if checkpoint is None:
        return PAGES
    sink = checkpoint["sink"]
    if "chains" not in sink:
        return PAGES - int(sink["pages"])
    per_window = math.ceil(RECORDS / PARTS / PAGE_SIZE)
    return sum(0 if c["done"] else per_window - int(c["pages"]) for c in sink["chains"])


def kill_points(rng: random.Random, kill: int, left: int) -> int:
    """The nth request of the run at which kill number `kill` lands: right at the start (before
    the first checkpoint), somewhere in the middle, or near the end."""
    if kill == 0:
        low, high = 1, 3
    elif kill < 3:
        low, high = left // 4, left * 3 // 4
    else:
        low, high = left * 3 // 4, left
    return rng.randint(max(1, low), max(1, min(high, left)))


def assert_complete(output: Path) -> None:
    assert output.read_bytes() == expected_bytes(RECORDS)
    assert sorted(p.name for p in output.parent.iterdir()) == [output.name]  # nothing left over


@pytest.mark.parametrize("style", list(STYLES))
async def test_sigkill_at_any_moment_then_resume_writes_every_record_once(
    demo: DemoServer, tmp_path: Path, style: str
) -> None:
    config = crash_config(tmp_path, demo.url, style)
    output = output_of(tmp_path)
    rng = random.Random(style)
    resumed = 0
    for kill in range(4):
        checkpoint = load_checkpoint(output)
        resumed += checkpoint is not None
        async with cli(config) as run:
            requests = kill_points(rng, kill, pages_left(checkpoint))
            await run.signal_after(demo, requests, signal.SIGKILL)
            code, stderr = await run.ended()
        assert code == -signal.SIGKILL, stderr
        checkpoint = load_checkpoint(output)
        if checkpoint is not None:
            assert_vouches_only_for_written_data(output, checkpoint)
            add_unvouched_tail(output, checkpoint)
    resumed += load_checkpoint(output) is not None
    await harvest(config)
    assert_complete(output)
    assert resumed >= 1  # the kills did not all land before the first checkpoint


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_a_signal_stops_gracefully_and_the_next_run_resumes(
    demo: DemoServer, tmp_path: Path, signum: signal.Signals
) -> None:
    config = crash_config(tmp_path, demo.url, "offset")
    output = output_of(tmp_path)
    async with cli(config) as run:
        await run.signal_after(demo, PAGES // 2, signum)
        code, stderr = await run.ended()

    assert code == 130, stderr
    assert "Traceback" not in stderr and " ERROR " not in stderr
    stopped = [line for line in stderr.splitlines() if f"stopped by {signum.name}" in line]
    assert len(stopped) == 1, stderr
    assert str(part_path(output)) in stopped[0] and "again to resume" in stopped[0]
    checkpoint = load_checkpoint(output)
    assert checkpoint is not None
    # Everything written in order is in the checkpoint: the .part file holds not a byte more.
    assert part_path(output).stat().st_size == checkpoint["sink"]["bytes"]
    assert_vouches_only_for_written_data(output, checkpoint)

    stats = tmp_path / "stats.json"
    await harvest(config, "--stats-json", str(stats))
    assert_complete(output)
    assert orjson.loads(stats.read_bytes())["resumed_records"] == checkpoint["sink"]["records"]


async def test_a_second_sigint_stops_at_once_and_the_checkpoint_holds(
    demo: DemoServer, tmp_path: Path
) -> None:
    # A page in flight at the stop waits 60-120 s before its retry, inside a 300 s grace period:
    # only "at once" ends the run within the 30 s the test waits for it.
    slow_retries = {"retry__initial_backoff": 120, "retry__max_backoff": 120}
    config = crash_config(tmp_path, demo.url, "offset", concurrency__stop_grace=300, **slow_retries)
    output = output_of(tmp_path)
    faults = demo.settings
    faults.fault_rate = faults.drop_rate = faults.truncate_rate = faults.throttle_rate = 0.0
    async with cli(config) as run:
        await run.after_requests(demo, PAGES // 3)
        # The page just asked for, not answered yet, now fails: its worker waits to retry.
        faults.fault_rate = 1.0
        run.process.send_signal(signal.SIGINT)
        await run.line_containing("SIGINT: stopping")
        run.process.send_signal(signal.SIGINT)
        code, stderr = await run.ended()

    assert code == 130, stderr
    assert "SIGINT again: stopping at once" in stderr and "Traceback" not in stderr
    checkpoint = load_checkpoint(output)
    assert checkpoint is not None
    assert part_path(output).stat().st_size == checkpoint["sink"]["bytes"]
    assert_vouches_only_for_written_data(output, checkpoint)

    faults.fault_rate = 0.0
    await harvest(config)
    assert_complete(output)


@pytest.mark.parametrize("fresh", [False, True], ids=["finished", "fresh"])
async def test_a_checkpoint_save_cut_short_by_a_kill_leaves_nothing_behind(
    demo: DemoServer, tmp_path: Path, fresh: bool
) -> None:
    """A kill while a checkpoint is saved leaves its temporary file; the run that finishes the
    harvest, or starts it afresh, removes it with the checkpoint."""
    output = output_of(tmp_path)
    output.parent.mkdir()
    (output.parent / f"{output.name}.checkpoint.tmp").write_bytes(b'{"sink": {')
    config = make_config(
        demo.url, output, auth={"client_secret": SECRET}, pagination={"page_size": PAGE_SIZE}
    )
    await run(config, policy=no_wait_policy(), fresh=fresh)
    assert_complete(output)


async def test_a_finished_windowed_harvest_removes_its_spools_before_its_checkpoint(
    demo: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Otherwise a kill between the two would leave spool files that nothing removes."""
    output = output_of(tmp_path)
    left_when_removed: list[list[str]] = []
    remove = CheckpointFile.remove

    def noting_what_is_left(self: CheckpointFile) -> None:
        left_when_removed.append(sorted(p.name for p in self.output.parent.iterdir()))
        remove(self)

    monkeypatch.setattr(CheckpointFile, "remove", noting_what_is_left)
    pagination = {
        key.removeprefix("pagination__"): value
        for key, value in STYLES["cursor windows"].items()
        if key.startswith("pagination__")
    }
    config = make_config(
        demo.url,
        output,
        source={"url": f"{demo.url}/cursor", "records": "data"},
        auth={"client_secret": SECRET},
        pagination={"total": "unknown", "page_size": PAGE_SIZE, **pagination},
    )
    await run(config, policy=no_wait_policy())
    assert output.read_bytes() == expected_bytes(RECORDS)
    # The lock stays until the run has ended.
    allowed = {output.name, checkpoint_path(output).name, lock_path(output).name}
    assert set(left_when_removed[-1]) <= allowed
