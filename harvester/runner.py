"""run(config): the only place that knows every stage and wires them together."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import glob
import logging
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from harvester.budget import RateBudget, TokenSource
from harvester.chain_sink import ChainSink
from harvester.chains import ChainPlanner, make_chain_planner
from harvester.checkpoint import (
    Checkpoint,
    Checkpointer,
    CheckpointFile,
    Committing,
    NoCheckpointFile,
    checkpoint_path,
    dataset_fingerprint,
)
from harvester.config import INDEXED_STYLES, Config
from harvester.errors import ConfigError, Interrupted, OutputError
from harvester.fanout import harvest_children, parent_fingerprint
from harvester.fetch import Fetched, Fetcher, make_fetcher, open_session
from harvester.manifest import (
    Manifest,
    file_digest,
    finished_shard,
    manifest_path,
    plain,
    write_manifest,
)
from harvester.output import claim, remove_tree
from harvester.pagination import IndexedPlanner, PageRequest, make_planner
from harvester.retry import RetryPolicy
from harvester.schedule import KnownTotal, OpenEnd, lowered_page_size, plan_known_total
from harvester.secrets import Secrets
from harvester.shard import Shard, check_partition, check_shardable, shard_config, slice_of
from harvester.shared import Shared
from harvester.sink import OrderedSink, part_path, records_in
from harvester.stats import Stats
from harvester.stop import Stop
from harvester.stream import Stream
from harvester.workers import fetch_chains, fetch_pages
from harvester.writers import Format, Target, Writer, format_of, make_writer
from harvester.writers.tee import TeeWriter, needs_copy, records_copy

__all__ = ["Stop", "run"]

log = logging.getLogger("harvester")

WriterFactory = Callable[[Target, Format], Writer]
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
            with tempfile.TemporaryDirectory(prefix="harvester-") as folder:
                records = Path(folder) / "records"
                job = _Job(config, stats, max_records, stop, records, None, secrets, into=writer)
                await _harvest(job, policy, secrets, shared, outside)
            return stats
        place = claim(config.output.path, own_files=_own_files, warn=_warner(stats))
        with place as (output, stream):
            job = _Job(config, stats, max_records, stop, output, stream, secrets, shard=shard)
            if shard is not None and not fresh and _finished(job):
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


def _finished(job: _Job) -> bool:
    """Whether the job's shard is finished already (its manifest and file in place): engines
    run a finished task again, and it must then make no request."""
    manifest = finished_shard(job.output, plain(job.dataset))
    if manifest is None:
        # A manifest left from an earlier harvest of this shard no longer tells of its file.
        remove_tree(manifest_path(job.output))
        return False
    job.stats.records, job.stats.bytes = manifest.count, manifest.bytes
    job.stats.resumed_records = manifest.count
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
    job: _Job,
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
                config, session, policy, job.stats, secrets=secrets, source=source, budget=budget
            )
        else:
            job.fetcher = shared.fetcher(config, job.stats, policy)
        try:
            async with stop.grace_period():
                if config.parent is not None:
                    assert shared is not None  # _parents said so
                    await harvest_children(job, _parents(config, shared), shared, policy)
                elif job.chained:
                    await _harvest_chains(job)
                elif config.pagination.total_known:
                    await _harvest_known_total(job)
                else:
                    await _harvest_open_end(job)
        except TimeoutError:
            if not stop.requested:
                raise
            if not job.finished:  # a stop that came as the output was renamed: done
                job.interrupted()


class _Job:
    """One harvest's shared parts: what each style's harvest function needs."""

    def __init__(
        self,
        config: Config,
        stats: Stats,
        max_records: int | None,
        stop: Stop,
        output: Path,
        stream: Stream | None,
        secrets: Secrets,
        *,
        into: WriterFactory | None = None,
        shard: Shard | None = None,
    ) -> None:
        self.config = config
        self.shard = shard
        # What a shard's manifest tells beyond its file: set by the harvest of its slice.
        self.slice: dict[str, Any] = {}
        self.stats = stats
        self.max_records = max_records
        self.stop = stop
        self.output = output  # where the sink writes: the output, or a stream's staging file
        self.stream = stream
        # A stream is written as it goes and cannot be resumed: no checkpoint is kept for it.
        files = CheckpointFile if stream is None and into is None else NoCheckpointFile
        self.checkpoints = files(self.output, secrets=secrets)
        self.format = format_of(config.output, stream=stream is not None)
        if stream is not None:
            stream.stop = stop
            log.info(
                "writing to the stream %s as pages come; a stream cannot be resumed", stream.target
            )
        self.into = into  # run(writer=...): the pages go to this writer instead
        self.copy_records = False
        self.make_writer()  # now: a format that cannot be written fails before any request
        self.dataset = dataset_fingerprint(config, max_records=max_records)
        # Each shard resumes from its own checkpoint only: K/N is part of what it harvests.
        shard_key = {} if shard is None else {"--shard": str(shard)}
        self.fingerprint = {**self.dataset, **shard_key}
        self.fresh = False
        self._sink: Committing | None = None  # the one sink, once made
        self.chained = config.pagination.style not in INDEXED_STYLES
        self.resume: Checkpoint | None = None
        self.fetcher: Fetcher

    def load_checkpoint(self, *, fresh: bool) -> None:
        """Find the checkpoint to resume from, or clear the way for a fresh start."""
        part = part_path(self.output)
        self.fresh = fresh
        if fresh:
            self.checkpoints.remove()
            try:
                for leftover in [part, *part.parent.glob(glob.escape(part.name) + ".*")]:
                    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                        remove_tree(leftover)  # a folder for Parquet (its spool)
            except OSError as exc:
                raise OutputError(f"cannot remove: {exc.strerror}", path=str(part)) from None
            return
        checkpoint = self.checkpoints.load(self.fingerprint)
        if checkpoint is not None and not part.exists():
            # The run finished (renamed its .part) just before removing the checkpoint, or the
            # partial data was deleted: either way there is nothing to resume.
            self.stats.warn(f"ignored the checkpoint {self.checkpoints.path}: {part} is gone")
            self.checkpoints.remove()
            checkpoint = None
        self.resume = checkpoint
        if checkpoint is not None:
            self.stats.resumed_records = records_in(checkpoint.sink)
            # Said at once, before the first request: a resumed run should not look like a
            # fresh one until its summary.
            log.info("resuming at %s records from %s", f"{self.stats.resumed_records:,}", part)

    @property
    def finished(self) -> bool:
        """Whether the output is complete, in place."""
        return self._sink is not None and self._sink.finished

    def checkpointer(self, sink: Committing, plan: dict[str, Any] | None) -> Checkpointer:
        self._sink = sink
        return Checkpointer(
            self.checkpoints,
            sink,
            fingerprint=self.fingerprint,
            every=self.config.output.checkpoint_every,
            stats=self.stats,
            plan=plan,
        )

    def require_complete(self, complete: bool) -> None:
        """Raise unless the harvest is `complete`: an unfinished sink is never finished.

        Interrupted where a stop cut the harvest short.
        """
        if not complete:
            if self.stop.requested:
                self.interrupted()
            # The workers ran out of pages before the end was proven: a bug, never data.
            raise RuntimeError("the harvest ended before its end was proven")

    def interrupted(self) -> NoReturn:
        reason = self.stop.reason or "a stop request"
        records = self.stats.records
        if not records and self.resume is None:
            message = f"stopped by {reason} before any record was written"
        elif self.stream is not None:
            message = (
                f"stopped by {reason} after {records:,} records were written to the stream "
                f"{self.stream.target}, which holds only part of the data; a stream cannot be "
                "resumed: run again"
            )
        else:
            spools = " and its window spools" if self.chained else ""
            again = "without --fresh " if self.fresh else ""
            message = (
                f"stopped by {reason}: {records:,} records are safe in "
                f"{part_path(self.output)}{spools}; run the same command {again}again to resume"
            )
        raise Interrupted(message, signal=reason)

    def url_of(self, planner: IndexedPlanner) -> Callable[[int], str]:
        return lambda index: str(self.fetcher.url_for(planner.request(index)))

    def write_manifest(self) -> None:
        """The finished shard's manifest, beside its file (harvester/manifest.py)."""
        shard = self.shard
        assert shard is not None
        size, sha256 = file_digest(self.output)
        part = self.slice
        low, end = part["slice"]
        records = None
        if part["unit"] == "pages" and part["total"] is not None:
            first = low * part["page_size"] if part["pages"] > 1 else 0
            records = (first, first + self.stats.records)
        manifest = Manifest(
            dataset=plain(self.dataset),
            shard=shard.index,
            shards=shard.count,
            unit=part["unit"],
            slice=(low, end),
            of=part["of"],
            total=part["total"],
            page_size=part["page_size"],
            records=records,
            count=self.stats.records,
            bytes=size,
            sha256=sha256,
        )
        write_manifest(self.output, manifest)
        self.stats.shard = {"shard": str(shard), "file": str(self.output), "finished_before": False}
        log.info("shard %s finished: %s", shard, manifest_path(self.output))

    def make_writer(self) -> Writer:
        """The configured format's writer, into `<output>.part` or the stream; or the one
        `into` makes."""
        target = Target(path=part_path(self.output), output=self.output, stream=self.stream)
        if self.into is not None:
            return self.into(target, Format())
        writer = make_writer(self.format, target)
        return TeeWriter(writer) if self.copy_records and needs_copy(self.format) else writer

    def sink(self, *, open_end: bool = False) -> OrderedSink:
        return OrderedSink(
            self.output,
            window=self.config.concurrency.max_buffered_pages,
            stats=self.stats,
            max_records=self.max_records,
            resume=self.resume.sink if self.resume else None,
            allow_repeats=self.config.pagination.repeated_pages == "allow",
            open_end=open_end,
            writer=self.make_writer(),
        )


