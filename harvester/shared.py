"""What every resource of one run shares: the session, the token manager, the throttle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from harvester.auth import TokenManager
from harvester.config import Config
from harvester.config.output import resolve_format
from harvester.fetch import Fetcher, make_throttle, make_tokens, open_session
from harvester.proxies import proxy_urls
from harvester.ratelimit import Throttle
from harvester.retry import RetryPolicy
from harvester.secrets import Secrets
from harvester.stats import Stats
from harvester.stream import is_stream
from harvester.writers import Format
from harvester.writers.tee import needs_copy, records_copy


@dataclass
class Shared:
    """One session, one TokenManager (a token asked for once per lifetime, whichever resource
    needs it), one Throttle: its rate, cool-downs and concurrency limit are the run's whole
    budget, so `concurrency.workers` bounds the requests in flight across every resource."""

    session: aiohttp.ClientSession
    tokens: TokenManager
    throttle: Throttle
    # Where a child reads each parent's records, by name: its output, or the JSON Lines copy
    # beside it (writers/tee.py); the parents' names.
    outputs: dict[str, Path] = field(default_factory=dict)
    parents: frozenset[str] = frozenset()

    def fetcher(self, config: Config, stats: Stats, policy: RetryPolicy) -> Fetcher:
        """A Fetcher for one resource (its URL, records, retries and stats) on the shared parts."""
        return Fetcher(config, self.session, self.tokens, policy, stats, self.throttle)


def open_shared(
    configs: Sequence[Config], stats: Stats, secrets: Secrets
) -> tuple[aiohttp.ClientSession, Shared]:
    """The session (to close) and the shared parts for `configs`, whose auth, tls and
    concurrency are the same (they come from `defaults:`); `stats` counts token requests and
    the throttle's state."""
    first = configs[0]
    # Each resource's source and proxies are the operator's (its source.proxy may differ).
    also = [url for config in configs for url in [config.source.url, *proxy_urls(config)]]
    session = open_session(first, also=also)
    throttle = make_throttle(first, stats)
    tokens = make_tokens(
        first, session, RetryPolicy(first.retry), stats, secrets=secrets, throttle=throttle
    )
    outputs = {str(config.name): _records_of(config) for config in configs}
    parents = frozenset(str(config.parent) for config in configs if config.parent is not None)
    return session, Shared(session, tokens, throttle, outputs, parents)


def _records_of(config: Config) -> Path:
    """Where the records of `config` can be read back exactly, once it is complete."""
    output = Path(config.output.path)
    name, compression = resolve_format(config.output, stream=is_stream(config.output.path))
    return (
        records_copy(output) if needs_copy(Format(name=name, compression=compression)) else output
    )
