"""The output's place on disk, through the real CLI against the demo API on loopback: one run
per output, no file written through a symbolic link, streams never replaced, file modes, and
relative paths taken from the config's folder."""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import os
import socket
import stat
import subprocess
import sys
import termios
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
import yaml

from harvester.config import load_config
from harvester.demo import DemoServer, DemoSettings, run_demo
from harvester.errors import OutputLocked
from harvester.output import OutputLock, lock_path
from harvester.runner import run

from .conftest import (
    SECRET,
    assert_one_clear_line,
    expected_bytes,
    make_config,
    no_wait_policy,
    run_cli,
    write_config,
)
from .test_crash import cli, output_of

RECORDS = 1_000


@pytest.fixture
async def slow_demo() -> AsyncIterator[DemoServer]:
    """The demo API answering each page after 50 ms: 50 pages of 20 records on 2 workers take
    over a second, long enough for a second run to meet the first."""
    async with run_demo(
        DemoSettings(records=RECORDS, latency=0.05, client_secret=SECRET)
    ) as server:
        yield server


async def appeared(path: Path, process: asyncio.subprocess.Process, within: float = 30) -> None:
    """Return once `path` exists; fail if the process ends first or it takes `within` s."""
    deadline = time.monotonic() + within
    while not path.exists():
        if process.returncode is not None or time.monotonic() > deadline:
            pytest.fail(f"{path} never appeared (exit {process.returncode})")
        await asyncio.sleep(0.01)  # polling for the file, not waiting for a moment


async def test_a_second_run_on_one_output_fails_at_once_naming_the_first(
    slow_demo: DemoServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, slow_demo.url, pagination__page_size=20, concurrency__workers=2)
    output = output_of(tmp_path)
    async with cli(config) as first:
        await appeared(lock_path(output), first.process)
        await slow_demo.wait_for_requests(1)  # the first run is harvesting now
        # Slower still while the second runs, so that on a busy machine too the first run
        # is still going when the second starts; full speed again after.
        slow_demo.settings.latency = 0.5
        second = await run_cli(str(config), "--progress", "none", "--log-level", "DEBUG")
        slow_demo.settings.latency = 0.0
        assert first.process.returncode is None, "the first run ended before the second began"
        code, stderr = await first.ended()
    assert second.code == 1
    line = assert_one_clear_line(
        second, f"pid {first.process.pid}", socket.gethostname(), str(output)
    )
    assert "another harvester run" in line
    # "At once", without a clock (the suite must pass on a busy machine): the second run ended
    # while the first was still going (above), and it sent no request, not even for a token
    # (its DEBUG lines would show each, harvester.fetch.ANSWERED and harvester.auth.TOKEN_ASKED).
    assert "answered" not in second.output and "token request" not in second.output
    assert code == 0, stderr
    assert output.read_bytes() == expected_bytes(RECORDS)  # what a lone run writes
    assert not lock_path(output).exists()
    assert sorted(p.name for p in output.parent.iterdir()) == ["items.jsonl"]


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid  # reaped: no process has it now, barring a reuse in the meantime


async def test_a_lock_left_by_a_dead_run_is_taken_over_with_a_warning(
    demo: DemoServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, demo.url)
    output = output_of(tmp_path)
    output.parent.mkdir()
    pid = dead_pid()
    lock_path(output).write_text(f"{pid} {socket.gethostname()}\n")
    result = await run_cli(str(config), "--progress", "none")
    assert result.code == 0, result.stderr
    assert f"took over the lock {lock_path(output)} left by pid {pid}" in result.stderr
    assert output.read_bytes() == expected_bytes(1_000)
    assert not lock_path(output).exists()


