"""Secrets end to end: redirects to other origins, TLS, and no secret or token in any output.

Every server here is real and listens on loopback: the redirect tests need two origins (two
ports, or 127.0.0.1 and 127.0.0.2), the TLS tests a certificate from a throwaway CA (trustme).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import ssl
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import trustme
from aiohttp import web

from harvester.auth import Token
from harvester.config import Config
from harvester.demo import DemoServer, DemoSettings, expected_records
from harvester.demo.server import run_demo, serve
from harvester.errors import AuthError, CertificateError, HarvesterError, PageFetchError
from harvester.runner import run
from harvester.stats import Stats

from .conftest import (
    CliResult,
    expected_bytes,
    make_config,
    no_wait_policy,
    run_cli,
    write_config_file,
)

SECRET = "s3cr3t-VALUE-7d1e"
HEADER_KEY = "hdr-K3Y-5b2a"  # an API key in a header of source.headers
TOKEN = "echoed-T0KEN-41af"


# --- loopback servers that record what they are sent --------------------------------------


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Answer = Callable[[web.Request], web.StreamResponse]


@contextlib.asynccontextmanager
async def recorder(
    answer: Answer, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[Seen]]]:
    """A server answering every request with `answer(request)`; yields its URL and what it saw."""
    seen: list[Seen] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append(Seen(request.method, request.path_qs, dict(request.headers), body))
        return answer(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with serve(app, host, ssl_context=ssl_context) as url:
        yield url, seen


def redirect(to: str, status: int = 302) -> Answer:
    """Answers every request with a redirect to `to` + the request's own path and query."""
    return lambda request: web.Response(status=status, headers={"Location": to + request.path_qs})


def token_and_data(data: Answer) -> Answer:
    """A token endpoint issuing TOKEN at /oauth2/token; `data` answers everything else."""

    def answer(request: web.Request) -> web.StreamResponse:
        if request.path == "/oauth2/token":
            return web.json_response({"access_token": TOKEN, "expires_in": 3600})
        return data(request)

    return answer


def items(request: web.Request) -> web.StreamResponse:
    return web.json_response({"items": [{"id": 0}, {"id": 1}], "total": 2})


def secret_headers(seen: Seen) -> set[str]:
    return {name for name in seen.headers if name.lower() in ("authorization", "x-api-key")}


def api_config(api: str, out: Path, **sections: dict[str, Any]) -> Config:
    """The API at `api` with a token from its /oauth2/token and an API key header as well."""
    source = {"url": f"{api}/items", "headers": {"X-Api-Key": HEADER_KEY}}
    return make_config(api, out, source=source, **sections)


# --- redirects -----------------------------------------------------------------------------


async def test_aiohttp_itself_drops_authorization_but_not_other_secrets_across_origins() -> None:
    """Why harvester follows redirects itself: aiohttp (client.py, `if url.origin() !=
    redirect_origin:`) drops Authorization, Cookie and Proxy-Authorization, nothing else."""
    headers = {"Authorization": "Bearer x-1234", "X-Api-Key": HEADER_KEY}
    form = {"client_secret": SECRET}
    async with (
        recorder(items) as (other, seen),
        recorder(redirect(other, 307)) as (first, _),
        aiohttp.ClientSession() as session,
        session.post(f"{first}/token", headers=headers, data=form) as response,
    ):
        assert response.status == 200
    (hop,) = seen
    assert "Authorization" not in hop.headers
    assert hop.headers["X-Api-Key"] == HEADER_KEY  # carried along
    assert SECRET.encode() in hop.body  # 307 keeps the POST body: a client_secret_post leak


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("other_host", ["127.0.0.1", "127.0.0.2"])  # another port or host
async def test_a_data_redirect_to_another_origin_carries_no_secret(
    tmp_path: Path, status: int, other_host: str
) -> None:
    async with (
        recorder(items, host=other_host) as (other, seen),
        recorder(token_and_data(redirect(other, status))) as (api, first_seen),
    ):
        out = tmp_path / "out.jsonl"
        await run(api_config(api, out), policy=no_wait_policy())
    assert out.read_bytes() == b'{"id":0}\n{"id":1}\n'
    (hop,) = seen
    assert hop.path == "/items?offset=0&limit=100"
    assert secret_headers(hop) == set()
    assert hop.headers["Accept"] == "application/json"  # what is not secret still goes
    assert secret_headers(first_seen[-1]) == {"Authorization", "X-Api-Key"}


