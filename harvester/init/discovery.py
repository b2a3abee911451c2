"""`--issuer`: the token endpoint from the issuer's discovery document (RFC 8414, OpenID
Connect Discovery), asked before any token is."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
from yarl import URL

from harvester.body import BodyRefused, read_body
from harvester.errors import ConfigError, redact_url
from harvester.init.probe import Budget, InitFailed
from harvester.read import NotJSON, decode_json
from harvester.secrets import Secrets

WELL_KNOWN = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")


def discovery_urls(issuer: str) -> list[URL]:
    """Where an issuer's metadata may be: OpenID's (issuer + path), then RFC 8414's (the
    well-known path inserted before the issuer's path)."""
    base = URL(issuer)
    if base.scheme not in ("http", "https") or not base.host:
        raise ConfigError(f"--issuer: must be an http(s) URL, got {issuer!r}")
    path = base.path.rstrip("/")
    return [
        base.with_path(path + WELL_KNOWN[0]),
        base.with_path(WELL_KNOWN[1] + path),
    ]


async def discover_token_url(
    issuer: str, *, budget: Budget, say: Callable[[str], None], secrets: Secrets
) -> str:
    """The issuer's token_endpoint; InitFailed naming the documents asked when there is none."""
    asked = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for url in discovery_urls(issuer):
            if budget.sent >= budget.limit:
                break
            budget.sent += 1
            asked.append(redact_url(str(url)))
            try:
                async with session.get(url, allow_redirects=False) as response:
                    status = response.status
                    body = await read_body(response, max_bytes=1 << 20, max_ratio=100)
                    document = decode_json(body, response.headers.get("Content-Type", ""))
            except (aiohttp.ClientError, TimeoutError, BodyRefused, NotJSON) as exc:
                say(f"  {budget.sent:>2}. GET {asked[-1]} -> {type(exc).__name__}")
                continue
            say(f"  {budget.sent:>2}. GET {asked[-1]} -> {status}")
            endpoint = document.get("token_endpoint") if isinstance(document, dict) else None
            if status == 200 and isinstance(endpoint, str) and endpoint.startswith("http"):
                return secrets.mask(endpoint)
    raise InitFailed(
        f"--issuer {issuer}: no discovery document with a token_endpoint at {', '.join(asked)}: "
        "give --token-url instead"
    )
