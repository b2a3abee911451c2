"""run(config): the only place that knows every stage and wires them together."""

from __future__ import annotations

import contextlib
import functools
import glob
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harvester.budget import RateBudget, TokenSource
from harvester.checkpoint import (
    checkpoint_path,
)
from harvester.config import Config
from harvester.errors import ConfigError
from harvester.fanout import harvest_children, parent_fingerprint
from harvester.fetch import make_fetcher, open_session
from harvester.harvests import harvest_chains, harvest_known_total, harvest_open_end
from harvester.job import Job, WriterFactory
from harvester.manifest import (
    finished_shard,
    manifest_path,
    plain,
)
from harvester.output import claim, remove_tree
from harvester.retry import RetryPolicy
from harvester.secrets import Secrets
from harvester.shard import (
    Shard,
    budget_share,
    check_partition,
    check_shardable,
    shard_config,
    shard_warnings,
)
from harvester.shared import Shared
from harvester.sink import part_path
from harvester.stats import Stats
from harvester.stop import Stop
from harvester.writers.tee import records_copy

__all__ = ["Stop", "run"]

log = logging.getLogger("harvester")

# run(tokens=, budget=): the token and the rate shared with other processes, if they are.
_Outside = tuple[TokenSource | None, RateBudget | None]


async def run(
    config: Config,
    *,
    max_records: int | None = None,
    stats: Stats | None = None,
    policy: RetryPolicy | None = None,
    on_secret: Callable[[str], None] | None = None,
    fresh: bool = False,
    stop: Stop | None = None,
    secrets: Secrets | None = None,
    writer: WriterFactory | None = None,
    shared: Shared | None = None,
    shard: Shard | None = None,
    tokens: TokenSource | None = None,
    budget: RateBudget | None = None,
) -> Stats:
    """Harvest the whole dataset `config` describes; the stats say what happened.

    The engine under harvest() and the command line: `config` is a Config as load_config or
    parse_config return it (validated), and nothing is shown. harvest() and harvest_async() take
    a path or a mapping too, validate a hand-built Config, show progress and handle Ctrl-C.

    A checkpoint left beside the output by an unfinished run is resumed from, unless `fresh`.
    Raises HarvesterError (or a subclass) when the harvest cannot complete; Interrupted when
    `stop` was requested. No secret of the run shows in what it raises, logs or counts:
    `secrets` is the registry to use (one is made from `config` if not given); `on_secret`
    hears of each secret value, configured or issued.

    With `writer`, each committed page goes to the writer it makes instead of the output (the
    Python API's stream()): no output file, no lock, no checkpoint, nothing resumed; partition
    windows spool in a private temporary folder, removed at the end.

    With `shared` (harvester.resources runs several resources), the session, token manager and
    throttle are those every resource shares, and a child resource fans out over its parent's.

    With `shard`, only that shard's slice is harvested, into its own file and manifest
    (harvester.shard); a shard whose manifest says it is finished makes no request.

    `tokens` and `budget` (harvester.budget) share the token and the rate with other processes:
    a refresh takes its token from `tokens`, and the requests go on slots leased from `budget`,
    whose cool-downs hold every process (harvester.engines.ray runs shards so).
    """
    if not isinstance(config, Config):  # run("config.yaml") would fail deep inside otherwise
        raise TypeError(
            f"run() takes a validated harvester.Config, got {type(config).__name__}; for a path "
            "or a mapping use harvester.harvest(config) (or await harvester.harvest_async(config))"
        )
    stats = stats if stats is not None else Stats()
    if shard is not None:
        check_shardable(config, max_records=max_records)
        check_partition(config, shard)
        for warning in shard_warnings(config, shard):
            log.warning(warning)
            stats.warn(warning)
        config = shard_config(config, shard)
    if config.incremental is not None:  # a folder of runs: harvester.incremental drives run()
        harvest = functools.partial(
            run, policy=policy, on_secret=on_secret, tokens=tokens, budget=budget
        )
        return await _incremental(
            config, max_records, stats, fresh, stop, secrets, writer, harvest=harvest
        )
    # A registry given (the CLI's, already masking its logs) learns the config's secrets too.
    if secrets is None:
        secrets = Secrets.of(config)
    else:
        secrets.add_configured(config.named_secrets())
    if on_secret is not None:
        secrets.listen(on_secret)
    with secrets.masking_logs():
        try:
            return await _run(
                config,
                max_records,
                stats,
                policy,
                fresh,
                stop,
                secrets,
                writer,
                shared,
                shard,
                outside=(tokens, budget),
            )
        except BaseException as exc:
            masked = secrets.mask_exception(exc)
            if masked is exc:
                raise
        finally:
            stats.warnings[:] = map(secrets.mask, stats.warnings)
    # A stand-in, raised outside the except clause so that the original is not its context.
    raise masked


async def _incremental(
    config: Config,
    max_records: int | None,
    stats: Stats,
    fresh: bool,
    stop: Stop | None,
    secrets: Secrets | None,
    writer: WriterFactory | None,
    *,
    full_refresh: bool = False,
    harvest: Callable[..., Any] | None = None,
) -> Stats:
    from harvester.incremental import run_incremental  # it calls run() back for the window

    if writer is not None or max_records is not None:
        # A sample or a stream would advance the stored value past records never kept.
        what = "stream()" if writer is not None else "max_records"
        raise ConfigError(f"{what} cannot go with incremental runs", key="incremental")
    return await run_incremental(
        config,
        harvest or run,
        stats=stats,
        fresh=fresh,
        full_refresh=full_refresh,
        stop=stop,
        secrets=secrets,
    )


