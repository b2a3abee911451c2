"""Bad input, each through the real command line: one clear line, the right exit code, no
traceback without --debug, no secret, and never a file at the output path that is not complete.

HARVESTER_BAD_INPUT_TABLE=PATH writes the ERROR line each case observed as a Markdown table.
"""

from __future__ import annotations

import errno
import io
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import harvester.output
from harvester import cli
from harvester.demo import DemoServer
from harvester.demo.launch import demo_process

from .conftest import (
    SECRET,
    CliResult,
    assert_one_clear_line,
    expected_bytes,
    run_cli,
    write_config,
)

WRONG_SECRET = "not-the-s3cret"
_OBSERVED: list[tuple[str, int, str]] = []


@pytest.fixture(scope="module", autouse=True)
def _table() -> Iterator[None]:
    yield
    target = os.environ.get("HARVESTER_BAD_INPUT_TABLE")
    if target and _OBSERVED:
        rows = ["| bad input | exit | stderr ERROR line |", "| --- | --- | --- |"]
        rows += [f"| {what} | {code} | `{line}` |" for what, code, line in _OBSERVED]
        Path(target).write_text("\n".join(rows) + "\n")


def output_of(folder: Path) -> Path:
    return folder / "out" / "items.jsonl"


def assert_fails(
    result: CliResult, code: int, folder: Path, *needles: str, what: str, output: bool = False
) -> str:
    """One clear ERROR line holding every needle, exit `code`, and no output file (unless
    `output`: an earlier one the caller checks); the line is noted for the table."""
    assert result.code == code, result.output
    line = assert_one_clear_line(result, *needles)
    assert output or not output_of(folder).exists()
    message = line.split(" ERROR ", 1)[1].replace(str(folder), "<tmp>")
    _OBSERVED.append((what, code, message))
    return line


# Bad config: exit 2 before any request