async def _harvest_known_total(job: _Job) -> None:
    """The first page tells the total; every other page is then fetched in parallel."""
    config, fetcher, stats = job.config, job.fetcher, job.stats
    planner = make_planner(config.pagination)
    async with job.sink() as sink, job.checkpointer(sink, None) as checkpointer:
        if job.resume is not None:
            plan = job.resume.plan
        else:
            first = await fetcher.fetch(planner, planner.request(0))
            first_url = job.url_of(planner)(0)
            plan = plan_known_total(planner, first, config.pagination, stats, first_url)
            if job.shard is not None:
                # Every shard asks for the first page, so that all agree on the total and the
                # page size, then takes its own slice of the pages.
                plan["slice"] = list(slice_of(job.shard, plan["pages"]))
        planner = planner.with_page_size(plan["page_size"]).bounded(plan["total"])
        pages = plan["pages"]
        low, end = plan.get("slice", (0, pages))
        schedule = KnownTotal(planner, plan, job.url_of(planner), sink.part)
        if job.resume is None:
            schedule.check(first)
            sink.start_at(low)
            if low == 0 < end:
                await sink.put(first.page)
        if job.max_records is not None:
            end = min(end, max(1, math.ceil(job.max_records / planner.page_size)))
        stats.total_records, stats.total_pages = _slice_records(plan, low, end), end - low
        job.slice = {"unit": "pages", "slice": (low, end), "of": pages, **plan}
        checkpointer.plan = plan
        start = sink.committed_pages
        await fetch_pages(
            fetcher,
            planner,
            sink,
            range(start, end),
            workers=min(config.concurrency.workers, max(0, end - start)),
            accept=schedule.check,
            stop=job.stop,
        )
        job.require_complete(sink.full or sink.committed_pages >= end)
        await sink.finish()