async def test_a_redirect_within_the_origin_keeps_the_token(tmp_path: Path) -> None:
    def moved(request: web.Request) -> web.StreamResponse:
        if request.path == "/items":
            return web.Response(status=301, headers={"Location": "/v2" + request.path_qs})
        return items(request)

    async with recorder(token_and_data(moved)) as (api, seen):
        out = tmp_path / "out.jsonl"
        await run(api_config(api, out), policy=no_wait_policy())
    assert [s.path for s in seen] == [
        "/oauth2/token",
        "/items?offset=0&limit=100",
        "/v2/items?offset=0&limit=100",
    ]
    assert secret_headers(seen[-1]) == {"Authorization", "X-Api-Key"}


async def test_another_origin_answering_401_after_a_redirect_fails_at_once(tmp_path: Path) -> None:
    def refuse(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "invalid_token"}, status=401)

    async with (
        recorder(refuse, host="127.0.0.2") as (other, seen),
        recorder(token_and_data(redirect(other))) as (api, first_seen),
    ):
        with pytest.raises(AuthError, match="another origin") as caught:
            await run(api_config(api, tmp_path / "out.jsonl"), policy=no_wait_policy())
    assert other in str(caught.value) and caught.value.status == 401
    assert [s.path for s in first_seen].count("/oauth2/token") == 1  # no refresh loop
    assert len(seen) == 1 and secret_headers(seen[0]) == set()


async def test_a_redirect_loop_fails_with_the_url(tmp_path: Path) -> None:
    async with recorder(token_and_data(redirect(""))) as (api, seen):
        with pytest.raises(PageFetchError, match="redirected more than 10 times") as caught:
            await run(api_config(api, tmp_path / "out.jsonl"), policy=no_wait_policy())
    assert caught.value.url.startswith(f"{api}/items")
    assert len(seen) == 1 + 11


@pytest.mark.parametrize("status", [307, 308])
@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_a_token_endpoint_redirect_is_not_followed(
    tmp_path: Path, status: int, method: str
) -> None:
    def issue(request: web.Request) -> web.StreamResponse:
        return web.json_response({"access_token": TOKEN})

    async with (
        recorder(issue, host="127.0.0.2") as (other, seen),
        recorder(redirect(other, status)) as (api, _),
    ):
        auth = {"client_secret": SECRET, "auth_method": method}
        with pytest.raises(AuthError, match="redirects to") as caught:
            await run(api_config(api, tmp_path / "out.jsonl", auth=auth), policy=no_wait_policy())
    assert seen == []  # the other host never heard of us
    error = caught.value
    assert f"{other}/oauth2/token" in str(error) and error.url == f"{api}/oauth2/token"
    assert error.status == status and "auth.token_url" in str(error)


# --- TLS -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tls:
    server: ssl.SSLContext  # holds the certificate for 127.0.0.1
    ca_file: Path  # the CA that signed it, as PEM


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Tls(server, ca_file)


@contextlib.asynccontextmanager
async def https_demo(tls: Tls, records: int = 300) -> AsyncIterator[DemoServer]:
    settings = DemoSettings(records=records, client_secret=SECRET)
    async with run_demo(settings, ssl_context=tls.server) as demo:
        assert demo.url.startswith("https://127.0.0.1:")
        yield demo


def cli_config(folder: Path, url: str, **sections: dict[str, Any]) -> Path:
    """folder/config.yaml for the CLI: the API at `url`, with SECRET as the client secret."""
    return write_config_file(folder, url, **{"auth": {"client_secret": SECRET}, **sections})


def error_lines(result: CliResult) -> list[str]:
    return [line for line in result.stderr.splitlines() if " ERROR " in line]


