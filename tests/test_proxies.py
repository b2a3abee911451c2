"""Proxies: the environment as requests reads it, source.proxy and auth.proxy, through a real
proxy server (proxy.py, tests/proxy_server.py) on loopback in front of the demo API.

Every CLI run gets an environment cleaned of proxy variables first, then the ones the test sets,
so that neither a proxy nor a NO_PROXY of the machine running the tests decides. Whether a
request went through the proxy is read from the proxy's own log: one FORWARDED line for each
request it forwarded, compared with what the demo API served.
"""

from __future__ import annotations

import json
import os
import socket
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from yarl import URL

from harvester.config import parse_config
from harvester.demo import DemoServer, DemoSettings, run_demo
from harvester.errors import ConfigError
from harvester.hosts import HostPolicy, HostRefused
from harvester.proxies import Proxies, proxy_note
from harvester.secrets import Secrets
from tests.conftest import SECRET, assert_one_clear_line, expected_bytes, run_cli, write_config
from tests.proxy_server import ProxyServer, run_proxy

RECORDS = 200  # four pages of 50, and one token request
PASSWORD = "pr0xy-Pa55-7c1e"


def _environment(**proxies: str) -> dict[str, str]:
    """This process's environment without any proxy variable, then `proxies`."""
    keep = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return {**keep, **proxies}


def _sent(forwarded: list[tuple[str, str, bool]], demo: DemoServer) -> Counter[str]:
    """The forwarded requests by method and path; each must have gone to the demo API."""
    where = URL(demo.url).authority
    assert all(target.startswith(where + "/") for _, target, _ in forwarded), forwarded
    return Counter(
        f"{method} {target.split('?')[0][len(where) :]}" for method, target, _ in forwarded
    )


ALL = Counter({"POST /oauth2/token": 1, "GET /items": 4})


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    async with run_demo(DemoSettings(records=RECORDS, client_secret=SECRET)) as server:
        yield server


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[ProxyServer]:
    async with run_proxy(tmp_path) as server:
        yield server