def _slice_records(plan: dict[str, Any], low: int, end: int) -> int | None:
    """How many records pages [low, end) hold, where the total is known."""
    total: int | None = plan["total"]
    size: int = plan["page_size"]
    if total is None:
        return None
    if plan["pages"] == 1:
        return total if end > low else 0
    return max(0, min(end * size, total) - low * size)


async def _harvest_open_end(job: _Job) -> None:
    """No total: fetch ahead in parallel until the end is proven."""
    planner = make_planner(job.config.pagination)
    plan = dict(job.resume.plan) if job.resume else {"page_size": planner.page_size}
    planner = planner.with_page_size(plan["page_size"])
    async with job.sink(open_end=True) as sink, job.checkpointer(sink, plan):
        firsts: list[Fetched] = []
        if sink.committed_pages == 0:
            planner, firsts = await _first_pages(job, planner, plan)
        numbered = planner.follow_on(0, 1) is None
        schedule = OpenEnd(plan, job.url_of(planner), numbered=numbered)
        for fetched in firsts:
            if schedule.check(fetched):
                await sink.put(fetched.page, schedule.wants)
        # Page 0 short, and what follows its records asked for already (_first_pages).
        probed = len(firsts) == 2
        await fetch_pages(
            job.fetcher,
            planner,
            sink,
            schedule.claims(sink.committed_pages),
            workers=job.config.concurrency.workers,
            accept=schedule.check,
            wanted=schedule.wants,
            stop=job.stop,
        )
        job.stats.discarded_pages = schedule.discarded
        end = schedule.end
        complete = sink.full or (end is not None and sink.committed_pages >= end)
        short = schedule.short
        if complete and not sink.full and not (probed and short is not None and short[0] == 0):
            await _prove_nothing_follows(job, planner, schedule)
        job.require_complete(complete)
        await sink.finish(wanted=schedule.wants)


