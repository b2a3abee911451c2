"""The secret audit: every failure path, through the CLI and through the library, and not one
secret in anything the run leaves behind.

One API of the test's own on loopback answers as each path needs: its token endpoint refuses
and echoes what it was sent, its errors quote the API key and the token back, a header too long
for aiohttp, an answer that never comes, a certificate nobody trusts, next links that carry the
access token (Graph-API style) and a run stopped mid-way (SIGTERM for the CLI). Every secret has
characters that URLs encode, so that each of its forms (raw, percent-, plus-, query-encoded) is
looked for in stdout, stderr, log records, exceptions (text, reprs, fields, whole chains), the
stats JSON, the checkpoint and every other file the run wrote.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import signal
import ssl
import sys
import traceback
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import orjson
import pytest
import trustme
import yaml
from aiohttp import web
from yarl import URL

import harvester.tune.command
from harvester import cli
from harvester.checkpoint import Checkpoint, CheckpointFile
from harvester.config import parse_config
from harvester.demo.server import serve
from harvester.errors import (
    AuthError,
    CertificateError,
    HarvesterError,
    Interrupted,
    PageFetchError,
)
from harvester.runner import run
from harvester.secrets import Secrets
from harvester.stats import Stats
from harvester.stop import Stop

from .conftest import CliResult, no_wait_policy, raw_config, run_cli

CLIENT_ID = "audit app"
CLIENT_SECRET = "cl1ent/S3CRET+a&b=c"
API_KEY = "AP1/key+SUPERSECRET=9&x"
HEADER_KEY = "hdr:K3Y/SECRET+1"
STATIC_TOKEN = "st4tic/T0KEN+SECRET"
TOKEN_STEM = "1ssued/T0KEN+"  # the API's nth token is TOKEN_STEM + n
LAST_PAGE = 6


def url_forms(value: str) -> set[str]:
    """Every form a value may take in a URL or a form body."""
    query = URL.build(query={"k": value}).raw_query_string[2:]
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value), query}
    # And as a JSON string may write each: "/" as "\\/" (PHP), punctuation as \\u00XX.
    escaped = {json.dumps(f)[1:-1].replace("/", "\\/") for f in forms}
    hexed = {"".join(c if c.isalnum() else f"\\u{ord(c):04x}" for c in f) for f in forms}
    return forms | escaped | hexed


def basic_credential(client_id: str, secret: str) -> str:
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return base64.b64encode(pair.encode()).decode()


# --- the API ---------------------------------------------------------------------------------


@dataclass
class Api:
    """How the API answers (`mode`), and what it saw."""

    mode: str
    issued: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # next-link tokens other than the bearer's
    carried: list[str] = field(default_factory=list)  # next-link tokens, each as received
    block_at: int | None = None  # a page whose answer never comes
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    hold: asyncio.Event = field(default_factory=asyncio.Event)  # set only as the test ends

    async def token(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if self.mode == "token_refused":
            sent = f"{form.get('client_secret', '')} {request.headers.get('Authorization', '')}"
            echo = f"client secret not valid: you sent {sent}"
            body = {"error": "invalid_client", "error_description": echo}
            return web.json_response(body, status=401)
        self.issued.append(f"{TOKEN_STEM}{len(self.issued)}")
        return web.json_response({"access_token": self.issued[-1], "expires_in": 3600})

    async def items(self, request: web.Request) -> web.StreamResponse:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        key = request.query.get("api_key", "")
        if self.mode == "echo_key":  # JSON-escaped as PHP does ("\\/") and with \\u00XX
            header = request.headers.get("X-Api-Key", "")
            hexed = "".join(c if c.isalnum() else f"\\u{ord(c):04x}" for c in header)
            echo = json.dumps(f"bad request for key {key}, token {bearer}").replace("/", "\\/")
            return web.Response(status=400, text=f'{{"error": {echo}, "header": "{hexed}"}}')
        if self.mode == "long_header":  # more than aiohttp reads: it calls that a 400
            return web.json_response({"results": [], "next": None}, headers={"X-Pad": "x" * 9000})
        page = int(request.query.get("page", 0))
        if self.mode == "hang" or page == self.block_at:
            self.reached.set()
            await self.hold.wait()
        sent = request.query.get("access_token")
        if sent is not None:
            self.carried.append(sent)
            if sent != bearer:
                self.stale.append(sent)
                return web.Response(status=400, text=f"stale token {sent}, current {bearer}")
        following = request.url.update_query(page=page + 1, access_token=bearer)
        nxt = None if page == LAST_PAGE else str(following)
        return web.json_response({"results": [{"id": page}], "next": nxt})


@contextlib.asynccontextmanager
async def api_server(api: Api, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/oauth2/token", api.token)
    app.router.add_get("/items", api.items)
    async with serve(app, ssl_context=ssl_context) as url:
        try:
            yield url
        finally:
            api.hold.set()  # whatever still waits answers now, so that the server stops at once


def untrusted_tls() -> ssl.SSLContext:
    """A server context with a certificate from a CA the client was never told of."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(server)
    return server


