"""What every resource of one run shares: the session, the token manager, the throttle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from harvester.auth import TokenManager
from harvester.config import Config
from harvester.fetch import Fetcher, make_throttle, make_tokens, open_session
from harvester.ratelimit import Throttle
from harvester.retry import RetryPolicy
from harvester.secrets import Secrets
from harvester.stats import Stats


@dataclass
class Shared:
    """One session, one TokenManager (a token asked for once per lifetime, whichever resource
    needs it), one Throttle: its rate, cool-downs and concurrency limit are the run's whole
    budget, so `concurrency.workers` bounds the requests in flight across every resource."""

    session: aiohttp.ClientSession
    tokens: TokenManager
    throttle: Throttle
    # Each resource's output path, by name: where a child reads its parent's records.
    outputs: dict[str, Path] = field(default_factory=dict)

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
    session = open_session(first, also=[config.source.url for config in configs])
    throttle = make_throttle(first, stats)
    tokens = make_tokens(
        first, session, RetryPolicy(first.retry), stats, secrets=secrets, throttle=throttle
    )
    outputs = {str(config.name): Path(config.output.path) for config in configs}
    return session, Shared(session, tokens, throttle, outputs)
