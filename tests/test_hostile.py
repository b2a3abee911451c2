"""A hostile server on loopback against the real CLI: each attack ends with one clear line, exit 1,
a peak RSS under 300 MB and nothing at the output path.

The CLI runs under tests/loopback_only.py, which ends it (exit 99) before any connection or name
lookup beyond loopback: a hop harvester should refuse fails the test instead of leaving the host.
Peak RSS is the CLI process's own VmHWM, which the guard reports as it exits.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import web
from aiohttp.compression_utils import HAS_BROTLI

from tests.loopback_only import GUARD_EXIT

GUARD = Path(__file__).with_name("loopback_only.py")
MIB = 1 << 20
PEAK_RSS_LIMIT = 300 * 1000 * 1000  # bytes: "300 MB"
# Each case ends in a few seconds; this only keeps a hung CLI from hanging the suite.
HUNG = 60.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Outcome:
    code: int
    stderr: str
    peak_rss: int  # bytes; 0 if the process ended without saying
    output: Path

    def one_line(self, *needles: str) -> str:
        """The one ERROR line, after checking it holds every needle and no traceback shows."""
        assert "Traceback" not in self.stderr, self.stderr
        errors = [line for line in self.stderr.splitlines() if " ERROR " in line]
        assert len(errors) == 1, self.stderr
        for needle in needles:
            assert needle in errors[0], errors[0]
        return errors[0]


async def _stream(
    request: web.Request, chunk: bytes, times: int, **headers: str
) -> web.StreamResponse:
    """`chunk` sent `times` times, until the client hangs up: gigabytes without holding them."""
    response = web.StreamResponse(headers={"Content-Type": "application/json", **headers})
    await response.prepare(request)
    try:
        for _ in range(times):
            await response.write(chunk)
    except ConnectionError:
        pass  # harvester stopped reading: the point
    return response


_RECORDS = b'{"id": 1, "name": "' + b"x" * (MIB - 32) + b'"},'
_RECORDS = _RECORDS + b" " * (MIB - len(_RECORDS))  # one MiB of records, again and again


async def two_gib_with_length(request: web.Request) -> web.StreamResponse:
    return await _stream(request, _RECORDS, 2048, **{"Content-Length": str(2048 * MIB)})


async def two_gib_chunked(request: web.Request) -> web.StreamResponse:
    return await _stream(request, _RECORDS, 2048)


def _gzip_of_zeros() -> tuple[bytes, bytes]:
    """(gzip header and a MiB of zeros, the next MiB of zeros): the second repeats forever.

    A full flush resets the compressor, so every MiB after the first compresses to the same bytes.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = compressor.compress(b"0" * MIB) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(b"0" * MIB) + compressor.flush(zlib.Z_FULL_FLUSH)
    return first, again


