"""The two Ray actors a sharded run shares, and their adapters to budget.py's interfaces: the
token actor (the only holder of the credentials; one refresh for every shard, single-flight and
generation-checked) and the rate actor (leases of the shared rate, and the cool-down every
shard holds). engines/ray.py runs the shards on them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import ray
from ray.exceptions import RayActorError

from harvester.auth import TokenManager
from harvester.budget import Hold, Issued, Lease, Ledger, LocalBudget, ManagerSource
from harvester.config import Config
from harvester.errors import HarvesterError
from harvester.fetch import open_session
from harvester.logs import setup_logging
from harvester.retry import RetryPolicy
from harvester.secrets import Secrets
from harvester.stats import Stats

T = TypeVar("T")

__all__ = ["ActorBudget", "ActorTokens", "RateActor", "SharedTokenError", "TokenActor"]


class SharedTokenError(HarvesterError):
    """The token actor could not get a token: its one line, and the exit code it had."""

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Failed:
    """What the token actor answers instead of a token: the failure's one masked line. (A
    HarvesterError with keyword-only fields does not cross a process boundary as itself.)"""

    message: str
    exit_code: int


@ray.remote(num_cpus=0)
class TokenActor:
    """The run's one token, refreshed for every shard; the only holder of the credentials."""

    def __init__(self, config: Config, log_level: str = "WARNING") -> None:
        setup_logging(log_level)  # a process of Ray's own: its lines reach the driver's stderr
        self._config = config
        self._secrets = Secrets.of(config)
        self._stats = Stats()
        self._session: aiohttp.ClientSession | None = None
        self._source: ManagerSource | None = None

    async def fetch(self, stale: int) -> Issued | Failed:
        # Every failure comes back as one masked line: an exception raised here would reach
        # the shard as Ray's multi-line traceback, unmasked by this actor's registry.
        try:
            with self._secrets.masking_logs():  # a discovery warning, a retry's DEBUG line
                return await self._manager_source().fetch(stale)
        except HarvesterError as exc:
            return Failed(self._secrets.mask(str(exc)), exc.exit_code)
        except Exception as exc:  # a bug, or a node without the tls files: one line all the same
            first = (str(exc).splitlines() or [""])[0]
            line = f"the token actor failed: {type(exc).__name__}: {first}"
            return Failed(self._secrets.mask(line), 1)

    def _manager_source(self) -> ManagerSource:
        # Made on the actor's own event loop, at the first call; nothing is awaited before it
        # is set, so calls that come at once all find the one manager (and its lock).
        if self._source is None:
            self._session = open_session(self._config)
            policy = RetryPolicy(self._config.retry)
            manager = TokenManager(
                self._config.auth,
                self._session,
                policy,
                self._stats,
                timeout=self._session.timeout,
                secrets=self._secrets,
            )
            self._source = ManagerSource(manager)
        return self._source

    def token_requests(self) -> int:
        return self._stats.token_requests

    def ready(self) -> bool:
        return True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


@ray.remote(num_cpus=0)
class RateActor:
    """The run's one rate and cool-down, leased out to the shards (budget.Ledger). Async, so
    that each shard's `held` call waits on its event loop while leases are granted."""

    def __init__(self, rate: float | None, burst: int) -> None:
        self._budget = LocalBudget(Ledger(rate, burst=burst))

    async def lease(self, seconds: float) -> Lease:
        return await self._budget.lease(seconds)

    async def hold(self, seconds: float) -> None:
        self._budget.hold(seconds)

    async def held(self, after: int) -> Hold:
        return await self._budget.held(after)

    async def counts(self) -> tuple[int, int]:
        """(leases granted, cool-downs reported)."""
        return self._budget.ledger.leases, self._budget.ledger.holds


class ActorTokens:
    """budget.TokenSource on the token actor."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor

    async def fetch(self, stale: int) -> Issued:
        with _actor_gone("token"):
            answer = await self._actor.fetch.remote(stale)
        if isinstance(answer, Failed):
            raise SharedTokenError(answer.message, exit_code=answer.exit_code)
        return _expected(answer, Issued)


class ActorBudget:
    """budget.RateBudget on the rate actor."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor

    async def lease(self, seconds: float) -> Lease:
        with _actor_gone("rate"):
            return _expected(await self._actor.lease.remote(seconds), Lease)

    def hold(self, seconds: float) -> None:
        self._actor.hold.remote(seconds)  # sent now, not waited for: the shard has its own

    async def held(self, after: int) -> Hold:
        with _actor_gone("rate"):
            return _expected(await self._actor.held.remote(after), Hold)


@contextlib.contextmanager
def _actor_gone(which: str) -> Iterator[None]:
    """A dead actor as one line (SharedTokenError, exit 1), not Ray's paragraph about it."""
    try:
        yield
    except RayActorError as exc:
        raise SharedTokenError(
            f"the {which} actor is gone ({type(exc).__name__}): run the same command again; "
            "the shards that finished are kept and make no request",
            exit_code=1,
        ) from None


def _expected(answer: object, kind: type[T]) -> T:
    if not isinstance(answer, kind):  # a real check: asserts go under python -O
        raise TypeError(f"the actor answered {type(answer).__name__}, not {kind.__name__}")
    return answer