async def test_an_unknown_ca_fails_with_one_clear_line(tmp_path: Path, tls: Tls) -> None:
    async with https_demo(tls) as demo:
        result = await run_cli(str(cli_config(tmp_path, demo.url)))
        asked = demo.stats.token_requests
    assert result.code == 1
    (line,) = error_lines(result)
    assert f"{demo.url}/oauth2/token" in line
    assert "certificate" in line and "could not be verified" in line and "tls.ca_bundle" in line
    assert "Traceback" not in result.stderr
    assert asked == 0  # nothing went over the connection that could not be trusted


async def test_a_certificate_error_is_not_retried(tmp_path: Path, tls: Tls) -> None:
    stats = Stats()
    async with https_demo(tls) as demo:
        config = make_config(demo.url, tmp_path / "out.jsonl")
        with pytest.raises(CertificateError) as caught:
            await run(config, stats=stats, policy=no_wait_policy())
    assert (stats.token_requests, sum(stats.retries.values())) == (1, 0)
    assert caught.value.url == f"{demo.url}/oauth2/token"
    assert "self-signed" in caught.value.reason or "issuer" in caught.value.reason


async def test_a_data_request_to_an_unverified_host_fails_the_same_way(
    tmp_path: Path, tls: Tls
) -> None:
    async with recorder(items, ssl_context=tls.server) as (api, seen):
        config = make_config(api, tmp_path / "out.jsonl", auth={"type": "none"})
        with pytest.raises(CertificateError) as caught:
            await run(config, policy=no_wait_policy())
    assert caught.value.url == f"{api}/items?offset=0&limit=100"
    assert seen == []


async def test_tls_ca_bundle_trusts_a_private_ca(tmp_path: Path, tls: Tls) -> None:
    out = tmp_path / "out.jsonl"
    async with https_demo(tls) as demo:
        config = make_config(
            demo.url, out, tls={"ca_bundle": str(tls.ca_file)}, auth={"client_secret": SECRET}
        )
        stats = await run(config, policy=no_wait_policy())
    assert out.read_bytes() == expected_bytes(300)
    assert stats.warnings == []


async def test_tls_verify_false_harvests_and_warns_on_every_run(
    tmp_path: Path, tls: Tls, caplog: pytest.LogCaptureFixture
) -> None:
    stats_path = tmp_path / "stats.json"
    async with https_demo(tls) as demo:
        config = cli_config(tmp_path, demo.url, tls={"verify": False})
        result = await run_cli(str(config), "--stats-json", str(stats_path))
        library = make_config(
            demo.url,
            tmp_path / "again.jsonl",
            tls={"verify": False},
            auth={"client_secret": SECRET},
        )
        with caplog.at_level(logging.WARNING, logger="harvester"):
            for _ in range(2):
                await run(library, policy=no_wait_policy())
    assert result.code == 0, result.stderr
    assert [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()] == (
        expected_records(300)
    )
    (warning,) = [line for line in result.stderr.splitlines() if " WARNING " in line]
    assert "TLS certificates are not checked" in warning
    assert any(
        "TLS certificates are not checked" in w
        for w in orjson.loads(stats_path.read_bytes())["warnings"]
    )
    said = [r.getMessage() for r in caplog.records if "TLS certificates" in r.getMessage()]
    assert len(said) == 2


# --- nothing secret in any output ----------------------------------------------------------


def basic_credential(client_id: str, secret: str) -> str:
    return base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def assert_absent(secrets: list[str], *texts: str) -> None:
    for secret in secrets:
        for text in texts:
            assert secret not in text


def outputs(folder: Path, result: CliResult) -> list[str]:
    """Everything a run left behind: stdout, stderr and every file it wrote (not the config)."""
    written = [p for p in folder.rglob("*") if p.is_file() and p.name != "config.yaml"]
    files = [p.read_text(errors="replace") for p in written]
    return [result.stdout, result.stderr, *files]


