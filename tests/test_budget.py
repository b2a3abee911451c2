"""One token and one rate across harvests (budget.py, leases.py), without any engine: the lease
arithmetic on a fake clock, throttles sharing a budget, token managers sharing a source, and
two run()s in one process sharing both against the demo API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aioresponses import aioresponses
from multidict import CIMultiDict

from harvester.auth import TokenManager
from harvester.budget import Hold, Issued, Ledger, LocalBudget, ManagerSource
from harvester.config import ConcurrencyConfig
from harvester.demo import DemoSettings, run_demo
from harvester.ratelimit import Throttle
from harvester.runner import run
from harvester.secrets import Secrets
from harvester.stats import Stats
from tests.conftest import FakeTime, expected_bytes, make_config, no_wait_policy
from tests.test_auth import auth_config, issue_tokens, token_requests

T0 = 1000.0  # FakeTime's starting point


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


# --- the lease arithmetic --------------------------------------------------------------------


def test_a_lease_holds_a_tenth_of_a_second_of_slots_one_interval_apart(fake: FakeTime) -> None:
    ledger = Ledger(50.0, clock=fake.clock)

    first, second = ledger.lease(0.1), ledger.lease(0.1)

    assert first.slots == pytest.approx((0.0, 0.02, 0.04, 0.06, 0.08))
    # Leased at the same moment: the next block follows the first, never overlaps it.
    assert second.slots == pytest.approx((0.10, 0.12, 0.14, 0.16, 0.18))


def test_a_slow_rate_leases_one_slot_at_least(fake: FakeTime) -> None:
    ledger = Ledger(2.0, clock=fake.clock)

    assert ledger.lease(0.1).slots == (0.0,)
    assert ledger.lease(0.1).slots == pytest.approx((0.5,))


def test_a_quiet_spell_gives_back_a_burst_at_most(fake: FakeTime) -> None:
    ledger = Ledger(10.0, burst=3, clock=fake.clock)
    ledger.lease(0.1)
    fake.now += 60.0  # nothing leased for a minute: not 600 slots at once, 3

    slots = ledger.lease(0.5).slots

    assert slots[:3] == pytest.approx((-0.2, -0.1, 0.0))
    assert slots[3:] == pytest.approx((0.1, 0.2))


def test_a_hold_reaches_every_later_lease_and_slots_resume_after_it(fake: FakeTime) -> None:
    ledger = Ledger(10.0, clock=fake.clock)
    ledger.hold(5.0)
    held = ledger.lease(0.1)
    ledger.hold(1.0)  # shorter than the cool-down on: it stays
    fake.now += 5.0

    after = ledger.lease(0.2)

    assert held.slots == () and held.hold == pytest.approx(5.0)
    assert after.slots == pytest.approx((0.0, 0.1)) and after.hold == 0


def test_without_a_rate_a_lease_is_time_at_ones_own_pace(fake: FakeTime) -> None:
    ledger = Ledger(None, clock=fake.clock)

    assert ledger.lease(0.1).free_for == pytest.approx(0.1)
    ledger.hold(2.0)
    assert ledger.lease(0.1).hold == pytest.approx(2.0)


def test_issued_tokens_keep_their_value_out_of_reprs() -> None:
    issued = Issued("tok-secret-value", generation=3, refresh_in=1.5)

    assert "tok-secret-value" not in repr(issued)


# --- throttles sharing one budget ------------------------------------------------------------


def shared_throttles(
    fake: FakeTime, ledger: Ledger, n: int, **concurrency: object
) -> list[Throttle]:
    config = ConcurrencyConfig(**concurrency)  # type: ignore[arg-type]
    budget = LocalBudget(ledger)
    return [
        Throttle(config, Stats(), clock=fake.clock, sleep=fake.sleep, budget=budget)
        for _ in range(n)
    ]


async def sent_at(throttle: Throttle, fake: FakeTime) -> float:
    async with throttle.request():
        return fake.now


async def test_throttles_sharing_a_budget_keep_to_its_rate_together(fake: FakeTime) -> None:
    ledger = Ledger(10.0, clock=fake.clock)
    # Each would go at 10/s on its own: together they keep to 10/s, not 30. (In turn, not at
    # once: the fake clock adds up the sleeps of concurrent waiters.)
    throttles = shared_throttles(fake, ledger, 3, workers=4, rate_limit=10.0)

    times = [await sent_at(t, fake) for _ in range(10) for t in throttles]

    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps == pytest.approx([0.1] * 29)


async def test_a_refusal_seen_by_one_throttle_holds_the_others(fake: FakeTime) -> None:
    ledger = Ledger(10.0, clock=fake.clock)
    told, other = shared_throttles(fake, ledger, 2, workers=4, rate_limit=10.0)
    async with told.request() as ticket:
        ticket.observe(429, CIMultiDict({"Retry-After": "5"}))

    assert await sent_at(other, fake) >= T0 + 5.0
    assert ledger.holds == 1  # reported once; the other's hold was not echoed back


async def test_a_cool_down_reported_voids_the_slots_already_leased(fake: FakeTime) -> None:
    ledger = Ledger(50.0, clock=fake.clock)  # 5 slots to a lease
    told, other = shared_throttles(fake, ledger, 2, workers=4, rate_limit=50.0)
    assert await sent_at(told, fake) == T0  # its lease: T0 to T0 + 0.08
    assert await sent_at(other, fake) == pytest.approx(T0 + 0.1)  # its own: up to T0 + 0.18
    async with told.request() as ticket:
        ticket.observe(429, CIMultiDict({"Retry-After": "5"}))

    # Told while it waits for its next slot: not sent in it, but after the cool-down.
    assert await sent_at(other, fake) >= T0 + 5.0


async def test_slots_a_stall_left_behind_are_not_sent_in_a_burst(fake: FakeTime) -> None:
    # A GCRA limiter of burst 1 refuses any two requests closer than the interval (20 ms): the
    # slots a busy loop missed are let go, not made up for at once.
    ledger = Ledger(50.0, clock=fake.clock)  # 5 slots to a lease, 20 ms apart
    (throttle,) = shared_throttles(fake, ledger, 1, workers=4, rate_limit=50.0)
    times = [await sent_at(throttle, fake)]
    fake.now += 0.09  # the loop stalled for 90 ms: four slots of the lease are behind
    times += [await sent_at(throttle, fake) for _ in range(4)]

    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) > 0  # no two at once (they went four at once before)
    assert sum(gap < 0.02 - 1e-9 for gap in gaps) <= 1  # one slot late at most


async def test_a_held_call_without_news_returns_so_the_caller_asks_again() -> None:
    # A shard that ended leaves its call open on the budget's side: it must not stay forever
    # (a Ray actor serves only so many calls at once).
    budget = LocalBudget(Ledger(10.0), held_for=0.01)
    assert await budget.held(0) == Hold(0, 0.0)
    budget.hold(5.0)
    hold = await budget.held(0)
    assert hold.number == 1 and hold.left > 4


async def test_a_shared_budget_without_a_rate_still_shares_cool_downs(fake: FakeTime) -> None:
    ledger = Ledger(None, clock=fake.clock)
    told, other = shared_throttles(fake, ledger, 2, workers=4)
    assert await sent_at(other, fake) == T0  # no rate: no waiting
    async with told.request() as ticket:
        ticket.observe(429, CIMultiDict({"Retry-After": "3"}))
    fake.now += 0.2  # the other's free time (one lease) is over

    assert await sent_at(other, fake) >= T0 + 3.0


# --- token managers sharing one source -------------------------------------------------------


async def test_managers_sharing_a_source_ask_for_one_token(mock_http: aioresponses) -> None:
    issue_tokens(mock_http)
    async with aiohttp.ClientSession() as session:
        issuer = TokenManager(auth_config(), session, no_wait_policy(), Stats())
        source = ManagerSource(issuer)
        secrets = [Secrets() for _ in range(4)]
        shards = [
            TokenManager(
                auth_config(), session, no_wait_policy(), Stats(), source=source, secrets=s
            )
            for s in secrets
        ]

        tokens = await asyncio.gather(*(shard.current() for shard in shards))

    assert {t.value for t in tokens if t} == {"tok-1"}
    assert len(token_requests(mock_http)) == 1
    # Each shard's registry learns the token it was handed, to mask it.
    assert all(s.mask("sent tok-1") == "sent ***" for s in secrets)


async def test_a_401_refreshes_once_across_managers(mock_http: aioresponses) -> None:
    issue_tokens(mock_http)
    async with aiohttp.ClientSession() as session:
        source = ManagerSource(TokenManager(auth_config(), session, no_wait_policy(), Stats()))
        a, b = (
            TokenManager(auth_config(), session, no_wait_policy(), Stats(), source=source)
            for _ in range(2)
        )
        old, same = await a.current(), await b.current()
        assert old is not None and same is not None and old.value == same.value

        # Both shards see their token refused: the first refreshes, the second is handed the
        # token the first got, since someone refreshed after the one it was refused with.
        new_a = await a.after_unauthorized(old, url="http://api.test/items")
        new_b = await b.after_unauthorized(old, url="http://api.test/items")

    assert new_a.value == new_b.value == "tok-2"
    assert new_a.generation == new_b.generation == 2
    assert len(token_requests(mock_http)) == 2


async def test_a_manager_served_by_a_source_needs_no_credentials(
    mock_http: aioresponses,
) -> None:
    issue_tokens(mock_http)
    async with aiohttp.ClientSession() as session:
        source = ManagerSource(TokenManager(auth_config(), session, no_wait_policy(), Stats()))
        # A signing key it could not load, and no secret: it never asks the token endpoint.
        bare = auth_config(client_secret=None, auth_method="private_key_jwt")
        shard = TokenManager(bare, session, no_wait_policy(), Stats(), source=source)

        token = await shard.current()

    assert token is not None and token.value == "tok-1"


# --- two harvests in one process, through run() ----------------------------------------------


async def test_two_runs_share_one_token_and_one_rate(tmp_path: Path) -> None:
    settings = DemoSettings(records=600, max_page_size=50, rate_limit=40.0)
    async with run_demo(settings) as server, aiohttp.ClientSession() as session:
        configs = [
            make_config(
                server.url,
                tmp_path / f"out-{k}.jsonl",
                pagination={"page_size": 50},
                concurrency={"workers": 2, "rate_limit": 40.0},
            )
            for k in range(2)
        ]
        issuer = TokenManager(configs[0].auth, session, no_wait_policy(), Stats())
        budget = LocalBudget(Ledger(40.0))
        source = ManagerSource(issuer)

        await asyncio.gather(
            *(
                run(config, tokens=source, budget=budget, policy=no_wait_policy())
                for config in configs
            )
        )

    for k in range(2):
        assert (tmp_path / f"out-{k}.jsonl").read_bytes() == expected_bytes(600)
    assert server.stats.token_requests == 1
    # Each alone at 40/s, together at 40/s: the API's 40/s limit refused nothing, and every
    # request went on a leased slot (4 to a lease at 40/s).
    assert server.stats.statuses.get(429, 0) == 0
    assert budget.ledger.leases >= server.stats.data_requests / 4
