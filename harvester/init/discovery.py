"""`--issuer`: the token endpoint from the issuer's discovery document (harvester/discovery.py,
which a run with auth.issuer reads too), asked before any token is."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import aiohttp

from harvester.discovery import Answer, ask_documents, discovery_urls
from harvester.errors import ConfigError
from harvester.init.probe import Budget, InitFailed
from harvester.secrets import Secrets

__all__ = ["discover_token_url", "discovery_urls"]


async def discover_token_url(
    issuer: str, *, budget: Budget, say: Callable[[str], None], secrets: Secrets
) -> str:
    """The issuer's token_endpoint; InitFailed naming the documents asked when there is none."""
    try:
        discovery_urls(issuer)
    except ValueError as exc:
        raise ConfigError(f"--issuer: {exc}") from None
    asked: list[Answer] = []
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        contextlib.aclosing(ask_documents(session, issuer)) as documents,
    ):
        while budget.sent < budget.limit:
            budget.sent += 1
            answer = await anext(documents, None)
            if answer is None:
                budget.sent -= 1  # nothing more was asked
                break
            asked.append(answer)
            say(f"  {budget.sent:>2}. GET {answer.url} -> {answer.outcome.split(',')[0]}")
            if answer.token_endpoint is not None:
                return secrets.mask(answer.token_endpoint)
    raise InitFailed(
        f"--issuer {issuer}: no discovery document with a token_endpoint at "
        f"{', '.join(a.url for a in asked)}: give --token-url instead"
    )