@pytest.mark.parametrize("suffix", [".part", ".checkpoint", ".checkpoint.tmp", ".lock"])
async def test_a_symlink_among_the_run_s_files_is_refused(
    demo: DemoServer, tmp_path: Path, suffix: str
) -> None:
    config = write_config(tmp_path, demo.url)
    output = output_of(tmp_path)
    output.parent.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = output.with_name(output.name + suffix)
    link.symlink_to(victim)
    result = await run_cli(str(config), "--progress", "none")
    assert result.code == 1
    assert_one_clear_line(result, str(link), "is a symbolic link")
    assert victim.read_text() == "precious\n"
    assert link.is_symlink() and not output.exists()
    assert demo.stats.data_requests == 0


@pytest.mark.parametrize("target", ["-", "/dev/stdout"])
async def test_stdout_gets_the_records_and_the_summary_goes_to_stderr(
    demo: DemoServer, tmp_path: Path, target: str
) -> None:
    config = write_config(tmp_path, demo.url)
    result = await run_cli(str(config), "--output", target, "--progress", "none", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert result.stdout.encode() == expected_bytes(1_000)
    assert "records      1,000" in result.stderr  # the summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]
    assert os.path.islink("/dev/stdout")


def pipe_and_config(folder: Path, url: str) -> tuple[Path, Path]:
    """A named pipe in `folder`, and a config writing the demo API's records into it."""
    pipe = folder / "pipe"
    os.mkfifo(pipe)
    return pipe, write_config(folder, url, output__path=str(pipe))


async def test_a_named_pipe_is_written_as_a_stream_and_stays_a_pipe(
    demo: DemoServer, tmp_path: Path
) -> None:
    pipe, config = pipe_and_config(tmp_path, demo.url)
    reader = asyncio.ensure_future(asyncio.to_thread(pipe.read_bytes))
    result = await run_cli(str(config), "--progress", "none")
    assert result.code == 0, result.stderr
    assert await reader == expected_bytes(1_000)
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "pipe"]


@pytest.mark.parametrize("target", ["/dev/null", "link-to-null"])
async def test_a_device_or_a_link_to_one_is_never_replaced(
    demo: DemoServer, tmp_path: Path, target: str
) -> None:
    """As root, a rename onto /dev/null would succeed: the device must stay a device."""
    path = Path(target) if target.startswith("/") else tmp_path / target
    if not target.startswith("/"):
        path.symlink_to("/dev/null")
    config = write_config(tmp_path, demo.url, output__path=str(path))
    result = await run_cli(str(config), "--progress", "none")
    assert result.code == 0, result.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert os.path.realpath(path) == "/dev/null"
    assert not Path("/dev/null.part").exists() and not Path("/dev/null.lock").exists()


async def test_a_stream_stopped_mid_run_holds_a_prefix_and_says_it_cannot_resume(
    slow_demo: DemoServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, slow_demo.url, pagination__page_size=20, concurrency__workers=2)
    sink = tmp_path / "sink"
    os.mkfifo(sink)
    reader = asyncio.ensure_future(asyncio.to_thread(sink.read_bytes))
    async with cli(config, "--output", str(sink)) as run:
        await run.signal_after(slow_demo, 5, 15)  # SIGTERM
        code, stderr = await run.ended()
        # If nothing was committed the run never opened the pipe: let the reader go.
        with contextlib.suppress(OSError):  # ENXIO: the reader already had its end of file
            os.close(os.open(sink, os.O_WRONLY | os.O_NONBLOCK))
    assert code == 130, stderr
    assert "a stream cannot be resumed" in stderr
    received = await reader
    assert expected_bytes(1_000).startswith(received)  # committed pages, in order
    assert not (tmp_path / "sink.checkpoint").exists()


async def test_the_output_is_owner_only_and_a_rerun_keeps_the_mode_it_was_given(
    demo: DemoServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, demo.url)
    output = output_of(tmp_path)
    old = os.umask(0o022)
    try:
        assert (await run_cli(str(config), "--progress", "none")).code == 0
        assert stat.S_IMODE(output.stat().st_mode) == 0o600
        output.chmod(0o640)
        assert (await run_cli(str(config), "--progress", "none")).code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(output.stat().st_mode) == 0o640
    assert output.read_bytes() == expected_bytes(1_000)


