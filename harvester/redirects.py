"""GET with redirects followed by hand: the host policy on every hop, no secret across origins."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
from yarl import URL

from harvester.errors import PageFetchError, carries_secret, redact_url
from harvester.hosts import HostPolicy, HostRefused
from harvester.pagination import PageRequest
from harvester.proxies import Proxies, proxy_errors, refused_by
from harvester.retry import REDIRECT_STATUSES

# As many as aiohttp follows by default.
_MAX_REDIRECTS = 10


class Redirects:
    """The answer to a page's GET after its redirects, each hop (and a next link) checked."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        hosts: HostPolicy,
        proxies: Proxies | None = None,
        token_header: str = "Authorization",
    ) -> None:
        self._session = session
        self._hosts = hosts
        # None: the environment's proxies (HTTP_PROXY, NO_PROXY), as without source.proxy.
        self._proxies = proxies or Proxies(None, key="source.proxy")
        # auth.header: the token's header, secret whatever its name (X-Session as well).
        self._token_header = token_header.lower()

    @contextlib.asynccontextmanager
    async def get(
        self, request: PageRequest, url: URL, headers: dict[str, str]
    ) -> AsyncIterator[tuple[aiohttp.ClientResponse, bool]]:
        """The answer to GET `url` after any redirects, and whether one crossed to another origin.

        We follow redirects ourselves: aiohttp drops Authorization (and Cookie) on a hop to
        another origin (scheme, host or port), but would carry an X-API-Key from source.headers
        along. Every secret header is dropped here, for the rest of the hops.
        """
        target, crossed = url, False
        for hop in range(_MAX_REDIRECTS + 1):
            proxy, args = self._proxies.route(target, headers)
            if hop > 0 or request.url is not None:
                what = "redirect" if hop else "next link"
                await self._check_host(request, url, target, what, proxied=proxy is not None)
            try:
                async with proxy_errors(proxy):
                    answer = await self._session.get(target, allow_redirects=False, **args)
            except HostRefused as exc:  # by the resolver, on the address it would connect to
                raise PageFetchError(str(exc), page=request.index, url=str(url)) from None
            async with answer:
                refusal = refused_by(proxy, answer.status)
                if refusal is not None:
                    raise refusal
                location = answer.headers.get("Location")
                if answer.status not in REDIRECT_STATUSES or location is None:
                    yield answer, crossed
                    return
            following = _redirect_target(request, target, location)
            if not crossed and following.origin() != target.origin():
                crossed = True
                headers = {k: v for k, v in headers.items() if not self._secret(k)}
            target = following
        raise PageFetchError(
            f"redirected more than {_MAX_REDIRECTS} times", page=request.index, url=str(url)
        )

    def _secret(self, header: str) -> bool:
        return carries_secret(header) or header.lower() == self._token_header

    async def _check_host(
        self, request: PageRequest, url: URL, target: URL, what: str, *, proxied: bool
    ) -> None:
        try:
            await self._hosts.check(target, what=what, proxied=proxied)
        except HostRefused as exc:
            raise PageFetchError(str(exc), page=request.index, url=str(url)) from None


def _redirect_target(request: PageRequest, current: URL, location: str) -> URL:
    """Where a Location header sends the request at `current`; relative ones resolve."""
    try:
        target = current.join(URL(location))
        target.origin()  # raises for a URL without a host
    except ValueError:
        target = None
    if target is None or target.scheme not in ("http", "https"):
        raise PageFetchError(
            f"redirected to {redact_url(location)!r}, which is not an http(s) URL",
            page=request.index,
            url=str(current),
        )
    return target