async def _first_pages(
    job: _Job, planner: IndexedPlanner, plan: dict[str, Any]
) -> tuple[IndexedPlanner, list[Fetched]]:
    """Page 0, and page 1 as well where page 0 is short: then page 0 is either all the data
    or all the server sends per page, and only the page after it can tell which.

    A server that caps its page size gets a planner (and a plan) in its page size.
    """
    first = await job.fetcher.fetch(planner, planner.request(0))
    count = first.page.count
    if first.complete or count == 0 or count >= planner.page_size:
        return planner, [first]
    # Asked for in pages of `count`: the records right after page 0's, however the style counts.
    capped = planner.with_page_size(count)
    second = await job.fetcher.fetch(capped, capped.request(1))
    if second.page.count == 0 or second.page.data == first.page.data:
        # The end, proven (or, by offset, an API ignoring it): the scheduler will tell which.
        return planner, [first, second]
    planner = lowered_page_size(planner, count, job.stats)
    plan["page_size"] = planner.page_size
    return planner, [first, second]


async def _prove_nothing_follows(job: _Job, planner: IndexedPlanner, schedule: OpenEnd) -> None:
    """Where a short page ended the data, ask for the records right after its own: the next
    page on the grid starts page_size records after the short one's first, and a server that
    sent the short page short of its data would have the records in between lost."""
    short = schedule.short
    request = None if short is None else planner.follow_on(*short)
    if request is not None:
        schedule.check_follow_on(await job.fetcher.fetch(planner, request))


async def _harvest_chains(job: _Job) -> None:
    """Cursor and link styles: each partition window is one chain, the windows in parallel."""
    config, stats = job.config, job.stats
    planner = make_chain_planner(config.pagination, config.source)
    windows = planner.chains
    low, end = slice_of(job.shard, windows) if job.shard else (0, windows)
    planner = planner.only(low, end)
    job.slice = {"unit": "windows", "slice": (low, end), "of": windows, "total": None}
    job.slice["page_size"] = planner.page_size
    # Each window's total, as its first page told it; kept in the plan for a resumed run.
    plan: dict[str, Any] = {"chains": planner.chains, "totals": [None] * planner.chains}
    if job.resume is not None and len(job.resume.plan.get("totals") or []) == planner.chains:
        plan["totals"] = list(job.resume.plan["totals"])

    def note_total(chain: int, first: Fetched) -> None:
        if first.total is not None:
            plan["totals"][chain] = first.total
        if None not in plan["totals"]:
            stats.total_records = sum(plan["totals"])

    sink = ChainSink(
        job.output,
        chains=planner.chains,
        stats=stats,
        max_records=job.max_records,
        resume=job.resume.sink if job.resume else None,
        allow_repeats=config.pagination.repeated_pages == "allow",
        writer=job.make_writer(),
    )

    async def write(chain: int, fetched: Fetched) -> bool:
        after = None if fetched.next is None else dataclasses.asdict(fetched.next)
        return await sink.put(chain, fetched.page, after=after)

    async with sink, job.checkpointer(sink, plan):
        if None not in plan["totals"]:
            stats.total_records = sum(plan["totals"])
        await fetch_chains(
            job.fetcher,
            planner,
            write,
            workers=config.concurrency.workers,
            starts=[_start(planner, sink, k) for k in range(planner.chains)],
            on_first=note_total,
            stop=job.stop,
        )
        job.require_complete(sink.complete)
        await sink.finish()


def _start(planner: ChainPlanner, sink: ChainSink, chain: int) -> PageRequest | None:
    """Where `chain` starts: its first page, or where an earlier run left it (None: done)."""
    done, after = sink.carry_on(chain)
    if done:
        return None
    return planner.first(chain) if after is None else PageRequest(**after)
