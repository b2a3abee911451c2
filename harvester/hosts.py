"""Where a redirect or a next link may send a request: not into the network harvester runs in.

A server that answers "go to http://169.254.169.254/latest/meta-data/" (the cloud metadata
service) or to a database's admin port on 10.0.0.5 would have harvester fetch it with the run's
credentials and write what it says. So a hop to a link-local, loopback or private address is
refused, unless the configured source is itself in that kind of range (an API on the office
network may well link to its neighbours) or source.allow_private_hosts is true.

A host name is resolved to see where it leads; the check happens before any connection. The
answer is cached per host for the run, so a chain of next links costs one lookup, not one a page
(which leaves a DNS rebinding window of the run's length; pin with allow_private_hosts: false
and an IP literal if that matters).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

from yarl import URL

__all__ = ["HostRefused", "HostPolicy", "address_kind"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LINK_LOCAL = tuple(ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10"))
_LOOPBACK = tuple(
    ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128")
)
_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


class HostRefused(Exception):
    """A hop to an address the policy refuses; the message says which and how to allow it."""


def address_kind(address: IPAddress) -> str | None:
    """ "link-local", "loopback" or "private" for an address in those ranges; None for others.

    0.0.0.0 and :: count as loopback: connecting to them reaches this machine.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
    for kind, networks in (
        ("link-local", _LINK_LOCAL),
        ("loopback", _LOOPBACK),
        ("private", _PRIVATE),
    ):
        if any(address in network for network in networks):
            return kind
    return None


class HostPolicy:
    """Checks each hop's host against the kinds of address the source itself is on."""

    def __init__(self, source_url: str, *, allow_private: bool = False) -> None:
        self._source_host = URL(source_url).host or ""
        self._allow_private = allow_private
        self._source_kinds: frozenset[str] | None = None
        self._kinds: dict[str, frozenset[str]] = {}

    async def check(self, url: URL, *, what: str) -> None:
        """Raise HostRefused if `url` (`what`: "redirect", "next link") leads somewhere refused."""
        host = url.host or ""
        if self._allow_private or host == self._source_host:
            return
        refused = await self._kinds_of(host) - await self._allowed()
        if refused:
            kind = sorted(refused)[0]
            raise HostRefused(
                f"{what} to {host}, a {kind} address, refused before connecting: the source is "
                f"not on one (set source.allow_private_hosts: true if the API means it)"
            )

    async def _allowed(self) -> frozenset[str]:
        if self._source_kinds is None:
            self._source_kinds = await self._kinds_of(self._source_host)
        return self._source_kinds

    async def _kinds_of(self, host: str) -> frozenset[str]:
        if host not in self._kinds:
            self._kinds[host] = frozenset(_kinds(await _addresses(host)))
        return self._kinds[host]


def _kinds(addresses: Iterable[IPAddress]) -> Iterable[str]:
    for address in addresses:
        kind = address_kind(address)
        if kind is not None:
            yield kind


async def _addresses(host: str) -> list[IPAddress]:
    """The addresses `host` stands for: itself if it is one, else what the resolver says."""
    try:
        return [ipaddress.ip_address(host.strip("[]").split("%")[0])]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []  # unresolvable: the connection will fail and say so, as for any host
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