@pytest.mark.parametrize(
    ("what", "text", "needles"),
    [
        (
            "malformed YAML",
            "source: {url: http://x/items\noutput: {path: OUT}\n",
            ["config.yaml:2:7", "malformed YAML", "expected ',' or '}'"],
        ),
        (
            "unknown key",
            "source: {url: http://x/items}\noutput: {path: OUT}\nconcurency: {}\n",
            ["config.yaml: concurency: unknown key", "did you mean 'concurrency'"],
        ),
        (
            "wrong type",
            "source: {url: http://x/items}\noutput: {path: OUT}\nconcurrency: {workers: many}\n",
            ["config.yaml: concurrency.workers: must be a number, got a string"],
        ),
        (
            "missing environment variable",
            "source: {url: http://x/items}\noutput: {path: OUT}\n"
            "auth: {token_url: http://x/token, client_id: me, "
            "client_secret: '${HARVESTER_NOPE}'}\n",
            ["config.yaml: auth.client_secret: environment variable HARVESTER_NOPE is not set"],
        ),
        (
            "missing required key",
            "source: {url: http://x/items}\n",
            ["config.yaml: output: is required"],
        ),
    ],
)
async def test_bad_config_exits_2_naming_file_and_key(
    tmp_path: Path, what: str, text: str, needles: list[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text.replace("OUT", str(output_of(tmp_path))))
    env = {k: v for k, v in os.environ.items() if k != "HARVESTER_NOPE"}
    result = await run_cli(str(config), env=env)
    assert_fails(result, 2, tmp_path, str(config), *needles, what=what)


async def test_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = await run_cli(str(tmp_path / "nope.yaml"))
    assert_fails(
        result, 2, tmp_path, f"{tmp_path}/nope.yaml: cannot read config file", what="no such file"
    )


# The token endpoint: exit 1, the token URL named


async def test_an_unreachable_token_url_fails_after_bounded_retries(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_config(tmp_path, f"http://127.0.0.1:{port}")
    result = await run_cli(str(config))
    assert_fails(
        result,
        1,
        tmp_path,
        "could not connect to the token endpoint",
        "2 attempt(s)",
        f"url=http://127.0.0.1:{port}/oauth2/token",
        what="unreachable token URL",
    )


async def test_wrong_credentials_name_the_client_error(demo: DemoServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, demo.url, auth__client_secret=WRONG_SECRET)
    result = await run_cli(str(config))
    assert_fails(
        result,
        1,
        tmp_path,
        "auth.client_id or auth.client_secret",
        f"url={demo.url}/oauth2/token",
        "status=401",
        "error=invalid_client",
        what="wrong credentials",
    )
    assert demo.stats.token_requests == 1  # a refusal is not retried


@pytest.mark.parametrize("refusal", [403, 400])
async def test_a_refused_scope_names_the_scope(
    demo: DemoServer, tmp_path: Path, refusal: int
) -> None:
    demo.settings.scope_refusal_status = refusal
    config = write_config(tmp_path, demo.url, auth__scope="admin")
    result = await run_cli(str(config))
    assert_fails(
        result,
        1,
        tmp_path,
        "auth.scope 'admin' not granted",
        f"url={demo.url}/oauth2/token",
        f"status={refusal}",
        "error=invalid_scope",
        what=f"scope refused ({refusal})",
    )
    assert demo.stats.token_requests == 1


# The data answers: exit 1, the page's URL and status named


async def test_a_records_path_not_in_the_body(demo: DemoServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, demo.url, source__records="data")
    result = await run_cli(str(config))
    assert_fails(
        result,
        1,
        tmp_path,
        f"page 0 at {demo.url}/items?offset=0&limit=50",
        "'data'",
        "items",
        what="records path not in the body",
    )


@pytest.mark.parametrize(
    ("trap", "needles", "what", "requests"),
    [
        (
            "garbage_at",
            ["answered text/plain, not JSON (unexpected character", "not json"],
            "non-JSON answer with status 200",
            3,  # page 2 once: whole, so not retried
        ),
        (
            "html_at",
            ["answered text/html, not JSON", "<title>Sign in</title>"],
            "HTML answer with status 200",
            3,  # page 2 once: not retried
        ),
    ],
)
async def test_a_200_that_is_not_json(
    demo: DemoServer, tmp_path: Path, trap: str, needles: list[str], what: str, requests: int
) -> None:
    """Plain text or an HTML page, not cut short, will not become JSON: no retry."""
    setattr(demo.settings, trap, 100)
    config = write_config(tmp_path, demo.url, concurrency__workers=1)
    result = await run_cli(str(config))
    where = f"page 2 status 200 at {demo.url}/items?offset=100&limit=50"
    assert_fails(result, 1, tmp_path, where, *needles, what=what)
    assert demo.stats.data_requests == requests


async def test_a_404_names_status_and_url(demo: DemoServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, demo.url, source__url=f"{demo.url}/nothing-here")
    result = await run_cli(str(config))
    assert_fails(
        result,
        1,
        tmp_path,
        f"page 0 status 404 at {demo.url}/nothing-here?offset=0&limit=50: unexpected status",
        what="404",
    )


@pytest.mark.parametrize("debug", [False, True])
async def test_debug_adds_the_traceback_and_still_no_secret(
    demo: DemoServer, tmp_path: Path, debug: bool
) -> None:
    config = write_config(tmp_path, demo.url, auth__client_secret=WRONG_SECRET)
    result = await run_cli(str(config), *(["--debug"] if debug else []))
    assert result.code == 1
    assert ("Traceback" in result.stderr) == debug
    assert ("harvester.errors.AuthError" in result.stderr) == debug
    assert SECRET not in result.output and WRONG_SECRET not in result.output
    assert not output_of(tmp_path).exists()


# The data changing under the run


async def test_a_total_that_changes_fails_and_keeps_the_earlier_output(
    demo: DemoServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, demo.url, concurrency__workers=1)
    output, part = output_of(tmp_path), Path(f"{output_of(tmp_path)}.part")
    assert (await run_cli(str(config))).code == 0
    earlier = output.read_bytes()
    # Pages go out one by one: the third data request from now is page 2.
    demo.settings.grow_by, demo.settings.grow_at = 100, demo.stats.data_requests + 3
    result = await run_cli(str(config))
    assert_fails(
        result,
        1,
        tmp_path,
        f"page 2 at {demo.url}/items?offset=100&limit=50",
        "1000 records at the start, 1100 now",
        f"partial data is kept in {part}",
        what="total changes during the run",
        output=True,
    )
    assert output.read_bytes() == earlier == expected_bytes(1_000)
    assert part.read_bytes() == expected_bytes(100)


async def test_a_page_repeating_the_previous_one_fails(demo: DemoServer, tmp_path: Path) -> None:
    demo.settings.repeat_page_at = 100  # page 2 answers the records of page 1
    config = write_config(tmp_path, demo.url)
    result = await run_cli(str(config))
    assert_fails(
        result,
        1,
        tmp_path,
        "page 2",
        "repeats the records of page",
        what="a page repeats the previous page",
    )


# The output


@pytest.mark.parametrize("flags", [[], ["--fresh"]], ids=["", "fresh"])
async def test_an_output_folder_that_cannot_be_made(
    demo: DemoServer, tmp_path: Path, flags: list[str]
) -> None:
    # A regular file where the folder should be stops root too, unlike a folder's mode bits.
    (tmp_path / "out").write_text("not a folder")
    config = write_config(tmp_path, demo.url)
    result = await run_cli(str(config), *flags)
    assert_fails(
        result,
        1,
        tmp_path,
        f"output {tmp_path}/out/items.jsonl: cannot write",
        f"{tmp_path}/out is a file, not a folder",
        what="output folder not writable",
    )
    assert (tmp_path / "out").read_text() == "not a folder"
    assert demo.stats.data_requests == 0  # found before the first request


class _FullDisk(io.FileIO):
    """A file on a disk with `room` bytes free: the write that would pass it fails, ENOSPC."""

    room = 0

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.name)
        return super().write(data)


def _open_on_full_disk(room: int) -> Callable[..., io.BufferedRandom]:
    def open_file(
        path: Path, mode: str, buffering: int, opener: Callable[[str, int], int]
    ) -> io.BufferedRandom:
        raw = _FullDisk(path, mode.replace("b", ""), opener=opener)
        raw.room = room
        return io.BufferedRandom(raw, buffering)

    return open_file


@pytest.mark.usefixtures("harvester_logging")
@pytest.mark.parametrize("buffer", [4096, None], ids=["while-writing", "at-the-end"])
def test_a_full_disk(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    buffer: int | None,
) -> None:
    """ENOSPC from the .part file, mid-run (small buffer) or when flushing at the end."""
    monkeypatch.setattr(harvester.output, "open", _open_on_full_disk(20_000), raising=False)
    if buffer is not None:
        monkeypatch.setattr(harvester.output, "WRITE_BUFFER", buffer)
    options = ["--port", "0", "--quiet", "--records", "1000", "--client-secret", SECRET]
    # A demo process of its own: cli.main runs its own event loop here, in the main thread.
    with demo_process(options) as url:
        code = cli.main([str(write_config(tmp_path, url)), "--progress", "none"])
    captured = capsys.readouterr()
    result = CliResult(code, captured.out, captured.err)
    part = Path(f"{output_of(tmp_path)}.part")
    assert_fails(
        result,
        1,
        tmp_path,
        f"output {part}: ",
        "No space left on device",
        what=f"disk full ({'while writing' if buffer else 'at the end'})",
    )
    assert expected_bytes(1_000).startswith(part.read_bytes())  # partial data, in order