async def test_relative_paths_in_a_config_are_taken_from_its_folder(
    demo: DemoServer, tmp_path: Path
) -> None:
    folder, elsewhere = tmp_path / "jobs", tmp_path / "cwd"
    folder.mkdir()
    elsewhere.mkdir()
    config = write_config(folder, demo.url, output__path="data/items.jsonl")
    result = await run_cli(str(config), "--progress", "none", cwd=elsewhere)
    assert result.code == 0, result.stderr
    assert (folder / "data" / "items.jsonl").read_bytes() == expected_bytes(1_000)
    # A --output on the command line stays relative to the current folder.
    result = await run_cli(
        str(config), "--output", "cli.jsonl", "--progress", "none", cwd=elsewhere
    )
    assert result.code == 0, result.stderr
    assert (elsewhere / "cli.jsonl").read_bytes() == expected_bytes(1_000)


async def test_print_config_shows_an_unset_variable_as_written(tmp_path: Path) -> None:
    raw = {
        "source": {"url": "https://api.example.com/items", "records": "items"},
        "auth": {
            "type": "client_credentials",
            "token_url": "https://api.example.com/token",
            "client_id": "${CLIENT_ID}",
            "client_secret": "${CLIENT_SECRET}",
        },
        "output": {"path": "out.jsonl"},
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in os.environ.items() if k not in ("CLIENT_ID", "CLIENT_SECRET")}
    shown = await run_cli(str(config), "--print-config", env=env)
    assert shown.code == 0, shown.stderr
    printed = yaml.safe_load(shown.stdout)
    assert printed["auth"]["client_id"] == "${CLIENT_ID}"
    assert printed["auth"]["client_secret"] == "***"
    assert printed["output"]["path"] == str(tmp_path / "out.jsonl")
    run = await run_cli(str(config), env=env)
    assert run.code == 2
    assert_one_clear_line(run, "auth.client_id", "CLIENT_ID is not set")


