"""One token and one rate budget across processes: the two small interfaces run() takes.

A harvest split into shards that run in several processes (harvester/engines/ray.py) must still
look like one client to the API: one token asked for once per lifetime, not once per shard, and
one rate that every shard spends together, with a 429 seen by one shard holding them all.

- A `TokenSource` is where a TokenManager gets a token when it refreshes, instead of asking the
  token endpoint itself. `fetch(stale)` answers a token newer than generation `stale`: the one
  some other shard had refreshed already if there is one (the generation check of auth.py,
  across processes), else a new one, asked for once however many shards ask at the same time.
- A `RateBudget` hands out leases: a few slots of the rate at once (about `LEASE_SECONDS` of it),
  so that a shard asks once per handful of requests rather than once per request; `hold(seconds)`
  reports a cool-down, and `held(after)` waits for the next one reported: each shard keeps one
  such call open, so that the cool-down holds it at once, not after the slots it has leased.

Both are optional: without them a run asks for its own token and paces itself (Pacer), as one
process always has. `Ledger` is the lease arithmetic, kept apart from any engine so that it is
tested without one; `ManagerSource` serves tokens from a TokenManager of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from harvester.auth import Token, TokenManager

# How much of the rate a lease holds: at an actor call's 1-2.5 ms, 10 calls a second per shard
# cost nothing, and a shard that ends leaves at most this much of the rate unspent. (Measured on
# 2 cores: asking for the next lease ahead, before the last slot, gained nothing and left twice
# as much unspent as each shard ended.)
LEASE_SECONDS = 0.1
# The longest a `held` call stays open without news: a shard that ended leaves its call on the
# budget's side (Ray does not cancel it), and an actor serves only so many calls at once.
HELD_SECONDS = 5.0


@dataclass(frozen=True)
class Issued:
    """A token as a TokenSource hands it over: everything a TokenManager needs to send it.

    `refresh_in`: seconds from when it was handed over until it counts as stale (None: until the
    API answers 401); relative, so that no two clocks need to agree.
    """

    value: str = field(repr=False)
    generation: int
    refresh_in: float | None
    name: str = "Authorization"
    scheme: str = "Bearer"

    @classmethod
    def of(cls, token: Token, now: float) -> Issued:
        """`token` handed over at `now` (on the clock its refresh_at counts on)."""
        left = None if token.refresh_at is None else max(0.0, token.refresh_at - now)
        return cls(token.value, token.generation, left, token.name, token.scheme)


class TokenSource(Protocol):
    """Where a TokenManager's refreshes come from, when not from its own token requests."""

    async def fetch(self, stale: int) -> Issued:
        """A token of a generation above `stale` (0: any), refreshed only if none is yet."""
        ...


@dataclass(frozen=True)
class Lease:
    """What a RateBudget grants at one call.

    `slots`: seconds from the grant at which one request each may go. `hold`: a cool-down is on
    for this long; no slot is granted, ask again after it. `free_for`: no rate is shared (none
    was set), so requests go at the shard's own pace for this long, cool-downs still shared.
    """

    slots: tuple[float, ...] = ()
    hold: float = 0.0
    free_for: float = 0.0


@dataclass(frozen=True)
class Hold:
    """A cool-down reported to a RateBudget: the `number`-th, with `left` seconds to go."""

    number: int
    left: float


class RateBudget(Protocol):
    """One rate and one cool-down shared by every shard of a run."""

    async def lease(self, seconds: float) -> Lease:
        """About `seconds` of the rate, in slots (at least one); or the cool-down to wait."""
        ...

    def hold(self, seconds: float) -> None:
        """No request of any shard for `seconds` from now (a 429 or 503 said so). Returns at
        once: the report goes out while the shard waits out its own cool-down."""
        ...

    async def held(self, after: int) -> Hold:
        """Once a cool-down numbered above `after` has been reported (at once if one has),
        the latest; `Hold(after, 0.0)` (no news) after HELD_SECONDS without one: ask again."""
        ...


class Ledger:
    """The lease arithmetic: the slots of one rate (a token bucket, GCRA, as pacing.py spaces
    them) handed out in blocks, and the cool-down every shard meets."""

    def __init__(
        self, rate: float | None, *, burst: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"a rate is > 0 requests per second, got {rate}")
        self.rate = rate
        self._burst = max(1, burst)
        self._clock = clock
        self._next_slot = 0.0  # when the next slot not yet leased is, burst aside
        self.until = 0.0  # the cool-down's end
        self.leases = 0
        self.holds = 0

    def lease(self, seconds: float) -> Lease:
        now = self._clock()
        self.leases += 1
        if self.until > now:
            return Lease(hold=self.until - now)
        if self.rate is None:
            return Lease(free_for=seconds)
        interval = 1.0 / self.rate
        count = max(1, round(seconds * self.rate))
        # A quiet spell gives back up to `burst` slots at once, never more (GCRA).
        first = max(self._next_slot, now - (self._burst - 1) * interval)
        self._next_slot = first + count * interval
        return Lease(slots=tuple(first - now + k * interval for k in range(count)))

    def hold(self, seconds: float) -> None:
        now = self._clock()
        until = now + seconds
        self.holds += 1
        if until > self.until:
            self.until = until
            # Slots after the cool-down are spaced from its end, not let go in a burst at once.
            self._next_slot = max(self._next_slot, until)

    def held(self, after: int) -> Hold | None:
        """The latest cool-down if it is numbered above `after`; None if not."""
        if self.holds <= after:
            return None
        return Hold(self.holds, max(0.0, self.until - self._clock()))


class LocalBudget:
    """A RateBudget within one event loop: a Ledger behind the protocol (the rate actor's,
    and several harvests in one process)."""

    def __init__(self, ledger: Ledger, *, held_for: float = HELD_SECONDS) -> None:
        self.ledger = ledger
        self._held_for = held_for
        # Set (then replaced) at each cool-down reported: wakes every `held` waiting.
        self._reported = asyncio.Event()

    async def lease(self, seconds: float) -> Lease:
        return self.ledger.lease(seconds)

    def hold(self, seconds: float) -> None:
        self.ledger.hold(seconds)
        self._reported.set()
        self._reported = asyncio.Event()

    async def held(self, after: int) -> Hold:
        try:
            async with asyncio.timeout(self._held_for):
                while (hold := self.ledger.held(after)) is None:
                    await self._reported.wait()
        except TimeoutError:
            return Hold(after, 0.0)  # no news: the caller asks again, if it is still there
        return hold


class ManagerSource:
    """A TokenSource backed by a TokenManager that asks the token endpoint itself: the one
    process that holds the client's credentials (a token actor) serves every shard from it."""

    def __init__(self, tokens: TokenManager, *, clock: Callable[[], float] = time.monotonic):
        self._tokens = tokens
        self._clock = clock  # the manager's clock

    async def fetch(self, stale: int) -> Issued:
        token = await self._tokens.newer_than(stale)
        return Issued.of(token, self._clock())
