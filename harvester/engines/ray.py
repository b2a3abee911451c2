"""Shards as Ray tasks: one token actor and one rate actor for all of them, then the merge.

Only harvester/engines/ imports Ray (the optional extra `harvester[ray]`). Each shard is a Ray task
calling `harvester.runner.run()` with two small adapters (budget.py's interfaces) onto actors:

- the token actor holds the client's credentials and asks the token endpoint itself, once per
  token lifetime for every shard together: single-flight (its TokenManager's lock) and
  generation-checked (`TokenManager.newer_than`: a shard whose token was refused gets a newer
  one only if nobody has refreshed since). The shards never send the client secret anywhere;
- the rate actor hands out leases (budget.Ledger): a tenth of a second of `rate_limit` per call
  (an actor call costs 1-2.5 ms), and holds every shard when one of them is refused.

With `concurrency.scope: shard` (the API limits per client address) the rate is not shared:
each shard paces itself on the whole budget; the token still is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError

from harvester.config import Config
from harvester.engines.ray_actors import (
    ActorBudget,
    ActorTokens,
    Failed,
    RateActor,
    SharedTokenError,
    TokenActor,
)
from harvester.errors import HarvesterError
from harvester.logs import setup_logging
from harvester.merge import Merged, merge_shards
from harvester.runner import run
from harvester.shard import Shard, check_partition, check_shardable

__all__ = [
    "Job",
    "Outcome",
    "Report",
    "SharedTokenError",
    "harvest_on_ray",
    "run_jobs",
    "shards_of",
    "start",
    "stop",
]


@dataclass(frozen=True)
class Job:
    """One Ray task: `config` harvested whole, or shard `shard` of it."""

    config: Config
    shard: Shard | None = None

    @property
    def label(self) -> str:
        return f"shard {self.shard}" if self.shard is not None else str(self.config.output.path)


@dataclass
class Outcome:
    """How one task went; `started` and `finished` on the wall clock (time.time())."""

    label: str
    exit_code: int = 0
    error: str = ""
    records: int = 0
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    token_requests: int = 0  # the shard's own: 0 when the token actor served it
    cool_down_seconds: float = 0.0  # paused, for its own refusals and those others reported
    started: float = 0.0
    finished: float = 0.0


@dataclass
class Report:
    """Every task's outcome, and what the actors did for them all."""

    outcomes: list[Outcome]
    token_requests: int | None  # None: the token actor was gone by the end
    leases: int
    holds: int
    merged: Merged | None = None  # harvest_on_ray's merge, once every shard is complete

    @property
    def exit_code(self) -> int:
        return max((outcome.exit_code for outcome in self.outcomes), default=0)


def without_credentials(config: Config) -> Config:
    """`config` as a shard gets it: the token actor asks for every token, so what only a token
    request needs (the secret, the signing key, extra token parameters, the token endpoint's
    proxy and its password) stays with it and travels to no shard. A bearer token, and a TLS
    client key's password, are what each shard sends itself: those it keeps."""
    if config.auth.type != "client_credentials":
        return config
    auth = dataclasses.replace(
        config.auth,
        client_secret=None,
        private_key=None,
        private_key_password=None,
        extra_params={},
        proxy=None,
    )
    return dataclasses.replace(config, auth=auth)


@ray.remote(num_cpus=1)
def _harvest_task(job: Job, tokens: Any, rates: Any, log_level: str) -> Outcome:
    setup_logging(log_level)  # a worker process of Ray's: its lines reach the driver's stderr
    outcome = Outcome(job.label, started=time.time())
    budget = ActorBudget(rates) if rates is not None else None
    try:
        stats = asyncio.run(
            run(job.config, shard=job.shard, tokens=ActorTokens(tokens), budget=budget)
        )
    except HarvesterError as exc:  # already masked by run(); one line, as the CLI shows it
        outcome.exit_code, outcome.error = exc.exit_code, str(exc)
    else:
        outcome.records, outcome.requests = stats.records, stats.requests
        outcome.statuses = dict(stats.statuses)
        outcome.token_requests = stats.token_requests
        outcome.cool_down_seconds = stats.cool_down_seconds
    outcome.finished = time.time()
    return outcome


def start(address: str | None, *, cpus: int) -> None:
    """Join the Ray cluster at `address`, or start a local one with `cpus` CPUs (as many as
    shards run at once, whatever the machine has: shards mostly wait on the network)."""
    if ray.is_initialized():
        return
    quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": True}
    if address is None:
        ray.init(num_cpus=cpus, include_dashboard=False, **quiet)
    else:
        ray.init(address=address, **quiet)


def stop() -> None:
    """Leave the Ray cluster (a local one started by `start` stops with it)."""
    ray.shutdown()


