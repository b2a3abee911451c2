"""Where a redirect or a next link may send a request: not into the network harvester runs in.

A server that answers "go to http://169.254.169.254/latest/meta-data/" (the cloud metadata
service) or to a database's admin port on 10.0.0.5 would have harvester fetch it with the run's
credentials and write what it says. So a hop to any address that is not public (link-local,
loopback, private, carrier-grade NAT 100.64.0.0/10 where Alibaba Cloud's metadata lives, 0.0.0.0/8,
and the rest Python's ipaddress does not call global), also when wrapped in an IPv6 form
(IPv4-mapped, 6to4, NAT64), is refused, unless the configured source is itself in that kind of
range (an API on the office network may well link to its neighbours) or
source.allow_private_hosts is true.

A hop's host is checked twice: before the request, for a clear error (the answer cached per host
for the run), and again at connect time by CheckingResolver, the session's resolver, on the
very addresses connected to: a name that resolves public for the first check and to the
metadata service a moment later (DNS rebinding) is refused there. A failed lookup is never
cached: it says nothing about where the name leads.

Through a proxy (proxies.py) the connection is to the proxy, the operator's and trusted like the
token endpoint, and the proxy resolves the target itself. A hop is then checked before the
request only, on what its name resolves to here, and a name that does not resolve here is refused
(the proxy might resolve it to anything). A name that resolves differently at the proxy (split
DNS, rebinding) is beyond harvester's sight: there the proxy's own rules decide.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

__all__ = ["CheckingResolver", "HostRefused", "HostPolicy", "address_kind"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LINK_LOCAL = tuple(ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10"))
_LOOPBACK = tuple(
    ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128")
)
_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class HostRefused(Exception):
    """A hop to an address the policy refuses; the message says which and how to allow it."""


def address_kind(address: IPAddress) -> str | None:
    """ "link-local", "loopback", "private" or "non-public" (any other address that is not
    global) for an address in those ranges; None for a public one.

    0.0.0.0 and :: count as loopback: connecting to them reaches this machine. An IPv6 address
    that carries an IPv4 one (IPv4-mapped, 6to4, NAT64) is the kind of the IPv4 one.
    """
    address = _unwrap(address)
    for kind, networks in (
        ("link-local", _LINK_LOCAL),
        ("loopback", _LOOPBACK),
        ("private", _PRIVATE),
    ):
        if any(address in network for network in networks):
            return kind
    return None if address.is_global else "non-public"


def _unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one leads to (::ffff:a.b.c.d, 2002:AABB:CCDD::, 64:ff9b::a.b.c.d
    all reach a.b.c.d), else the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


class HostPolicy:
    """Checks each hop's host against the kinds of address the source itself is on.

    `trusted` URLs (the token endpoint) are the operator's, like the source: connect-time
    checks leave their hosts alone.
    """

    def __init__(
        self, source_url: str, *, allow_private: bool = False, trusted: Iterable[str] = ()
    ) -> None:
        self._source_host = URL(source_url).host or ""
        self._trusted = {self._source_host, *(URL(url).host or "" for url in trusted)}
        self._allow_private = allow_private
        self._source_kinds: frozenset[str] | None = None
        self._kinds: dict[str, frozenset[str]] = {}

    async def check(self, url: URL, *, what: str, proxied: bool = False) -> None:
        """Raise HostRefused if `url` (`what`: "redirect", "next link") leads somewhere refused.

        `proxied`: the request goes through a proxy, which resolves the host itself, so no
        connect-time check follows; a host that does not resolve here is refused then.
        """
        host = url.host or ""
        if self._allow_private or host == self._source_host:
            return
        kinds = await self._kinds_of(host)
        if kinds is None and proxied:
            raise HostRefused(
                f"{what} to {host}, which does not resolve here, refused: the proxy would resolve "
                "it, and could reach any address (set source.allow_private_hosts: true if the API "
                "means it)"
            )
        await self._refuse(host, kinds or frozenset(), what)

    async def check_resolved(self, host: str, addresses: Iterable[IPAddress]) -> None:
        """Raise HostRefused if a connection to `host` at `addresses` (what the resolver just
        answered, and what will be connected to) is refused."""
        if self._allow_private or host in self._trusted:
            return
        await self._refuse(host, frozenset(_kinds(addresses)), "connection")

    async def _refuse(self, host: str, kinds: frozenset[str], what: str) -> None:
        refused = kinds - await self._allowed()
        if refused:
            kind = sorted(refused)[0]
            raise HostRefused(
                f"{what} to {host}, a {kind} address, refused before connecting: the source is "
                f"not on one (set source.allow_private_hosts: true if the API means it)"
            )

    async def _allowed(self) -> frozenset[str]:
        if self._source_kinds is not None:
            return self._source_kinds
        found = await _addresses(self._source_host)
        if found is None:  # not cached: the next check asks again
            return frozenset()
        self._source_kinds = frozenset(_kinds(found))
        return self._source_kinds

    async def _kinds_of(self, host: str) -> frozenset[str] | None:
        """The kinds of address `host` resolves to; None if it does not resolve now."""
        if host not in self._kinds:
            found = await _addresses(host)
            if found is None:  # unresolvable now: the connection will fail or be checked then
                return None
            self._kinds[host] = frozenset(_kinds(found))
        return self._kinds[host]


class CheckingResolver(AbstractResolver):
    """aiohttp's resolver, with the policy applied to each answer before it is connected to."""

    def __init__(self, policy: HostPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        await self._policy.check_resolved(host, (_address(r["host"]) for r in found))
        return found

    async def close(self) -> None:
        await self._inner.close()


def _kinds(addresses: Iterable[IPAddress]) -> Iterable[str]:
    for address in addresses:
        kind = address_kind(address)
        if kind is not None:
            yield kind


def _address(text: str) -> IPAddress:
    return ipaddress.ip_address(text.strip("[]").split("%")[0])


async def _addresses(host: str) -> list[IPAddress] | None:
    """The addresses `host` stands for: itself if it is one, else what the resolver says;
    None if the lookup failed."""
    try:
        return [_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return None
    return [_address(str(info[4][0])) for info in infos]