async def run_full_refresh(
    config: Config,
    *,
    max_records: int | None = None,
    stats: Stats | None = None,
    fresh: bool = False,
    stop: Stop | None = None,
    secrets: Secrets | None = None,
) -> Stats:
    """An incremental config's run from incremental.initial into a new folder generation,
    which replaces the folder once complete (--full-refresh); run()'s arguments otherwise."""
    if config.incremental is None:
        raise ConfigError("--full-refresh needs an incremental: section", key="incremental")
    stats = stats if stats is not None else Stats()
    return await _incremental(
        config, max_records, stats, fresh, stop, secrets, None, full_refresh=True
    )


async def _run(
    config: Config,
    max_records: int | None,
    stats: Stats,
    policy: RetryPolicy | None,
    fresh: bool,
    stop: Stop | None,
    secrets: Secrets,
    writer: WriterFactory | None = None,
    shared: Shared | None = None,
    shard: Shard | None = None,
    *,
    outside: _Outside = (None, None),
) -> Stats:
    policy = policy or RetryPolicy(config.retry)
    stop = stop or Stop(grace=config.concurrency.stop_grace)
    for warning in config.warnings():  # every run, not once: an opt-out must stay visible
        log.warning(warning)
        stats.warn(warning)
    try:
        if writer is not None:
            if shard is not None:  # a stream of one shard's records would merge with nothing
                raise TypeError("run(): a shard is harvested into its file, not a writer")
            with tempfile.TemporaryDirectory(prefix="harvester-") as folder:
                records = Path(folder) / "records"
                job = Job(config, stats, max_records, stop, records, None, secrets, into=writer)
                await _harvest(job, policy, secrets, shared, outside)
            return stats
        place = claim(config.output.path, own_files=_own_files, warn=_warner(stats))
        with place as (output, stream):
            job = Job(config, stats, max_records, stop, output, stream, secrets, shard=shard)
            if shard is not None and _finished(job, fresh=fresh):
                return stats
            # A parent's children read its records back: from a JSON Lines copy where needed.
            job.copy_records = shared is not None and config.name in shared.parents
            if config.parent is not None:  # a child resumes only over the same parent records
                job.fingerprint["parent_output"] = parent_fingerprint(_parents(config, shared))
            job.load_checkpoint(fresh=fresh)
            await _harvest(job, policy, secrets, shared, outside)
            if shard is not None:
                job.write_manifest()
        if max_records is None and stats.total_records not in (None, stats.records):
            stats.warn(
                f"the API advertised {stats.total_records} records and {stats.records} were "
                "written: the data changed during the harvest"
            )
    finally:
        stats.finished = time.monotonic()
    return stats


def _finished(job: Job, *, fresh: bool) -> bool:
    """Whether the job's shard is finished already (its manifest and file in place): engines
    run a finished task again, and it must then make no request. Otherwise (or with `fresh`)
    its manifest goes before any request: until the harvest is complete again, nothing may
    take the shard's file for finished (a rerun, harvester merge)."""
    manifest = None if fresh else finished_shard(job.output, plain(job.dataset))
    if manifest is None:
        remove_tree(manifest_path(job.output))
        return False
    job.stats.records, job.stats.bytes = manifest.count, manifest.bytes
    job.stats.shard = {"shard": str(job.shard), "file": str(job.output), "finished_before": True}
    log.info(
        "shard %s is finished already (%s): nothing to do; --fresh harvests it again",
        job.shard,
        manifest_path(job.output),
    )
    return True


def _warner(stats: Stats) -> Callable[[str], None]:
    def warn(message: str) -> None:
        log.warning(message)
        stats.warn(message)

    return warn


def _own_files(output: Path) -> list[Path]:
    """The files beside `output` a run writes: none may be a symbolic link."""
    part, checkpoint = part_path(output), checkpoint_path(output)
    spools = part.parent.glob(glob.escape(part.name) + ".*") if part.parent.is_dir() else []
    copy = records_copy(output)  # a parent's, beside it (writers/tee.py)
    own = [part, checkpoint, checkpoint.with_name(checkpoint.name + ".tmp"), copy, part_path(copy)]
    return [*own, *spools]


def _parents(config: Config, shared: Shared | None) -> Path:
    if shared is None:
        raise TypeError("a child resource runs with its parent: see harvester.resources")
    return shared.outputs[str(config.parent)]


async def _harvest(
    job: Job,
    policy: RetryPolicy,
    secrets: Secrets,
    shared: Shared | None = None,
    outside: _Outside = (None, None),
) -> None:
    config, stop = job.config, job.stop
    async with contextlib.AsyncExitStack() as stack:
        if shared is None:
            session = await stack.enter_async_context(open_session(config))
            source, budget = outside
            job.fetcher = make_fetcher(
                config,
                session,
                policy,
                job.stats,
                secrets=secrets,
                source=source,
                budget=budget,
                share=budget_share(config, job.shard),
            )
        else:
            job.fetcher = shared.fetcher(config, job.stats, policy)
        try:
            async with stop.grace_period():
                if config.parent is not None:
                    assert shared is not None  # _parents said so
                    await harvest_children(job, _parents(config, shared), shared, policy)
                elif job.chained:
                    await harvest_chains(job)
                elif config.pagination.total_known:
                    await harvest_known_total(job)
                else:
                    await harvest_open_end(job)
        except TimeoutError:
            if not stop.requested:
                raise
            if not job.finished:  # a stop that came as the output was renamed: done
                job.interrupted()