def audit_raw(api: str, out: Path, mode: str) -> dict[str, Any]:
    """The config each path runs with: link pagination, an API key in a parameter and one in a
    header, a client secret sent as Basic (or, on the TLS path, a static bearer token)."""
    raw = raw_config(
        api,
        out,
        source={
            "url": f"{api}/items",
            "records": "results",
            "params": {"api_key": API_KEY},
            "headers": {"X-Api-Key": HEADER_KEY},
            "timeout": 2 if mode == "hang" else 10,  # loose enough for a busy machine
        },
        pagination={"style": "link", "next_url": "body:next", "total": "unknown"},
        concurrency={"workers": 1, "stop_grace": 0.5},
        retry={"max_attempts": 2, "initial_backoff": 0, "max_backoff": 0},
    )
    raw["auth"] = {
        "type": "client_credentials",
        "token_url": f"{api}/oauth2/token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    if mode == "tls":
        raw["auth"] = {"type": "bearer", "token": STATIC_TOKEN}
    return raw


# --- the scan --------------------------------------------------------------------------------


def secret_forms(api: Api) -> set[str]:
    values = [CLIENT_SECRET, API_KEY, HEADER_KEY, STATIC_TOKEN, *api.issued]
    values.append(basic_credential(CLIENT_ID, CLIENT_SECRET))
    return {form for value in values for form in url_forms(value)}


def chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def exception_texts(error: BaseException) -> list[str]:
    """What an exception may show: its traceback, and the str, repr and fields of each link."""
    texts = ["".join(traceback.format_exception(error))]
    for link in chain(error):
        texts += [str(link), repr(link), repr(link.args), repr(vars(link))]
    return texts


def files_left(folder: Path) -> list[str]:
    """Every file the run wrote (the config, which holds the secrets on purpose, aside)."""
    found = [p for p in folder.rglob("*") if p.is_file() and p.name != "config.yaml"]
    return [f"{p.name}: {p.read_text(errors='replace')}" for p in found]


def assert_no_secret(api: Api, texts: list[str]) -> None:
    forms = secret_forms(api)
    hits = [(form, text[:300]) for text in texts for form in forms if form in text]
    assert hits == []


# --- every failure path ----------------------------------------------------------------------

FAILURES = {
    "token_refused": AuthError,
    "echo_key": PageFetchError,
    "long_header": PageFetchError,
    "hang": PageFetchError,
    "tls": CertificateError,
}


@contextlib.asynccontextmanager
async def failing_api(mode: str) -> AsyncIterator[tuple[Api, str]]:
    api = Api(mode)
    async with api_server(api, untrusted_tls() if mode == "tls" else None) as url:
        yield api, url


@pytest.mark.parametrize("mode", FAILURES)
async def test_a_failing_library_run_shows_no_secret(
    tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="harvester")
    stats = Stats()
    async with failing_api(mode) as (api, url):
        config = parse_config(audit_raw(url, tmp_path / "out.jsonl", mode), environ={})
        with pytest.raises(HarvesterError) as caught:
            await run(config, stats=stats, policy=no_wait_policy(max_attempts=2))
    error = caught.value
    assert type(error) is FAILURES[mode], error
    if isinstance(error, PageFetchError) and mode == "long_header":
        # The server sent 200: the 400 is the code aiohttp's parser gives what it cannot read.
        assert error.status is None and "status 400" not in str(error), error
        assert "could not be read" in str(error)
    if isinstance(error, PageFetchError) and mode == "echo_key":
        assert error.status == 400 and "bad request for key ***" in error.body
    logged = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert_no_secret(
        api, [*exception_texts(error), *logged, orjson.dumps(stats.as_dict()).decode()]
    )
    assert not (tmp_path / "out.jsonl").exists()
    assert_no_secret(api, files_left(tmp_path))


def write_audit_config(folder: Path, url: str, mode: str) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(audit_raw(url, folder / "out.jsonl", mode)))
    return path


