"""`tune()`: ramp concurrency until the API says no, then measure what it sustains."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from harvester.config import Config
from harvester.errors import TuneAborted
from harvester.fetch import make_fetcher, open_session
from harvester.retry import RetryPolicy
from harvester.secrets import Secrets
from harvester.stats import Stats
from harvester.tune.advice import Ending, advise, stopped_growing
from harvester.tune.measure import Pages, Probe, Step, Unthrottled, measure
from harvester.tune.report import Tuning, header, intro, step_line, sustained_intro, workers

# The share of the duration the ramp may take; the rest is left for the sustained phase.
_RAMP_SHARE = 0.5
# A step with more than this share of its requests failed aborts the tune.
_ABORT_SHARE = 0.5


def _levels(max_workers: int) -> list[int]:
    """1, 2, 4, ... and --max-workers itself."""
    levels = [1]
    while levels[-1] * 2 <= max_workers:
        levels.append(levels[-1] * 2)
    if levels[-1] != max_workers:
        levels.append(max_workers)
    return levels


async def tune(
    config: Config,
    *,
    max_workers: int,
    duration: float,
    secrets: Secrets | None = None,
    say: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Tuning:
    """Ramp concurrency 1, 2, 4, ... within `duration` seconds; at the first refusal, measure
    the sustained rate at that concurrency for the rest of the time. Raises TuneAborted when
    most requests of a step fail.

    `say` hears each line of the table as its step ends; `secrets` (the registry to mask
    with) learns each token as it is issued, as in `run`. `clock` and `sleep` time the steps,
    `pause` a worker's waits after a 429 or an error; tests pass fake ones.
    """
    levels = _levels(max_workers)
    deadline = clock() + duration
    tell = say or (lambda line: None)
    tell(intro(config, max_workers=max_workers, duration=duration))
    tell(header())
    async with _probing(config, max_workers, secrets, clock, sleep, pause) as probe:
        # Each level an equal slice of the ramp's share; the sustained phase at least the rest.
        per_step = duration * _RAMP_SHARE / len(levels)
        steps, ended = await _ramp(probe, levels, per_step, deadline, tell)
        stated = probe.throttle.stated
    return Tuning(steps, advise(steps, stated=stated), ended, max_workers, config.concurrency)


@contextlib.asynccontextmanager
async def _probing(
    config: Config,
    max_workers: int,
    secrets: Secrets | None,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    pause: Callable[[float], Awaitable[None]],
) -> AsyncIterator[Probe]:
    """A fetcher for `config` that measures the API rather than itself, with a token ready."""
    # One attempt per request: a tuner that retried would hide what it is there to see. No
    # configured rate and no adaptation either: tune measures the API, not the throttle.
    policy = RetryPolicy(dataclasses.replace(config.retry, max_attempts=1))
    concurrency = dataclasses.replace(
        config.concurrency, workers=max_workers, adaptive=False, rate_limit=None, burst=1
    )
    probe_config = dataclasses.replace(config, concurrency=concurrency)
    stats = Stats()
    async with open_session(probe_config) as session:
        throttle = Unthrottled(concurrency, stats)
        fetcher = make_fetcher(
            probe_config, session, policy, stats, secrets=secrets, throttle=throttle
        )
        await fetcher.tokens.current()  # the token is not part of any step's figures
        yield Probe(fetcher, Pages(config), policy, clock, sleep, pause, throttle)


async def _ramp(
    probe: Probe,
    levels: list[int],
    per_step: float,
    deadline: float,
    tell: Callable[[str], None],
) -> tuple[list[Step], Ending]:
    """The steps, up the levels until one is refused (then the sustained phase), fails, stops
    growing or the time is up; and which of those ended it."""
    steps: list[Step] = []
    for level in levels:
        left = deadline - probe.clock()
        if left <= 0.05:
            return steps, "time"
        step = await measure(probe, level, min(per_step, left), "ramp", pace=_pace(steps))
        steps.append(step)
        tell(step_line(step))
        _abort_if_failing(step)
        if step.throttled:
            await _sustain(probe, step, deadline - probe.clock(), steps, tell)
            return steps, "limit"
        if step.too_many_errors():
            return steps, "errors"
        if stopped_growing(steps):
            return steps, "flat"
    # Every level ran and grew: the ceiling was --max-workers, unless nothing was admitted.
    return steps, "max-workers" if steps and steps[-1].admitted else "flat"


async def _sustain(
    probe: Probe, step: Step, seconds: float, steps: list[Step], tell: Callable[[str], None]
) -> None:
    """The sustained phase: `step`'s concurrency for `seconds` more, from its first refusal on."""
    if seconds <= 0.05:
        return  # no time left: the advice makes do with the step, and says so
    tell(sustained_intro(step, seconds))
    sustained = await measure(probe, step.concurrency, seconds, "sustained", pace=_pace(steps))
    steps.append(sustained)
    tell(step_line(sustained))
    _abort_if_failing(sustained)
    if sustained.throttled and not sustained.admitted:
        raise TuneAborted(
            f"the API refused every one of {sustained.requests} requests for "
            f"{sustained.seconds:.1f} s at {workers(step.concurrency)} (429): a quota spent "
            "until later? No advice from that",
            concurrency=step.concurrency,
            failed=sustained.throttled,
            answered=sustained.requests,
        )


def _pace(steps: list[Step]) -> float:
    """How long a page took in the steps so far: a worker's wait after a 429."""
    latencies = [latency for s in steps for latency in s.latencies]
    return statistics.median(latencies) if latencies else 0.0


def _abort_if_failing(step: Step) -> None:
    """Most of a step's requests failed: stop, rather than press on against a failing API."""
    error = step.last_error
    if error is None or step.errors <= _ABORT_SHARE * step.requests:
        return
    raise TuneAborted(
        f"{step.errors} of {step.requests} requests failed at {workers(step.concurrency)}: "
        f"the last, {error}",
        concurrency=step.concurrency,
        failed=step.errors,
        answered=step.requests,
        url=getattr(error, "url", None),
        status=getattr(error, "status", None),
    )