async def test_print_config_shows_an_unset_variable_as_written_where_text_will_not_do(
    tmp_path: Path,
) -> None:
    raw = {
        "source": {"url": "${API_BASE}/items", "records": "items", "timeout": "${TIMEOUT}"},
        "concurrency": {"workers": "${WORKERS}"},
        "output": {"path": "out.jsonl"},
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    unset = ("API_BASE", "TIMEOUT", "WORKERS")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    shown = await run_cli(str(config), "--print-config", env=env)
    assert shown.code == 0, shown.stderr
    printed = yaml.safe_load(shown.stdout)
    assert printed["source"]["url"] == "${API_BASE}/items"
    assert printed["source"]["timeout"] == "${TIMEOUT}"
    assert printed["concurrency"]["workers"] == "${WORKERS}"
    run = await run_cli(str(config), env=env)
    assert run.code == 2
    assert_one_clear_line(run, "concurrency.workers", "WORKERS is not set")  # the first


async def test_print_config_names_an_unset_variable_no_stand_in_satisfies(tmp_path: Path) -> None:
    raw = {
        "source": {"url": "https://api.example.com/items", "records": "items"},
        "pagination": {"style": "${STYLE}"},
        "output": {"path": "out.jsonl"},
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in os.environ.items() if k != "STYLE"}
    shown = await run_cli(str(config), "--print-config", env=env)
    assert shown.code == 2
    assert_one_clear_line(shown, "pagination.style", "STYLE is not set")


def test_a_relative_ca_bundle_is_taken_from_the_config_s_folder(tmp_path: Path) -> None:
    folder = tmp_path / "jobs"
    folder.mkdir()
    trustme.CA().cert_pem.write_to_path(str(folder / "ca.pem"))
    raw = {
        "source": {"url": "https://api.example.com/items", "records": "items"},
        "tls": {"ca_bundle": "ca.pem"},
        "output": {"path": "/tmp/never-written.jsonl"},  # absolute: kept as it is
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(folder / "config.yaml")
    assert config.tls.ca_bundle == str(folder / "ca.pem")
    assert config.output.path == "/tmp/never-written.jsonl"


async def test_run_refuses_an_output_whose_lock_is_held_and_says_by_whom(
    demo: DemoServer, tmp_path: Path
) -> None:
    output = tmp_path / "out.jsonl"
    config = make_config(demo.url, output, auth={"client_secret": SECRET})
    with OutputLock(output, warn=pytest.fail), pytest.raises(OutputLocked) as caught:
        await run(config, policy=no_wait_policy())
    assert (caught.value.pid, caught.value.host) == (os.getpid(), socket.gethostname())
    assert demo.stats.data_requests == 0 and not output.exists()
    assert not lock_path(output).exists()  # released by its holder, the block above


async def test_a_pipe_nobody_reads_is_waited_for_and_a_signal_still_stops_the_run(
    demo: DemoServer, tmp_path: Path
) -> None:
    pipe, config = pipe_and_config(tmp_path, demo.url)
    async with cli(config) as run_:
        await run_.line_containing(f"waiting for a reader of the named pipe {pipe}")
        run_.process.send_signal(15)  # SIGTERM
        code, stderr = await run_.ended()
    assert code == 130, stderr
    assert f"while waiting for a reader of {pipe}: nothing was written to it" in stderr
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)


async def test_a_signal_stops_a_copy_into_a_pipe_whose_reader_stopped_reading(
    demo: DemoServer, tmp_path: Path
) -> None:
    """The reader opens the pipe and never reads: the records (104 kB, more than a pipe holds)
    fill it and the run waits. SIGTERM must still end the run, and its staging folder must go."""
    pipe, config = pipe_and_config(tmp_path, demo.url)
    staging = tmp_path / "tmp"  # TMPDIR of the run: where its staging folder is made
    staging.mkdir()
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "harvester", str(config), "--progress", "none"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(staging)},
    )
    try:
        # A pipe's default capacity on Linux is 64 kB, in 4 kB pages that a non-blocking
        # write fills only in part: half of it unread is enough to know the run writes.
        full = 1 << 15
        deadline = time.monotonic() + 60
        while _unread(reader) < full:  # polling the pipe, not waiting for a moment
            if process.returncode is not None or time.monotonic() > deadline:
                pytest.fail(f"the pipe never filled (exit {process.returncode})")
            await asyncio.sleep(0.01)
        process.send_signal(15)  # SIGTERM
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        os.close(reader)
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 130, stderr
    # 104 kB never fit in the pipe: the run is stopped waiting for it, or (the signal coming
    # while a page was being fetched) between two pages.
    said = stderr.decode()
    assert f"while {pipe} took no more: it received part of the output" in said or (
        "a stream cannot be resumed" in said
    )
    assert list(staging.iterdir()) == []  # the staging folder is removed
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)


def _unread(fd: int) -> int:
    """How many bytes wait in the pipe `fd` reads from (FIONREAD)."""
    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return count[0]


async def test_an_output_that_is_a_unix_socket_is_refused_before_any_request(
    demo: DemoServer, tmp_path: Path
) -> None:
    """open() on a socket file fails with ENXIO, which a pipe's wait would read as "no reader
    yet" and wait for forever."""
    path = tmp_path / "out.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        listener.listen()
        config = write_config(tmp_path, demo.url, output__path=str(path))
        result = await run_cli(str(config), "--progress", "none")
    finally:
        listener.close()
    assert result.code == 2, result.stderr
    assert_one_clear_line(result, "output.path", str(path), "UNIX socket")
    assert demo.stats.data_requests == 0
