"""Where a redirect or next link may go: the kinds of address, and the policy over them.

Name lookups are faked: no test here asks a resolver anything but about "localhost".
"""

from __future__ import annotations

import ipaddress
import socket

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from harvester import hosts
from harvester.hosts import CheckingResolver, HostPolicy, HostRefused, address_kind


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254", "link-local"),
        ("169.254.0.1", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:169.254.169.254", "link-local"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("172.32.0.1", None),
        ("8.8.8.8", None),
        ("100.64.0.1", "non-public"),
        ("100.100.100.200", "non-public"),  # Alibaba Cloud's metadata service
        ("0.1.2.3", "non-public"),
        ("240.0.0.1", "non-public"),
        ("2001:db8::1", "non-public"),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 of 169.254.169.254
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("::ffff:100.100.100.200", "non-public"),
        ("64:ff9b::808:808", None),  # NAT64 of 8.8.8.8
        ("2002:808:808::", None),
        ("2606:4700::1111", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Host name -> addresses, as the fake resolver answers; a name missing does not resolve."""
    names: dict[str, list[str]] = {}
    asked: list[str] = []

    async def addresses(host: str) -> list[hosts.IPAddress] | None:
        asked.append(host)
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            if host not in names:
                return None  # the lookup failed
            return [ipaddress.ip_address(a) for a in names[host]]

    monkeypatch.setattr(hosts, "_addresses", addresses)
    names["_asked"] = asked  # type: ignore[assignment]
    return names


async def refused(policy: HostPolicy, url: str) -> str | None:
    try:
        await policy.check(URL(url), what="next link")
    except HostRefused as exc:
        return str(exc)
    return None


async def test_a_public_source_may_not_hop_inwards(resolver: dict[str, list[str]]) -> None:
    resolver["api.example.com"] = ["93.184.216.34"]
    resolver["cdn.example.com"] = ["93.184.216.35"]
    resolver["intranet.example.com"] = ["10.0.0.5"]
    resolver["sneaky.example.com"] = ["93.184.216.36", "169.254.169.254"]
    policy = HostPolicy("https://api.example.com/items")
    assert await refused(policy, "https://cdn.example.com/p2") is None
    message = await refused(policy, "http://169.254.169.254/latest/meta-data/")
    assert message is not None
    assert "169.254.169.254, a link-local address" in message
    assert "source.allow_private_hosts: true" in message
    assert "a private address" in (await refused(policy, "http://intranet.example.com/") or "")
    assert "a loopback address" in (await refused(policy, "http://127.0.0.1:8080/") or "")
    assert "a loopback address" in (await refused(policy, "http://[::1]/") or "")
    # One address in a refused range is enough: a client may pick any of them.
    assert "link-local" in (await refused(policy, "http://sneaky.example.com/") or "")


async def test_a_source_inside_a_range_may_hop_within_it(resolver: dict[str, list[str]]) -> None:
    resolver["api.corp"] = ["10.0.0.2"]
    resolver["files.corp"] = ["192.168.7.7"]
    policy = HostPolicy("http://api.corp/items")
    assert await refused(policy, "http://files.corp/p2") is None
    assert await refused(policy, "http://10.9.9.9/p2") is None
    assert "link-local" in (await refused(policy, "http://169.254.169.254/") or "")
    assert "loopback" in (await refused(policy, "http://127.0.0.1/") or "")


async def test_a_loopback_source_may_not_reach_link_local(resolver: dict[str, list[str]]) -> None:
    policy = HostPolicy("http://127.0.0.1:8080/items")
    assert await refused(policy, "http://127.0.0.2:9000/p2") is None
    assert "link-local" in (await refused(policy, "http://[fe80::1]/") or "")


async def test_allow_private_hosts_allows_every_hop(resolver: dict[str, list[str]]) -> None:
    policy = HostPolicy("https://api.example.com/items", allow_private=True)
    assert await refused(policy, "http://169.254.169.254/") is None
    assert resolver["_asked"] == []  # nothing even looked up


async def test_each_host_is_looked_up_once(resolver: dict[str, list[str]]) -> None:
    resolver["api.example.com"] = ["93.184.216.34"]
    resolver["next.example.com"] = ["93.184.216.35"]
    policy = HostPolicy("https://api.example.com/items")
    for page in range(5):
        assert await refused(policy, f"https://next.example.com/p{page}") is None
        assert await refused(policy, f"https://api.example.com/p{page}") is None
    assert sorted(resolver["_asked"]) == ["api.example.com", "next.example.com"]


async def test_a_host_that_does_not_resolve_is_left_to_fail_on_connecting(
    resolver: dict[str, list[str]],
) -> None:
    policy = HostPolicy("https://api.example.com/items")
    assert await refused(policy, "https://nowhere.invalid/") is None


async def test_literals_and_localhost_resolve_without_a_name_server() -> None:
    assert await hosts._addresses("169.254.169.254") == [ipaddress.ip_address("169.254.169.254")]
    assert await hosts._addresses("fe80::1%eth0") == [ipaddress.ip_address("fe80::1")]
    kinds = {address_kind(a) for a in await hosts._addresses("localhost")}
    assert kinds == {"loopback"}


async def test_a_failed_lookup_is_asked_again_not_cached(resolver: dict[str, list[str]]) -> None:
    """A transient failure must not make the source count as public (or a hop as harmless)
    for the rest of the run."""
    policy = HostPolicy("http://api.corp/items")
    assert "private" in (await refused(policy, "http://10.9.9.9/p2") or "")  # api.corp unknown
    assert await refused(policy, "http://files.corp/p2") is None  # unknown: left to connect
    resolver["api.corp"] = ["10.0.0.2"]
    resolver["files.corp"] = ["169.254.1.1"]
    assert await refused(policy, "http://10.9.9.9/p2") is None
    assert "link-local" in (await refused(policy, "http://files.corp/p2") or "")


class FakeResolver(AbstractResolver):
    """Answers from a table, as a rebinding name server would: never asks a real one."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.names[host]
        return [
            ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)
        ]

    async def close(self) -> None:
        pass


async def test_a_name_that_rebinds_after_the_check_is_refused_at_connect_time(
    resolver: dict[str, list[str]],
) -> None:
    resolver["api.example.com"] = ["93.184.216.34"]
    resolver["rebind.example.com"] = ["93.184.216.40"]  # what the first check sees
    policy = HostPolicy("https://api.example.com/items", trusted=["https://auth.example.com/t"])
    assert await refused(policy, "http://rebind.example.com/p2") is None
    checking = CheckingResolver(
        policy,
        FakeResolver(
            {
                "rebind.example.com": "169.254.169.254",  # what the connection would reach
                "api.example.com": "10.0.0.7",  # the operator's own hosts are theirs to place
                "auth.example.com": "10.0.0.8",
                "cdn.example.com": "93.184.216.35",
            }
        ),
    )
    with pytest.raises(HostRefused, match="connection to rebind.example.com, a link-local"):
        await checking.resolve("rebind.example.com", 80)
    for host in ("api.example.com", "auth.example.com", "cdn.example.com"):
        assert (await checking.resolve(host, 443))[0]["hostname"] == host


async def test_aiohttp_connects_only_where_the_checking_resolver_allows(
    resolver: dict[str, list[str]],
) -> None:
    """Through a real session: the refused name never gets a connection (nothing beyond
    loopback either way: the fake resolver answers 127.0.0.1), the allowed one does."""

    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    names = {"near.corp": "127.0.0.1", "far.example.com": "127.0.0.1"}
    resolver["api.example.com"] = ["93.184.216.34"]
    public = CheckingResolver(HostPolicy("https://api.example.com/items"), FakeResolver(names))
    resolver["api.local"] = ["127.0.0.1"]
    local = CheckingResolver(HostPolicy("http://api.local/items"), FakeResolver(names))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=public)) as s:
            with pytest.raises(HostRefused, match="a loopback address"):
                await s.get(f"http://near.corp:{port}/")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=local)) as s:
            answer = await s.get(f"http://far.example.com:{port}/")
            assert await answer.text() == "hello"
    finally:
        await runner.cleanup()