async def test_no_secret_or_token_shows_anywhere_in_a_debug_harvest(tmp_path: Path) -> None:
    # Two runs, the tokens revoked in the middle of each: four tokens issued, each to be hidden.
    settings = DemoSettings(records=2_000, client_secret=SECRET, revoke_tokens_after=8)
    async with run_demo(settings) as demo:
        config = cli_config(tmp_path, demo.url, source={"headers": {"X-Api-Key": HEADER_KEY}})
        args = ["--debug", "--log-level", "DEBUG", "--progress", "log"]
        result = await run_cli(str(config), *args, "--stats-json", str(tmp_path / "stats.json"))
        demo.settings.revoke_tokens_after = demo.stats.data_requests + 3
        second = await run_cli(str(config), *args, "--stats-json", str(tmp_path / "stats2.json"))
        printed = await run_cli(str(config), "--print-config")
        tokens = demo.issued_tokens
    assert (result.code, second.code, printed.code) == (0, 0, 0), result.stderr
    assert len(tokens) >= 3
    secrets = [SECRET, HEADER_KEY, basic_credential("demo", SECRET), *tokens]
    assert_absent(secrets, *outputs(tmp_path, result), second.output, printed.output)
    assert "client_secret: '***'" in printed.stdout


async def test_no_secret_shows_when_the_credentials_are_wrong(tmp_path: Path) -> None:
    wrong = "wr0ng-S3CRET-e9a0"
    async with run_demo(DemoSettings(records=100, client_secret=SECRET)) as demo:
        config = cli_config(tmp_path, demo.url, auth={"client_secret": wrong})
        result = await run_cli(
            str(config), "--debug", "--log-level", "DEBUG", "--stats-json", str(tmp_path / "s.json")
        )
    assert result.code == 1
    assert "invalid_client" in error_lines(result)[0]
    assert_absent([wrong, SECRET, basic_credential("demo", wrong)], *outputs(tmp_path, result))


def echo_token(status: int) -> Answer:
    """Data answers that quote the Authorization header back, as some APIs' errors do."""

    def answer(request: web.Request) -> web.StreamResponse:
        echoed = {"error": "rejected", "you_sent": request.headers.get("Authorization", "")}
        return web.json_response(echoed, status=status)

    return answer


@pytest.mark.parametrize("status", [400, 503])  # failed at once; retried, then given up
async def test_an_error_body_echoing_the_token_never_shows_it(tmp_path: Path, status: int) -> None:
    async with recorder(token_and_data(echo_token(status))) as (api, _):
        config = cli_config(tmp_path, api, auth={"client_secret": SECRET})
        result = await run_cli(
            str(config), "--debug", "--log-level", "DEBUG", "--stats-json", str(tmp_path / "s.json")
        )
    assert result.code == 1
    assert "you_sent" in error_lines(result)[0] and "***" in error_lines(result)[0]
    assert_absent([TOKEN, SECRET], *outputs(tmp_path, result))


def chain(error: BaseException) -> Iterator[BaseException]:
    current: BaseException | None = error
    while current is not None:
        yield current
        current = current.__cause__ or current.__context__


@pytest.mark.parametrize("status", [400, 503])
async def test_run_scrubs_an_echoed_token_from_its_exceptions(tmp_path: Path, status: int) -> None:
    """Used as a library, without the CLI's log scrubber: the exceptions themselves are clean."""
    async with recorder(token_and_data(echo_token(status))) as (api, _):
        with pytest.raises(HarvesterError) as caught:
            await run(make_config(api, tmp_path / "out.jsonl"), policy=no_wait_policy())
    assert isinstance(caught.value, PageFetchError) and "you_sent" in caught.value.body
    shown = "".join(traceback.format_exception(caught.value))
    fields = [repr(vars(e)) for e in chain(caught.value)]
    assert_absent([TOKEN, f"Bearer {TOKEN}"], shown, *fields)


def test_reprs_never_show_a_secret(tmp_path: Path) -> None:
    config = make_config(
        "https://api.test",
        tmp_path / "out.jsonl",
        source={"headers": {"Authorization": f"Bearer {TOKEN}"}, "params": {"api_key": HEADER_KEY}},
        auth={"client_secret": SECRET, "extra_params": {"client_assertion": "jwt-A55ERT"}},
    )
    texts = [repr(config), str(config), repr(config.auth), repr(config.source)]
    texts += [repr(Token(TOKEN, generation=1)), str(Token(TOKEN, generation=1))]
    assert_absent([SECRET, TOKEN, HEADER_KEY, "jwt-A55ERT"], *texts)
    assert "SourceConfig(url='https://api.test/items'" in repr(config.source)