def run_jobs(
    jobs: Sequence[Job],
    *,
    concurrent: int,
    shared_rate: bool = True,
    log_level: str = "WARNING",
    token_config: Config | None = None,
) -> Report:
    """Run `jobs` as Ray tasks, `concurrent` at a time, on one token and (`shared_rate`) one
    rate; the jobs' configs share auth and concurrency (the first one's are used). `token_config`:
    the config whose auth the token actor asks with (default: the first job's)."""
    first = jobs[0].config
    tokens = TokenActor.remote(token_config or first, log_level)  # type: ignore[attr-defined]
    rates = None
    if shared_rate:
        concurrency = first.concurrency
        rates = RateActor.remote(concurrency.rate_limit, concurrency.burst)  # type: ignore[attr-defined]
    try:
        # Up before any task starts: a task would hold its CPU waiting for them (a new actor
        # is a new process: a second or so).
        ray.get([tokens.ready.remote(), *([rates.counts.remote()] if rates is not None else [])])
        if (token_config or first).auth.type == "client_credentials":
            _first_token(tokens)
        outcomes = _run_all(jobs, tokens, rates, concurrent, log_level)
        token_requests, leases, holds = _counts(tokens, rates)
    finally:
        for actor in (tokens, rates):
            if actor is not None:
                ray.kill(actor)
    return Report(outcomes, token_requests, leases, holds)


def _first_token(tokens: Any) -> None:
    """The run's first token, before any shard starts: credentials the token endpoint refuses
    fail the run here, in one line, with one request and no shard file made."""
    answer = ray.get(tokens.fetch.remote(0))
    if isinstance(answer, Failed):
        raise SharedTokenError(answer.message, exit_code=answer.exit_code)


def _counts(tokens: Any, rates: Any) -> tuple[int | None, int, int]:
    """(token requests, leases, cool-downs) as the actors counted them; None and 0 for an
    actor that is gone: the shards' outcomes stand all the same."""
    try:
        token_requests: int | None = int(ray.get(tokens.token_requests.remote()))
        ray.get(tokens.close.remote())
    except RayError:
        token_requests = None
    try:
        leases, holds = ray.get(rates.counts.remote()) if rates is not None else (0, 0)
    except RayError:
        leases, holds = 0, 0
    return token_requests, leases, holds


def _run_all(
    jobs: Sequence[Job], tokens: Any, rates: Any, concurrent: int, log_level: str
) -> list[Outcome]:
    waiting = list(enumerate(jobs))
    running: dict[Any, tuple[int, Job]] = {}
    outcomes: list[Outcome | None] = [None] * len(jobs)
    while waiting or running:
        while waiting and len(running) < concurrent:
            index, job = waiting.pop(0)
            running[_harvest_task.remote(job, tokens, rates, log_level)] = (index, job)
        done, _ = ray.wait(list(running), num_returns=1)
        for ref in done:
            index, job = running.pop(ref)
            try:
                outcomes[index] = ray.get(ref)
            except RayError as exc:
                outcomes[index] = Outcome(job.label, exit_code=1, error=_failure(exc))
    return [outcome for outcome in outcomes if outcome is not None]


def _failure(exc: RayError) -> str:
    """One line for a task that raised what is no HarvesterError (a bug: its message is
    masked by run() already), or whose process died more often than Ray runs it again."""
    if isinstance(exc, RayTaskError) and exc.cause is not None:
        cause = exc.cause
        first = (str(cause).splitlines() or [""])[0]
        return f"internal error: {type(cause).__name__}: {first}"
    return f"the Ray task failed: {type(exc).__name__}"


def shards_of(config: Config, *, shards: int, concurrent: int | None = None) -> list[Shard]:
    """The `shards` shards of `config`, `concurrent` at a time (all by default); ConfigError
    (exit 2) if `config` cannot be cut into them, said once here rather than by every task."""
    concurrent = concurrent or shards
    every = [Shard(index=k, count=shards, concurrent=concurrent) for k in range(shards)]
    check_shardable(config, max_records=None)
    check_partition(config, every[0])
    return every


def harvest_on_ray(
    config: Config, *, shards: int, concurrent: int | None = None, log_level: str = "WARNING"
) -> Report:
    """Harvest `config` as `shards` Ray tasks (`concurrent` at a time, all by default), then
    merge the shards into output.path once every one of them is complete."""
    every = shards_of(config, shards=shards, concurrent=concurrent)
    concurrent = every[0].concurrent
    shard_config = without_credentials(config)
    jobs = [Job(shard_config, shard) for shard in every]
    # scope: shard means the API limits each client address: no rate is shared, each shard has it.
    shared_rate = config.concurrency.scope == "run"
    report = run_jobs(
        jobs,
        concurrent=concurrent,
        shared_rate=shared_rate,
        log_level=log_level,
        token_config=config,
    )
    if report.exit_code == 0:
        report.merged = merge_shards(config, count=shards)
    return report
