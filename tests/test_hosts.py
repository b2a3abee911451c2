"""Where a redirect or next link may go: the kinds of address, and the policy over them.

Name lookups are faked: no test here asks a resolver anything but about "localhost".
"""

from __future__ import annotations

import ipaddress

import pytest
from yarl import URL

from harvester import hosts
from harvester.hosts import HostPolicy, HostRefused, address_kind


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
        ("2001:db8::1", None),
        ("100.64.0.1", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Host name -> addresses, as the fake resolver answers; a name missing does not resolve."""
    names: dict[str, list[str]] = {}
    asked: list[str] = []

    async def addresses(host: str) -> list[hosts.IPAddress]:
        asked.append(host)
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            return [ipaddress.ip_address(a) for a in names.get(host, [])]

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