# --- next links ----------------------------------------------------------------------------


def link_pages(last: int, *, next_to: str | None = None) -> Answer:
    """Link pagination that carries every query parameter (an api_key too) into its next link,
    as Django REST Framework does; page `last` links to `next_to`, if given."""

    def answer(request: web.Request) -> web.StreamResponse:
        page = int(request.query.get("page", 0))
        following: str | None = str(request.url.update_query(page=page + 1))
        if page == last:
            following = next_to
        return web.json_response({"results": [{"id": page}], "next": following})

    return answer


def link_config(api: str, out: Path, **source: Any) -> Config:
    return make_config(
        api,
        out,
        source={"url": f"{api}/items", "records": "results", **source},
        pagination={"style": "link", "next_url": "body:next", "total": "unknown"},
        concurrency={"workers": 1},
    )


async def test_a_next_link_holding_an_api_key_is_checkpointed_without_it(tmp_path: Path) -> None:
    from harvester.errors import Interrupted
    from harvester.stop import Stop

    class StopAfterTwo(Stop):
        @property
        def requested(self) -> bool:
            return stats.pages >= 2

    out = tmp_path / "out.jsonl"
    stats = Stats()
    async with recorder(token_and_data(link_pages(4))) as (api, seen):
        config = link_config(api, out, params={"api_key": SECRET})
        with pytest.raises(Interrupted):
            await run(config, stats=stats, policy=no_wait_policy(), stop=StopAfterTwo())
        saved = Path(f"{out}.checkpoint").read_text()
        assert SECRET not in saved and "{secret:" in saved
        assert Path(f"{out}.checkpoint").stat().st_mode & 0o077 == 0  # owner only
        await run(config, policy=no_wait_policy())
    assert out.read_bytes() == b"".join(b'{"id":%d}\n' % i for i in range(5))
    assert f"api_key={SECRET}" in seen[-1].path  # put back from the config for the resume


async def test_a_next_link_to_another_host_gets_no_secret_header(tmp_path: Path) -> None:
    def last_page(request: web.Request) -> web.StreamResponse:
        return web.json_response({"results": [{"id": 1}], "next": None})

    async with recorder(last_page) as (other, seen):

        def first_page(request: web.Request) -> web.StreamResponse:
            return web.json_response({"results": [{"id": 0}], "next": f"{other}/items"})

        async with recorder(token_and_data(first_page)) as (api, _):
            out = tmp_path / "out.jsonl"
            config = link_config(api, out, headers={"X-Api-Key": HEADER_KEY})
            await run(config, policy=no_wait_policy())
    (hop,) = seen
    assert secret_headers(hop) == set()
    assert out.read_bytes() == b'{"id":0}\n{"id":1}\n'


async def test_a_relative_next_link_after_a_redirect_is_relative_to_where_it_came_from(
    tmp_path: Path,
) -> None:
    def moved(request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            return web.Response(
                status=308, headers={"Location": "/v2/items?" + request.query_string}
            )
        page = int(request.query.get("page", 0))
        following = f"items?page={page + 1}" if page < 2 else None  # relative to /v2/
        return web.json_response({"results": [{"id": page}], "next": following})

    async with recorder(token_and_data(moved)) as (api, seen):
        out = tmp_path / "out.jsonl"
        config = make_config(
            api,
            out,
            source={"url": f"{api}/v1/items", "records": "results"},
            pagination={"style": "link", "next_url": "body:next", "total": "unknown"},
        )
        await run(config, policy=no_wait_policy())
    assert out.read_bytes() == b'{"id":0}\n{"id":1}\n{"id":2}\n'
    assert [s.path for s in seen if "/v1/" in s.path] == [s.path for s in seen[1:2]]