def cli_args(folder: Path, name: str) -> list[str]:
    stats = str(folder / f"{name}.stats.json")
    return ["--debug", "--log-level", "DEBUG", "--progress", "log", "--stats-json", stats]


@pytest.mark.parametrize("mode", FAILURES)
async def test_a_failing_cli_run_shows_no_secret(tmp_path: Path, mode: str) -> None:
    async with failing_api(mode) as (api, url):
        config = write_audit_config(tmp_path, url, mode)
        result = await run_cli(str(config), *cli_args(tmp_path, "run"))
        printed = await run_cli(str(config), "--print-config")
    assert result.code == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert errors, result.stderr
    if mode == "long_header":
        assert "status 400" not in errors[0] and "could not be read" in errors[0], errors[0]
    stats = orjson.loads((tmp_path / "run.stats.json").read_bytes())
    assert stats["exit_code"] == 1 and stats["error"]
    assert printed.code == 0 and "api_key: '***'" in printed.stdout, printed.output
    assert_no_secret(api, [result.stdout, result.stderr, printed.output, *files_left(tmp_path)])
    assert not (tmp_path / "out.jsonl").exists()


# --- a token in next links, and a run stopped mid-way ------------------------------------------


def expected_output() -> bytes:
    return b"".join(b'{"id":%d}\n' % page for page in range(LAST_PAGE + 1))


def assert_checkpoint_holds_the_token_as_a_placeholder(out: Path) -> None:
    saved = Path(f"{out}.checkpoint").read_text()
    assert "{token" in saved and "{secret:" in saved, saved  # the link had both; holds neither