async def gzip_bomb(request: web.Request) -> web.StreamResponse:
    """10 GiB of zeros in about 10 MB of gzip: deflate shrinks 1032:1 at the very most."""
    first, again = _gzip_of_zeros()
    response = web.StreamResponse(
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    await response.prepare(request)
    try:
        await response.write(first)
        for _ in range(10 * 1024 - 1):
            await response.write(again)
    except ConnectionError:
        pass
    return response


async def deep(request: web.Request) -> web.StreamResponse:
    depth = 100_000
    return web.Response(
        body=b'{"items": [' + b"[" * depth + b"]" * depth + b"]}",
        content_type="application/json",
    )


async def trickle(request: web.Request) -> web.StreamResponse:
    """A page one byte a second: every read comes within the read timeout, the body never ends."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        for byte in b'{"items": [' + b" " * 3600:
            await response.write(bytes([byte]))
            await asyncio.sleep(1)  # the attack itself, not a synchronisation
    except ConnectionError:
        pass
    return response


async def loop(request: web.Request) -> web.StreamResponse:
    return web.Response(status=302, headers={"Location": "/loop"})


def next_link(target: str) -> Handler:
    async def page(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"items": [{"id": 1}]}, headers={"Link": f'<{target}>; rel="next"'}
        )

    return page


def moved(to: str) -> Handler:
    async def redirect(request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": to})

    return redirect


async def long_header(request: web.Request) -> web.StreamResponse:
    return web.json_response({"items": []}, headers={"X-Padding": "x" * 9000})


# A page that is large but fine: 24 MiB of records that do not compress much, past the 16 MiB a
# body may hold in memory before it is spilled to a temporary file.
def _large_records() -> list[dict[str, Any]]:
    return [{"id": i, "text": random.Random(i).randbytes(400).hex()} for i in range(24 * 1024)]


def _large_page() -> bytes:
    return orjson.dumps({"items": _large_records()})


async def large(request: web.Request) -> web.StreamResponse:
    return await _stream(request, _large_page(), 1)  # chunked: no length to go by


async def large_gzip(request: web.Request) -> web.StreamResponse:
    body = gzip.compress(_large_page(), compresslevel=1)
    return web.Response(
        body=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )


async def brotli(request: web.Request) -> web.StreamResponse:
    headers = {"Content-Type": "application/json", "Content-Encoding": "br"}
    return web.Response(body=b"\x8b\x03\x80{}\x03", headers=headers)


async def cut_gzip(request: web.Request) -> web.StreamResponse:
    """A gzip stream cut off halfway, its Content-Length that of the cut: aiohttp inflates what
    came and says nothing of the missing end."""
    whole = gzip.compress(orjson.dumps({"items": [{"id": i} for i in range(2000)]}))
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    return web.Response(body=whole[: len(whole) // 2], headers=headers)


ROUTES: dict[str, Handler] = {
    "/cut-gzip": cut_gzip,
    "/large": large,
    "/large-gzip": large_gzip,
    "/length": two_gib_with_length,
    "/chunked": two_gib_chunked,
    "/bomb": gzip_bomb,
    "/deep": deep,
    "/trickle": trickle,
    "/loop": loop,
    "/file": next_link("file:///etc/passwd"),
    "/metadata": next_link("http://169.254.169.254/latest/meta-data/"),
    "/header": long_header,
    "/token": two_gib_chunked,
    "/br": brotli,
    "/moved": moved("http://169.254.169.254/latest/meta-data/"),
    "/ftp": moved("ftp://127.0.0.1/items"),
}


@pytest.fixture
async def hostile() -> AsyncIterator[str]:
    """The hostile server's base URL, on loopback."""
    app = web.Application()
    for path, handler in ROUTES.items():
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def harvest(
    folder: Path, url: str, *, auth: dict[str, str] | None = None, **source: Any
) -> Outcome:
    """The CLI (under the loopback guard) against `url`, its small timeouts, one retry."""
    output = folder / "out.jsonl"
    config = {
        "source": {"url": url, "records": "items", "timeout": 2, "read_timeout": 1.5, **source},
        "pagination": {"style": "link"},
        "concurrency": {"workers": 1},
        "retry": {"max_attempts": 2, "initial_backoff": 0, "max_backoff": 0},
        "output": {"path": str(output)},
    }
    if auth is not None:
        config["auth"] = auth
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    stderr_path = folder / "stderr.txt"
    with stderr_path.open("wb") as stderr:
        command = [sys.executable, str(GUARD), str(path)]
        process = await asyncio.to_thread(
            subprocess.Popen, command, stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        code = await asyncio.wait_for(asyncio.to_thread(process.wait), HUNG)
    except TimeoutError:
        process.kill()
        process.wait()
        raise
    text = stderr_path.read_text()
    peaks = [int(line.split()[1]) for line in text.splitlines() if line.startswith("PEAK_RSS_KIB")]
    outcome = Outcome(code, text, peaks[-1] * 1024 if peaks else 0, output)
    print(f"{url}: exit {outcome.code}, peak RSS {outcome.peak_rss / MIB:.0f} MiB")
    print(outcome.stderr)
    return outcome


def assert_failed_cleanly(outcome: Outcome, *needles: str) -> str:
    assert outcome.code == 1, outcome.stderr
    line = outcome.one_line(*needles)
    assert 0 < outcome.peak_rss < PEAK_RSS_LIMIT, f"peak RSS {outcome.peak_rss / MIB:.0f} MiB"
    assert not outcome.output.exists()
    return line


async def test_a_2_gib_body_with_its_length_is_refused_before_reading(
    tmp_path: Path, hostile: str
) -> None:
    outcome = await harvest(tmp_path, f"{hostile}/length")
    assert_failed_cleanly(
        outcome, "/length", f"{2048 * MIB} bytes (Content-Length)", "source.max_body_bytes"
    )
    assert "attempts" not in outcome.stderr  # not retried


async def test_a_2_gib_body_without_a_length_stops_at_the_limit(
    tmp_path: Path, hostile: str
) -> None:
    outcome = await harvest(tmp_path, f"{hostile}/chunked")
    # The default 256 MiB limit is read in full before it fails, within the RSS bound.
    assert_failed_cleanly(outcome, "/chunked", f"source.max_body_bytes ({256 * MIB} bytes)")


async def test_a_gzip_bomb_fails_on_its_ratio_before_it_inflates(
    tmp_path: Path, hostile: str
) -> None:
    outcome = await harvest(tmp_path, f"{hostile}/bomb")
    assert_failed_cleanly(outcome, "/bomb", "source.max_compression_ratio (100:1")
    assert outcome.peak_rss < 150 * MIB  # far from inflating even the body limit


async def test_100000_deep_nesting_fails_once_without_a_retry(tmp_path: Path, hostile: str) -> None:
    outcome = await harvest(tmp_path, f"{hostile}/deep")
    assert_failed_cleanly(outcome, "/deep", "nested more than 1024 levels deep")
    assert "attempts" not in outcome.stderr


async def test_a_body_trickled_a_byte_a_second_ends_at_the_total_timeout(
    tmp_path: Path, hostile: str
) -> None:
    # A byte a second, the read timeout (5 s) far above that gap even on a busy machine: only
    # the total timeout (2 s) can end each attempt.
    outcome = await harvest(tmp_path, f"{hostile}/trickle", read_timeout=5)
    assert_failed_cleanly(
        outcome, "/trickle", "gave up after 2 attempts", "longer than source.timeout (2 s)"
    )


async def test_a_stalled_body_ends_at_the_read_timeout(tmp_path: Path, hostile: str) -> None:
    # A byte a second, with a read timeout of 0.3 s (a gap 3 times longer than it, and a busy
    # machine only widens gaps) and a total one of 30 s, that no attempt comes near.
    outcome = await harvest(tmp_path, f"{hostile}/trickle", timeout=30, read_timeout=0.3)
    assert_failed_cleanly(outcome, "/trickle", "nothing received for source.read_timeout (0.3 s)")


async def test_a_redirect_loop_fails(tmp_path: Path, hostile: str) -> None:
    outcome = await harvest(tmp_path, f"{hostile}/loop")
    assert_failed_cleanly(outcome, "/loop", "redirected more than 10 times")


async def test_a_next_link_to_a_file_url_is_refused(tmp_path: Path, hostile: str) -> None:
    outcome = await harvest(tmp_path, f"{hostile}/file")
    assert_failed_cleanly(outcome, "file:///etc/passwd", "not http(s)")


async def test_a_next_link_to_the_metadata_address_is_refused_before_connecting(
    tmp_path: Path, hostile: str
) -> None:
    outcome = await harvest(tmp_path, f"{hostile}/metadata")
    assert_failed_cleanly(
        outcome, "169.254.169.254", "link-local", "refused before connecting", "allow_private_hosts"
    )
    assert "GUARD" not in outcome.stderr


async def test_a_redirect_to_the_metadata_address_is_refused_before_connecting(
    tmp_path: Path, hostile: str
) -> None:
    outcome = await harvest(tmp_path, f"{hostile}/moved")
    assert_failed_cleanly(outcome, "/moved", "redirect to 169.254.169.254, a link-local address")
    assert "GUARD" not in outcome.stderr


async def test_a_redirect_to_another_scheme_is_refused(tmp_path: Path, hostile: str) -> None:
    outcome = await harvest(tmp_path, f"{hostile}/ftp")
    assert_failed_cleanly(outcome, "/ftp", "ftp://127.0.0.1/items", "not an http(s) URL")


async def test_allow_private_hosts_lets_the_hop_through(tmp_path: Path, hostile: str) -> None:
    # The guard stops the connection the policy now allows: proof the policy let it through.
    outcome = await harvest(tmp_path, f"{hostile}/metadata", allow_private_hosts=True)
    assert outcome.code == GUARD_EXIT
    assert "GUARD: connect to ('169.254.169.254', 80)" in outcome.stderr


async def test_a_header_past_aiohttps_limit_is_one_line(tmp_path: Path, hostile: str) -> None:
    outcome = await harvest(tmp_path, f"{hostile}/header")
    line = assert_failed_cleanly(outcome, "/header", "could not be read as HTTP", "8190 bytes")
    assert "status 400" not in line  # the server never said 400


async def test_a_small_max_body_bytes_is_honoured(tmp_path: Path, hostile: str) -> None:
    outcome = await harvest(tmp_path, f"{hostile}/chunked", max_body_bytes=3 * MIB)
    assert_failed_cleanly(outcome, f"source.max_body_bytes ({3 * MIB} bytes)")
    assert outcome.peak_rss < 150 * MIB


async def test_a_2_gib_token_response_stops_at_a_megabyte(tmp_path: Path, hostile: str) -> None:
    auth = {"token_url": f"{hostile}/token", "client_id": "id", "client_secret": "secret"}
    outcome = await harvest(tmp_path, f"{hostile}/deep", auth=auth)
    assert_failed_cleanly(outcome, "/token", f"the token response limit ({MIB} bytes)")
    assert outcome.peak_rss < 150 * MIB


@pytest.mark.parametrize("path", ["/large", "/large-gzip"])
async def test_a_large_page_within_the_limits_is_written_exactly(
    tmp_path: Path, hostile: str, path: str
) -> None:
    # The page is built as it is served (24 MiB, gzipped for one case): on a busy machine that
    # takes seconds before the first byte, which the other cases' short timeouts would fail.
    outcome = await harvest(tmp_path, f"{hostile}{path}", timeout=120, read_timeout=60)
    assert outcome.code == 0, outcome.stderr
    expected = b"".join(orjson.dumps(r) + b"\n" for r in _large_records())
    assert outcome.output.read_bytes() == expected


@pytest.mark.skipif(HAS_BROTLI, reason="Brotli is installed: aiohttp inflates br")
async def test_an_encoding_aiohttp_cannot_inflate_is_one_line(tmp_path: Path, hostile: str) -> None:
    outcome = await harvest(tmp_path, f"{hostile}/br")
    line = assert_failed_cleanly(outcome, "/br", "could not be read as HTTP", "brotli (br)")
    assert "status 400" not in line


async def test_a_gzip_body_cut_short_is_retried_never_taken_for_the_page(
    tmp_path: Path, hostile: str
) -> None:
    # aiohttp does not check that a gzip stream ends; the JSON reader must catch the cut.
    outcome = await harvest(tmp_path, f"{hostile}/cut-gzip")
    assert_failed_cleanly(outcome, "/cut-gzip", "gave up after 2 attempts", "body cut short")
