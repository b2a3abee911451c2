"""The shared request budget: a rate limit, a global cool-down, adaptive concurrency.

Every request, data or token, passes `Throttle` first. Three things can hold it:

1. the cool-down (cooldown.py): a 429 or a 503 (nginx's limit_req refuses with one), or
   rate-limit headers saying nothing remains, pause every worker until that time, not only the
   one that was told. A refusal without Retry-After pauses them too, briefly: every request
   sent meanwhile would be refused;
2. the rate, each request in a slot of its own (pacing.py): `concurrency.rate_limit` requests
   per second, or, when no rate is set, the rate the API states (RateLimit-Policy) or was seen
   to bear (rate_learning.py); or, where other processes share the budget (budget.py), the
   slots leased from it (leases.py), every cool-down begun here reported to it;
3. the concurrency limit (data requests only; concurrency.py).

A refusal teaches the rate (rate_learning) unless it was a limit on requests in flight's; both
are known once the requests in flight with it are answered, so the learner hears of it then
(hearing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from harvester.api_time import ApiTime
from harvester.budget import RateBudget
from harvester.concurrency import Concurrency, Flight
from harvester.config import ConcurrencyConfig
from harvester.cooldown import CoolDown
from harvester.hearing import Hearing
from harvester.leases import LeasedPacer
from harvester.pacing import Pacer
from harvester.rate_headers import RateLimitInfo, parse_rate_limit
from harvester.rate_learning import RateLearner
from harvester.retry import REFUSALS, in_whole_seconds, parse_retry_after
from harvester.stats import Stats

log = logging.getLogger("harvester")

# A rate the API states (RateLimit-Policy) is exact: only a sliver is left for clock drift.
_STATED_SHARE = 0.97
# A policy over a window longer than this is a quota, not a pace: spent as requests come, its end
# waited out when nothing remains. Paced at limit / window, an hourly budget would be spread over
# the hour even for a harvest that needs a tenth of it.
_PACED_WINDOW = 2.0

__all__ = ["REFUSALS", "RateLimitInfo", "Throttle", "Ticket", "parse_rate_limit"]


class Ticket:
    """One request's passage through the throttle; `observe` tells it how the request went."""

    def __init__(
        self, throttle: Throttle, episode: int, sent: float, flight: Flight | None
    ) -> None:
        self._throttle = throttle
        self.episode = episode  # the cool-down episode current when the request was sent
        self.sent = sent  # when it was let through
        self.flight = flight  # a data request's place among those in flight (None: a token's)

    def sending(self) -> None:
        """The request goes now, later than it was let through (it waited for a token): of
        the cool-down episode current now."""
        self._throttle._sending(self)

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        self._throttle._observe(self, status, headers)