async def test_a_library_run_stopped_mid_way_keeps_no_token_and_resumes_with_the_current_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="harvester")

    class StopAfterThree(Stop):
        @property
        def requested(self) -> bool:
            return stats.pages >= 3

    out, stats = tmp_path / "out.jsonl", Stats()
    api = Api("next_token")
    async with api_server(api) as url:
        config = parse_config(audit_raw(url, out, "next_token"), environ={})
        with pytest.raises(Interrupted) as caught:
            await run(config, stats=stats, policy=no_wait_policy(), stop=StopAfterThree())
        assert_checkpoint_holds_the_token_as_a_placeholder(out)
        texts = [*exception_texts(caught.value), *files_left(tmp_path)]
        resumed = Stats()
        await run(config, stats=resumed, policy=no_wait_policy())
    assert out.read_bytes() == expected_output()
    assert len(api.issued) == 2 and api.stale == []
    assert api.carried.count(api.issued[1]) == 4  # pages 3-6, from the resumed link on
    texts += [orjson.dumps(s.as_dict()).decode() for s in (stats, resumed)]
    texts += [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert_no_secret(api, [*texts, *files_left(tmp_path)])


async def test_a_cli_run_stopped_by_sigterm_keeps_no_token_and_resumes_with_the_current_one(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    api = Api("next_token", block_at=3)
    async with api_server(api) as url:
        config = write_audit_config(tmp_path, url, "next_token")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "harvester",
            str(config),
            *cli_args(tmp_path, "stopped"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            # Page 3 never answers: SIGTERM comes with pages 0-2 written and its link pending.
            reached = asyncio.ensure_future(api.reached.wait())
            exited = asyncio.ensure_future(process.wait())
            await asyncio.wait([reached, exited], timeout=60, return_when="FIRST_COMPLETED")
            exited.cancel()
            assert reached.done(), "the run ended before page 3"
            process.send_signal(signal.SIGTERM)
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        finally:
            if process.returncode is None:
                process.kill()
                await process.communicate()
        stopped = CliResult(process.returncode or 0, stdout.decode(), stderr.decode())
        assert stopped.code == 130, stopped.stderr
        assert_checkpoint_holds_the_token_as_a_placeholder(out)
        texts = [stopped.stdout, stopped.stderr, *files_left(tmp_path)]
        api.block_at = None
        resumed = await run_cli(str(config), *cli_args(tmp_path, "resumed"))
    assert resumed.code == 0, resumed.stderr
    assert out.read_bytes() == expected_output()
    assert len(api.issued) == 2 and api.stale == []
    assert api.carried.count(api.issued[1]) == 4  # pages 3-6, from the resumed link on
    assert_no_secret(api, [*texts, resumed.stdout, resumed.stderr, *files_left(tmp_path)])


async def test_a_library_run_masks_harvester_log_records_while_it_lasts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No CLI, no handler of harvester's: whatever a library user's logging collects from the
    `harvester` logger during run() is masked, issued tokens included; after it, nothing is."""
    caplog.set_level(logging.INFO, logger="harvester")
    log = logging.getLogger("harvester")

    class Telling(Stop):  # asked before each page: logs from inside the run
        @property
        def requested(self) -> bool:
            log.info("now %s with %s", api.issued[-1] if api.issued else "-", API_KEY)
            return False

    api = Api("next_token")
    async with api_server(api) as url:
        config = parse_config(audit_raw(url, tmp_path / "out.jsonl", "next_token"), environ={})
        await run(config, policy=no_wait_policy(), stop=Telling())
    during = [r.getMessage() for r in caplog.records if r.getMessage().startswith("now ")]
    assert during and all(m in ("now - with ***", "now *** with ***") for m in during), during
    assert "now *** with ***" in during
    log.info("after %s", API_KEY)
    assert caplog.records[-1].getMessage() == f"after {API_KEY}"


# --- a hostile server's text that looks like a checkpoint placeholder --------------------------

# What a server may send, hoping that a resumed run swaps it for a secret: the placeholders of
# the secret registry, by position and by key path, an escaped brace and a lone one.
LOOKALIKE = "{secret:0}{secret:auth.client_secret}{token:url}{{x}{"


@dataclass
class Lure:
    cursors: list[str] = field(default_factory=list)  # c as page 2 received it, each time
    failed: bool = False

    async def token(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"access_token": f"{TOKEN_STEM}0", "expires_in": 3600})

    async def items(self, request: web.Request) -> web.StreamResponse:
        following = f"http://{request.host}/p2?c={LOOKALIKE}"  # as written: braces unencoded
        return web.json_response({"results": [{"id": 0}], "next": following})

    async def p2(self, request: web.Request) -> web.StreamResponse:
        self.cursors.append(request.query.get("c", ""))
        if not self.failed:
            self.failed = True
            return web.Response(status=500, text="try again later")
        return web.json_response({"results": [{"id": 1}], "next": None})


async def test_text_that_looks_like_a_placeholder_resumes_exactly_as_the_server_sent_it(
    tmp_path: Path,
) -> None:
    lure, out = Lure(), tmp_path / "out.jsonl"
    app = web.Application()
    app.router.add_post("/oauth2/token", lure.token)
    app.router.add_get("/items", lure.items)
    app.router.add_get("/p2", lure.p2)
    async with serve(app) as url:
        raw = audit_raw(url, out, "lure")
        raw["retry"]["max_attempts"] = 1
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(raw))
        failed = await run_cli(str(config))
        saved = Path(f"{out}.checkpoint").read_text()
        resumed = await run_cli(str(config))
    assert failed.code == 1, failed.stderr
    assert resumed.code == 0, resumed.stderr
    assert lure.cursors == [LOOKALIKE, LOOKALIKE]  # never a secret in its place
    assert out.read_bytes() == b'{"id":0}\n{"id":1}\n'
    assert CLIENT_SECRET not in saved and quote(API_KEY, safe="") not in saved


def test_a_short_secret_leaves_counts_and_digests_as_they_are(tmp_path: Path) -> None:
    secrets = Secrets({"source.params.api_key": "1000"})
    chain = {"pages": 1000, "records": 1000, "bytes": 10000, "last_page": "ab1000cd"}
    chain["next"] = {"url": "http://127.0.0.1:1/items?api_key=1000&page=1000", "params": {}}
    checkpoint = Checkpoint(fingerprint={"n": 1000}, plan={"total": 1000}, sink={"chains": [chain]})
    file = CheckpointFile(tmp_path / "out.jsonl", secrets=secrets)
    file.save(checkpoint)
    saved = orjson.loads(file.path.read_bytes())
    assert saved["sink"]["chains"][0]["next"]["url"] == (
        "http://127.0.0.1:1/items?api_key={secret:source.params.api_key}&page={secret:source.params.api_key}"
    )
    assert {k: saved["sink"]["chains"][0][k] for k in ("pages", "records", "last_page")} == {
        "pages": 1000,
        "records": 1000,
        "last_page": "ab1000cd",
    }
    loaded = file.load({"n": 1000})
    assert (
        loaded is not None and loaded.sink == {"chains": [chain]} and loaded.plan == {"total": 1000}
    )


# --- registries given, and secrets in a URL's userinfo ------------------------------------------


async def test_a_registry_given_to_run_learns_the_configs_secrets(tmp_path: Path) -> None:
    given = Secrets()
    async with failing_api("echo_key") as (api, url):
        config = parse_config(audit_raw(url, tmp_path / "out.jsonl", "echo_key"), environ={})
        with pytest.raises(PageFetchError) as caught:
            await run(config, policy=no_wait_policy(), secrets=given)
    assert API_KEY in given.configured and HEADER_KEY in given.configured
    assert_no_secret(api, exception_texts(caught.value))


PASSWORD = "Hunter2SuperPass"


async def test_a_password_in_the_urls_userinfo_is_masked_with_its_basic_form(
    tmp_path: Path,
) -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        sent = request.headers.get("Authorization", "")
        return web.Response(status=400, text=f"bad credentials: {sent} ({request.url})")

    app = web.Application()
    app.router.add_get("/items", echo)
    async with serve(app) as url:
        base = URL(url).with_user("svc").with_password(PASSWORD)
        raw = raw_config(
            str(base),
            tmp_path / "out.jsonl",
            pagination={"style": "link", "next_url": "body:next", "total": "unknown"},
            retry={"max_attempts": 1, "initial_backoff": 0, "max_backoff": 0},
        )
        raw["auth"] = {"type": "none", "allow_insecure_http": True}
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(raw))
        result = await run_cli(str(config), *cli_args(tmp_path, "run"))
    assert result.code == 1, result.stderr
    basic = base64.b64encode(f"svc:{PASSWORD}".encode()).decode()
    shown = [result.stdout, result.stderr, *files_left(tmp_path)]
    assert "bad credentials" in result.stderr, result.stderr
    assert [t for t in shown if PASSWORD in t or basic in t] == []


# --- tune's exit paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_error_in_tune_is_one_masked_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    debug: bool,
) -> None:
    async def broken(config: Any, **_: Any) -> Any:  # a bug, its message quoting the API key
        raise RuntimeError(f"cannot tune {config.source.url}?api_key={API_KEY}")

    monkeypatch.setattr(harvester.tune.command, "tune", broken)
    config = write_audit_config(tmp_path, "http://127.0.0.1:9", "echo_key")
    code = cli.main(["tune", str(config), "--duration", "1", *(["--debug"] if debug else [])])
    printed = capsys.readouterr()
    assert code == 1
    errors = [line for line in printed.err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "internal error: RuntimeError: cannot tune" in errors[0]
    assert ("Traceback" in printed.err) == debug, printed.err
    assert_no_secret(Api("echo_key"), [printed.out, printed.err])
