"""The progress line as a terminal shows it: the real CLI under a pseudo-terminal of a given
width, its output rendered by a terminal emulator (pyte), the screen checked after every read.

The demo API answers each data request after `LATENCY` seconds, so a run lasts a few seconds
(bounded: the records, the page size and the workers fix the number of rounds). Nothing waits
on time: the test acts when the screen shows what it waits for.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyte

from harvester.demo.launch import demo_process

from .conftest import SECRET, write_config

LATENCY = "0.3"
TIMEOUT = 90.0  # seconds a run may take on a busy machine before the test gives up
# A row that holds the progress line: it begins with the percentage, or with the records
# where the line has no room for more.
PROGRESS_ROW = re.compile(r"^\d{1,3}%(\||  )|^[\d,]+/[\d,]+ records")
DEMO = ["--latency", LATENCY, "--client-secret", SECRET, "--quiet"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class Terminal:
    code: int
    text: str  # everything written, ANSI sequences removed
    screens: list[list[str]] = field(default_factory=list)  # the rows after each read

    def progress_lines(self) -> list[str]:
        """Every state of the progress line written, as written between two \\r or \\n."""
        return [part for part in re.split(r"[\r\n]", self.text) if PROGRESS_ROW.match(part)]


def run_in_terminal(
    args: list[str],
    *,
    columns: int,
    cwd: Path,
    on_screen: Callable[[list[str], subprocess.Popen[bytes]], None] | None = None,
) -> Terminal:
    """`python -m harvester ARGS` with stdin, stdout and stderr on a pseudo-terminal
    `columns` wide; `on_screen` sees the screen's rows after every read."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(
        [sys.executable, "-m", "harvester", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    screen = pyte.Screen(columns, 50)
    stream = pyte.ByteStream(screen)
    raw = b""
    screens = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                break
            if not data:
                break
            raw += data
            stream.feed(data)
            rows = [row.rstrip() for row in screen.display]
            screens.append(rows)
            if on_screen is not None:
                on_screen(rows, process)
        code = process.wait(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return Terminal(code, ANSI.sub("", raw.decode("utf-8", "replace")), screens)


def assert_one_line_below_the_logs(terminal: Terminal, columns: int) -> None:
    """On every screen: at most one progress row, the last row written (every log line sits
    above it, none glued onto it); and no state of the line wider than the terminal."""
    seen = 0
    for rows in terminal.screens:
        progress = [i for i, row in enumerate(rows) if PROGRESS_ROW.match(row)]
        assert len(progress) <= 1, "\n".join(rows)
        written = [i for i, row in enumerate(rows) if row]
        if progress:
            seen += 1
            assert progress[0] == written[-1], "\n".join(rows)
        for row in rows:  # a log record never shares its row with the line
            assert not (" INFO " in row or " WARNING " in row) or "rec/s" not in row, row
    assert seen >= 2, terminal.text  # the line was there, redrawn in place
    lines = terminal.progress_lines()
    assert lines and max(len(line.rstrip()) for line in lines) < columns, lines


def records_shown(rows: list[str]) -> int:
    for row in rows:
        if PROGRESS_ROW.match(row):
            found = re.search(r"([\d,]+)/[\d,]+ records", row)
            return int(found.group(1).replace(",", "")) if found else 0
    return 0


def test_one_line_at_80_columns_logs_above_it_and_a_resume_shown_from_the_start(
    tmp_path: Path,
) -> None:
    options = ["--port", "0", "--records", "3000", *DEMO]
    with demo_process(options) as url:
        config = str(write_config(tmp_path, url))
        interrupted = False

        def interrupt_midway(rows: list[str], process: subprocess.Popen[bytes]) -> None:
            nonlocal interrupted
            if not interrupted and records_shown(rows) >= 600:
                process.send_signal(signal.SIGINT)
                interrupted = True

        first = run_in_terminal([config], columns=80, cwd=tmp_path, on_screen=interrupt_midway)
        second = run_in_terminal([config], columns=80, cwd=tmp_path)

    assert first.code == 130, first.text
    assert_one_line_below_the_logs(first, 80)
    # The SIGINT warning is printed above the line, on a row of its own.
    warned = [rows for rows in first.screens if any("SIGINT: stopping" in r for r in rows)]
    assert warned, first.text
    for rows in warned:
        row = next(r for r in rows if "SIGINT: stopping" in r)
        assert row.index("SIGINT") < 40 and "rec/s" not in row, row

    assert second.code == 0, second.text
    assert_one_line_below_the_logs(second, 80)
    resumed = re.search(r"resuming at ([\d,]+) records", second.text)
    assert resumed, second.text
    shown = [rows for rows in second.screens if records_shown(rows)]
    assert shown, second.text
    # From the first drawing of the line on, it says the run resumed, and the log said so
    # above it before that.
    for rows in shown:
        line = next(r for r in rows if PROGRESS_ROW.match(r))
        assert f"resumed at {resumed.group(1)}" in line, line
        assert any("resuming at" in r for r in rows), rows
    assert "records      3,000" in second.text
    assert (tmp_path / "out" / "items.jsonl").read_bytes().count(b"\n") == 3000


def test_one_line_that_fits_40_columns(tmp_path: Path) -> None:
    options = ["--port", "0", "--records", "1500", *DEMO]
    with demo_process(options) as url:
        config = str(write_config(tmp_path, url))
        terminal = run_in_terminal([config], columns=40, cwd=tmp_path)
    assert terminal.code == 0, terminal.text
    assert_one_line_below_the_logs(terminal, 40)
    # The fields of least worth went; the records and the percentage stayed.
    assert all(re.match(r"\d+%  [\d,]+/1,500 records", line) for line in terminal.progress_lines())