class Throttle:
    """Rate, cool-down and concurrency, shared by every worker and the token manager."""

    def __init__(
        self,
        config: ConcurrencyConfig,
        stats: Stats,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_pause: float = 600.0,
        hold_long: bool = False,
        budget: RateBudget | None = None,
        share: float = 1.0,
        slow_start: bool = True,
    ) -> None:
        """`budget` (budget.py): the rate and cool-downs are shared with other processes; the
        slots come from its leases, and each cool-down this throttle begins is reported to it.
        `share`: this process's part of what the API states for the whole client (a rate, a
        limit on requests in flight), where shards split one client's budget."""
        self._share = share
        self._clock = clock
        self._stats = stats
        self._fixed_rate = config.rate_limit
        # Unless a rate is set, the pace is learned; the stated rate caps it, never probed past
        # (every overshoot of a stated limit costs a pause for every worker).
        self._learner = RateLearner(clock())
        self._budget = budget
        self._leased = (
            None if budget is None else LeasedPacer(budget, config.burst, clock=clock, sleep=sleep)
        )
        self._pacer = self._leased or Pacer(config.burst, clock=clock, sleep=sleep)
        # A pause asked for beyond max_pause is a long quota: held with a line that says so
        # where `hold_long` (retry.on_long_quota: wait), else not held: the request fails.
        self._cool_down = CoolDown(
            stats, self._pacer, clock=clock, sleep=sleep, max_pause=max_pause, hold_long=hold_long
        )
        if self._leased is not None:  # a cool-down a lease tells of, held as this one's own
            self._leased.on_hold = self._cool_down.hold_until
        self._concurrency = Concurrency(
            config.workers,
            adaptive=config.adaptive,
            stats=stats,
            clock=clock,
            slow_start=slow_start,
        )
        self._api_time = ApiTime()
        self._hearing = Hearing(
            self._learner, self._concurrency, self._api_time, on_learned=self._learned
        )
        stats.rate_limit = config.rate_limit
        # A cool-down's line (cause, wait, workers at once), told with the rate it leads to.
        self._unheard_line: tuple[str, float, int] | None = None

    @property
    def rate(self) -> float | None:
        """The pace now: the rate set, else the one stated or learned; None: no limit known."""
        if self._fixed_rate is not None:
            return self._fixed_rate
        return self._learner.rate(self._clock())

    @property
    def limit(self) -> int:
        """How many data requests may be in flight now."""
        return self._concurrency.limit

    @contextlib.asynccontextmanager
    async def request(self, *, counted: bool = True, again: bool = False) -> AsyncIterator[Ticket]:
        """Wait for a place (concurrency, cool-down, rate); hold it for the request. `again`:
        a retry, which takes its place and its slot before first attempts do (turn.py)."""
        if counted:
            # A limit with no burst refuses two requests closer than its interval, and the
            # requests' way varies: several in flight, paced, may arrive closer than sent. One
            # at a time cannot (each goes once the one before is answered, so arrives the API's
            # time after it), and costs little where the pace is near that of one at a time.
            self._concurrency.single = (
                self._fixed_rate is None
                and self._learner.no_burst
                and self._api_time.near_sequential(self.rate)
            )
            await self._concurrency.enter(again=again)
        flight: Flight | None = None
        try:
            await self._cool_down.wait()
            if self._hearing.overdue(self._clock()):
                # A request still in flight this long after the refusal was admitted.
                self._hearing.settle(self._clock(), force=True)
            await self._wait_rate(again)
            now = self._clock()
            if counted:
                flight = self._concurrency.send()
                self._learner.begin(now)
            yield Ticket(self, self._cool_down.episode, now, flight)
        finally:
            if flight is not None:
                unanswered = flight.admitted is None  # an answer settled the hearing already
                self._concurrency.land(flight)
                if unanswered:
                    # Ended with no answer (timed out, cancelled): a refusal waiting for it is
                    # heard now, its cool-down's line with it, not at an answer that never comes.
                    self._hearing.settle(self._clock())
            if counted:
                await self._concurrency.leave()

    async def _wait_rate(self, again: bool) -> None:
        if self._leased is not None:  # leased slots, with or without a rate of one's own
            async with self._leased.turn(first=again):
                while not await self._leased.wait(self.rate, self._cool_down.active):
                    await self._cool_down.wait()
            return
        if self.rate is None:
            return
        async with self._pacer.turn(first=again):
            while (rate := self.rate) is not None:
                self._show_rate(rate)
                if await self._pacer.wait(rate, self._cool_down.active):
                    return
                # A cool-down began meanwhile: after it, spaced like the rest.
                await self._cool_down.wait()

    def _show_rate(self, rate: float) -> None:
        self._stats.rate_limit = round(rate, 2)

    def _sending(self, ticket: Ticket) -> None:
        ticket.sent = self._clock()
        ticket.episode = self._cool_down.episode

    def _observe(self, ticket: Ticket, status: int, headers: Mapping[str, str]) -> None:
        until = self._cool_down.until
        self._heed(ticket, status, headers)
        if self._budget is not None and self._cool_down.until > until:
            # A cool-down begun or lengthened here holds every shard sharing the budget.
            self._budget.hold(self._cool_down.left(self._clock()))

    def _heed(self, ticket: Ticket, status: int, headers: Mapping[str, str]) -> None:
        now = self._clock()
        info = parse_rate_limit(headers)
        retry_after = parse_retry_after(headers.get("Retry-After")) if status in REFUSALS else None
        if info is not None:
            # "Retry-After: 0" tells no time to come back: Flask-Limiter truncates its wait to
            # whole seconds, so it sends 0 for a window that ends within the second; the reset
            # read with it is then the pause.
            self._read_headers(info, ticket, now, told=bool(retry_after))
        if status in REFUSALS:
            coarse = retry_after is not None and in_whole_seconds(headers["Retry-After"])
            # "Retry-After: 0" with headers saying nothing remains: the rate, a window spent.
            spent = info is not None and info.remaining == 0
            self._refused(ticket, status, retry_after, now, coarse=coarse, spent=spent)
            self._hearing.settle(now)
            return
        if ticket.flight is not None and not 200 <= status < 300:
            self._concurrency.answered(ticket.flight)
        if 200 <= status < 300:
            if ticket.flight is not None:  # a data request's time (a token's is another's)
                took = now - ticket.sent
                self._api_time.took(took)
                queued = self._api_time.queued(took)
                lengthened = self._api_time.lengthened(took)
                self._concurrency.admitted(
                    ticket.flight,
                    now,
                    queued=queued,
                    lengthened=lengthened,
                    least=self._api_time.needed(self.rate),
                )
                # A data request's: a token's success, like its refusal, is another endpoint's.
                self._learner.admitted(now, self._api_time.sequential(), sent=ticket.sent)
            self._cool_down.succeeded(ticket.sent)
        self._hearing.settle(now)

    def _learned(self, rate: float | None) -> None:
        if rate is not None:
            self._show_rate(rate)
        self._pacer.strict = self._learner.no_burst
        self._tell_unheard()

    def _read_headers(self, info: RateLimitInfo, ticket: Ticket, now: float, *, told: bool) -> None:
        """`told`: a refusal with Retry-After, which says when to come back: a reset read with it
        (often rounded up to a whole Unix second, so up to a second later) does not lengthen the
        pause. Each says no later than the budget is back; the Retry-After is about this
        request, and is never shortened."""
        self._hearing.timed = self._hearing.timed or bool(info.reset or info.window)
        if info.limit and info.remaining is not None and info.reset is None and not info.window:
            # A limit and what remains of it, with no reset and no window: a limit on requests
            # in flight (there is no time at which it comes back). Never more at once.
            self._concurrency.told(max(1, int(info.limit * self._share)))
        window = info.window or 0.0  # 0: none stated
        if info.limit and 0 < window <= _PACED_WINDOW and self._fixed_rate is None:
            stated = info.limit / window * _STATED_SHARE * self._share
            if self._learner.stated != stated:
                self._learner.state(stated, now)
                log.info(
                    "the API states a limit of %d requests per %g s: rate at most %.2f/s",
                    info.limit,
                    window,
                    stated,
                )
        if info.remaining == 0 and info.reset and not told and self._cool_down.holds(info.reset):
            rate = self.rate
            if rate is None:
                self._cool_down.hold_until(now + info.reset)
            else:
                # Paced already: the budget comes back a place at a time (a token bucket,
                # GCRA), the next place one interval after this request took the last one,
                # however coarsely the reset is rounded. A window's end is nearer than that
                # only when the window is almost over. No new request goes sooner; those
                # already queued for later slots keep them (a hold would send each of them
                # behind all the others, for a send that lagged its slot a little).
                self._pacer.defer(min(now + info.reset, ticket.sent + 1.0 / rate))

    def _refused(
        self,
        ticket: Ticket,
        status: int,
        retry_after: float | None,
        now: float,
        *,
        coarse: bool,
        spent: bool,
    ) -> None:
        first = self._cool_down.refused(ticket.episode, retry_after, now, self.rate)
        if first:
            self._concurrency.cooled()
        # Whether a limit on requests in flight refused it (None: told by its answers).
        at_once: bool | None = False
        if ticket.flight is not None:
            needed = self._api_time.needed(self.rate)  # in flight, for the pace
            at_once = self._concurrency.refused(ticket.flight, first=first, least=needed)
        if at_once is False:
            self._hearing.not_at_once()
        if not first:
            return  # sent before this episode began, which has been answered: once per episode
        # "Retry-After: 0" asks for no pause: whatever refused the request, it was not the rate,
        # unless headers read with it say nothing remains (Flask-Limiter's, for a window that
        # ends within the second). A token request's refusal holds every request (none goes
        # without a token), but tells nothing of the data's rate: the token endpoint is often
        # another server, with a budget of its own (a few requests a minute at some identity
        # providers).
        heard_later = False
        if ticket.flight is None:
            self._hearing.pause(now, self._cool_down.left(now))
        elif self._fixed_rate is None and (retry_after != 0 or spent):
            heard_later = self._hearing.refused(
                ticket.sent,
                now,
                self._cool_down.left(now),
                told=retry_after is not None,
                coarse=coarse,
                at_once=at_once,
            )
        self._tell_unheard()  # an earlier cool-down's, not heard yet: with the rate as it is
        cause = "429 Too Many Requests" if status == 429 else f"{status} Service Unavailable"
        self._unheard_line = (cause, self._cool_down.left(now), self.limit)
        if not heard_later:
            self._tell_unheard()

    def _tell_unheard(self) -> None:
        """The INFO line of the last cool-down, with the rate it leads to: told once the learner
        has heard of its refusal (hearing.py), which may be a few answers later; or, not heard
        yet when the next cool-down begins, then, with the rate as it is."""
        if self._unheard_line is None:
            return
        cause, wait, limit = self._unheard_line
        self._unheard_line = None
        rate = self.rate
        log.info(
            "cool-down: %s, every worker waits %.1f s; rate %s, %d workers at once",
            cause,
            wait,
            "not set" if rate is None else f"{rate:.2f}/s",
            limit,
        )