@pytest.fixture
def dead_proxy() -> Iterator[str]:
    """The URL of a loopback port that refuses connections: bound, never listening, held."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


def _harvested(tmp_path: Path) -> bytes:
    return (tmp_path / "out" / "items.jsonl").read_bytes()


@pytest.mark.parametrize(
    ("variable", "no_proxy"), [("HTTP_PROXY", None), ("http_proxy", "example.com,10.0.0.0/8")]
)
async def test_the_environment_proxy_carries_every_request(
    tmp_path: Path, demo: DemoServer, proxy: ProxyServer, variable: str, no_proxy: str | None
) -> None:
    env = _environment(**{variable: proxy.url}, **({"NO_PROXY": no_proxy} if no_proxy else {}))
    result = await run_cli(str(write_config(tmp_path, demo.url)), env=env)
    assert result.code == 0, result.output
    assert _harvested(tmp_path) == expected_bytes(RECORDS)
    assert _sent(await proxy.settled(demo.url), demo) == ALL
    assert (demo.stats.token_requests, demo.stats.data_requests) == (1, 4)
    assert f"through the proxy {proxy.url} ({variable}, from the environment)" in result.stderr


async def test_the_issuers_discovery_document_is_asked_through_the_proxy_too(
    tmp_path: Path, demo: DemoServer, proxy: ProxyServer
) -> None:
    config = write_config(tmp_path, demo.url, auth__token_url=None, auth__issuer=demo.url)
    result = await run_cli(str(config), env=_environment(HTTP_PROXY=proxy.url))
    assert result.code == 0, result.output
    discovery = Counter({"GET /.well-known/openid-configuration": 1})
    assert _sent(await proxy.settled(demo.url), demo) == ALL + discovery


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "10.0.0.0/8, 127.0.0.0/8", "*"])
async def test_no_proxy_matching_goes_direct(
    tmp_path: Path, demo: DemoServer, proxy: ProxyServer, no_proxy: str
) -> None:
    env = _environment(HTTP_PROXY=proxy.url, no_proxy=no_proxy)
    result = await run_cli(str(write_config(tmp_path, demo.url)), env=env)
    assert result.code == 0, result.output
    assert _harvested(tmp_path) == expected_bytes(RECORDS)
    assert await proxy.settled(demo.url) == []  # the proxy saw none of them
    assert (demo.stats.token_requests, demo.stats.data_requests) == (1, 4)
    assert "through the proxy" not in result.stderr


async def test_source_proxy_wins_over_the_environment(
    tmp_path: Path, demo: DemoServer, proxy: ProxyServer, dead_proxy: str
) -> None:
    config = write_config(tmp_path, demo.url, source__proxy=proxy.url, auth__proxy="none")
    result = await run_cli(str(config), env=_environment(HTTP_PROXY=dead_proxy))
    assert result.code == 0, result.output
    assert _harvested(tmp_path) == expected_bytes(RECORDS)
    assert _sent(await proxy.settled(demo.url), demo) == Counter({"GET /items": 4})
    assert f"through the proxy {proxy.url} (source.proxy), tokens directly" in result.stderr


async def test_auth_proxy_carries_the_token_requests(
    tmp_path: Path, demo: DemoServer, proxy: ProxyServer, dead_proxy: str
) -> None:
    config = write_config(tmp_path, demo.url, source__proxy="", auth__proxy=proxy.url)
    result = await run_cli(str(config), env=_environment(HTTP_PROXY=dead_proxy))
    assert result.code == 0, result.output
    assert _sent(await proxy.settled(demo.url), demo) == Counter({"POST /oauth2/token": 1})
    assert f"tokens through {proxy.url} (auth.proxy)" in result.stderr


def _with_credentials(url: str, password: str = PASSWORD) -> str:
    return str(URL(url).with_user("harvester").with_password(password))


@pytest.mark.parametrize(
    ("key", "password"),
    [("source.proxy", None), ("source.proxy", "wrong-password"), ("auth.proxy", None)],
)
async def test_a_proxy_asking_for_credentials_fails_in_one_line(
    tmp_path: Path, demo: DemoServer, key: str, password: str | None
) -> None:
    async with run_proxy(tmp_path, basic_auth=f"harvester:{PASSWORD}") as proxy:
        url = _with_credentials(proxy.url, password) if password else proxy.url
        keys = {"source__proxy": "none", "auth__proxy": "none", key.replace(".", "__"): url}
        result = await run_cli(str(write_config(tmp_path, demo.url, **keys)), env=_environment())
    assert result.code == 1
    shown = proxy.url.replace("://", "://***@") if password else proxy.url
    what = "refused the credentials (407)" if password else "asks for credentials (407)"
    assert_one_clear_line(result, f"the proxy {shown} ({key}) {what}", key)
    assert "wrong-password" not in result.output
    assert not (tmp_path / "out" / "items.jsonl").exists()


@pytest.mark.parametrize("where", ["config", "environment"])
async def test_proxy_credentials_are_sent_and_never_shown(
    tmp_path: Path, demo: DemoServer, where: str
) -> None:
    stats = tmp_path / "stats.json"
    async with run_proxy(tmp_path, basic_auth=f"harvester:{PASSWORD}") as proxy:
        url = _with_credentials(proxy.url)
        keys: dict[str, Any] = {"source__proxy": url, "auth__proxy": url}
        config = write_config(tmp_path, demo.url, **(keys if where == "config" else {}))
        env = _environment(**({"HTTP_PROXY": url} if where == "environment" else {}))
        args = ["--log-level", "DEBUG", "--stats-json", str(stats)]
        result = await run_cli(str(config), *args, env=env)
        printed = await run_cli(str(config), "--print-config", env=env)
        forwarded = await proxy.settled(demo.url)
    assert result.code == 0, result.output
    assert _harvested(tmp_path) == expected_bytes(RECORDS)
    assert _sent(forwarded, demo) == ALL
    assert all(credential for _, _, credential in forwarded)
    assert proxy.credential is not None
    basic = proxy.credential.split()[1]
    for text in (result.output, printed.output, stats.read_text()):
        assert PASSWORD not in text and basic not in text
    assert f"through the proxy {proxy.url.replace('://', '://***@')}" in result.stderr
    assert json.loads(stats.read_text())["requests"] == 4


@pytest.mark.parametrize("where", ["HTTP_PROXY", "source.proxy"])
async def test_a_dead_proxy_fails_in_one_line(
    tmp_path: Path, demo: DemoServer, dead_proxy: str, where: str
) -> None:
    if where == "HTTP_PROXY":  # the token request is the first to fail
        config, env = write_config(tmp_path, demo.url), _environment(HTTP_PROXY=dead_proxy)
        fix = "fix HTTP_PROXY, add the host to NO_PROXY, or set auth.proxy"
    else:
        config = write_config(tmp_path, demo.url, source__proxy=dead_proxy, auth__proxy="none")
        env, fix = _environment(), "check source.proxy, or set it to none to connect directly"
    result = await run_cli(str(config), env=env)
    assert result.code == 1
    assert_one_clear_line(
        result, f"the proxy {dead_proxy} (", "could not be reached after 2 attempt(s)", fix
    )
    assert demo.stats.data_requests == 0


@pytest.mark.parametrize("attack", ["next-link", "redirect"])
async def test_through_a_proxy_no_hop_reaches_the_metadata_address(
    tmp_path: Path, proxy: ProxyServer, attack: str
) -> None:
    metadata = "http://169.254.169.254/latest/meta-data/"

    async def first(request: web.Request) -> web.StreamResponse:
        if attack == "redirect":
            raise web.HTTPFound(metadata)
        return web.json_response({"items": [1]}, headers={"Link": f'<{metadata}>; rel="next"'})

    app = web.Application()
    app.router.add_get("/items", first)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        raw = {
            "source": {"url": f"{url}/items", "records": "items", "proxy": proxy.url},
            "pagination": {"style": "link"},
            "retry": {"max_attempts": 2, "initial_backoff": 0, "max_backoff": 0},
            "output": {"path": str(tmp_path / "out" / "items.jsonl")},
        }
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(raw))
        result = await run_cli(str(config), env=_environment())
        forwarded = await proxy.settled(url)
    finally:
        await runner.cleanup()
    assert result.code == 1
    assert_one_clear_line(result, "169.254.169.254, a link-local address, refused")
    assert [target.split("/", 1)[1].split("?")[0] for _, target, _ in forwarded] == ["items"]
    assert not any("REFUSED" in line for line in proxy.log)  # harvester refused it first
    assert not (tmp_path / "out" / "items.jsonl").exists()


# --- which proxy, without a server ---------------------------------------------------------


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    return monkeypatch


def _route(url: str, explicit: str | None = None) -> str | None:
    proxy = Proxies(explicit, key="source.proxy").for_url(URL(url))
    return None if proxy is None else f"{proxy.url} {proxy.key}"


def test_the_environment_as_requests_reads_it(clean_environment: pytest.MonkeyPatch) -> None:
    env = clean_environment
    env.setenv("HTTP_PROXY", "http://upper:1")
    env.setenv("http_proxy", "lower:2")  # lower case wins; no scheme reads as http://
    env.setenv("HTTPS_PROXY", "http://secure:3")
    env.setenv("NO_PROXY", "example.com, .corp:8443, 10.0.0.0/8")
    assert _route("http://api.test/x") == "http://lower:2 http_proxy"
    assert _route("https://api.test/x") == "http://secure:3 HTTPS_PROXY"
    assert _route("https://example.com/") is None
    assert _route("https://api.example.com/") is None  # a subdomain
    assert _route("https://badexample.com/") == "http://secure:3 HTTPS_PROXY"
    assert _route("https://git.corp:8443/") is None  # host:port
    assert _route("https://git.corp/") == "http://secure:3 HTTPS_PROXY"
    assert _route("http://10.1.2.3/") is None  # in the CIDR range
    assert _route("http://127.0.0.1:8080/") == "http://lower:2 http_proxy"  # loopback: proxied
    # The explicit key wins, NO_PROXY or not; none (or "") means no proxy at all.
    assert _route("https://example.com/", "http://mine:4") == "http://mine:4 source.proxy"
    assert _route("https://api.test/", "none") is None
    assert _route("https://api.test/", "") is None


def test_all_proxy_and_the_wildcard(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("ALL_PROXY", "http://every:5")
    assert _route("https://api.test/") == "http://every:5 ALL_PROXY"
    clean_environment.setenv("no_proxy", "*")
    assert _route("https://api.test/") is None


def test_a_proxy_that_is_not_http_is_refused(
    clean_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_environment.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(ConfigError, match=r"ALL_PROXY: must be an http:// proxy URL"):
        Proxies(None, key="source.proxy")
    raw = {
        "source": {"url": "https://api.test/items", "proxy": "https://user:pw@p.test:3128"},
        "output": {"path": str(tmp_path / "out.jsonl")},
    }
    with pytest.raises(ConfigError, match=r"source\.proxy: must be an http:// proxy URL") as info:
        parse_config(raw, environ={})
    assert "pw" not in str(info.value)


def test_the_credential_goes_to_the_proxy_only(clean_environment: pytest.MonkeyPatch) -> None:
    proxy = Proxies(f"http://u:{PASSWORD}@p.test:3128", key="source.proxy").for_url(URL("x:"))
    assert proxy is not None and proxy.credential is not None
    assert PASSWORD not in repr(proxy) and proxy.shown == "http://***@p.test:3128"
    plain = proxy.request_args(URL("http://api.test/"), {"Accept": "x"})
    assert plain["headers"]["Proxy-Authorization"] == proxy.credential
    tunnel = proxy.request_args(URL("https://api.test/"), {"Accept": "x"})
    assert "Proxy-Authorization" not in tunnel["headers"]  # it would go through the tunnel
    assert tunnel["proxy_headers"] == {"Proxy-Authorization": proxy.credential}


def test_proxy_credentials_are_registered_secrets(
    clean_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_environment.setenv("HTTPS_PROXY", f"http://env:{PASSWORD}-env@p.test:3128")
    url = f"http://harvester:{PASSWORD}@p.test:3128"
    raw = {
        "source": {"url": "https://api.test/items", "proxy": url},
        "auth": {"type": "bearer", "token": "t0ken-value", "proxy": url},
        "output": {"path": str(tmp_path / "out.jsonl")},
    }
    config = parse_config(raw, environ={})
    secrets = Secrets.of(config)
    proxy = Proxies(config.source.proxy, key="source.proxy").for_url(URL(config.source.url))
    assert proxy is not None and proxy.credential is not None
    for text in (f"{PASSWORD}-env", proxy.credential, repr(config), str(config.masked())):
        assert PASSWORD not in secrets.mask(text)
    assert proxy.credential.split()[1] not in secrets.mask(proxy.credential)
    assert "***@p.test:3128" in proxy_note(config)


async def test_a_proxied_hop_to_a_name_that_does_not_resolve_here_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def unresolvable(host: str) -> None:
        return None

    with pytest.raises(HostRefused, match="private address"):  # an address: checked as before
        await HostPolicy("http://93.184.216.34/").check(
            URL("http://10.0.0.5/"), what="redirect", proxied=True
        )
    monkeypatch.setattr("harvester.hosts._addresses", unresolvable)
    policy = HostPolicy("http://93.184.216.34/items")
    target = URL("http://internal.corp/admin")
    await policy.check(target, what="next link")  # direct: the connection is checked then
    with pytest.raises(HostRefused, match="does not resolve here"):
        await policy.check(target, what="next link", proxied=True)
