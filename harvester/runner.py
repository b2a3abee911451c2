"""run(config): the only place that knows every stage and wires them together."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from harvester.chains import ChainPlanner, make_chain_planner
from harvester.checkpoint import (
    Checkpoint,
    Checkpointer,
    CheckpointFile,
    Committing,
    dataset_fingerprint,
)
from harvester.config import INDEXED_STYLES, Config
from harvester.errors import Interrupted, OutputError, RecordsError, TotalChangedError
from harvester.fetch import (
    Fetched,
    Fetcher,
    fetch_chains,
    fetch_pages,
    make_fetcher,
    open_session,
)
from harvester.pagination import IndexedPlanner, PageRequest, make_planner
from harvester.retry import RetryPolicy
from harvester.sink import ChainSink, OrderedSink, part_path, records_in
from harvester.stats import Stats
from harvester.stop import Stop

__all__ = ["Stop", "run"]

log = logging.getLogger("harvester")


async def run(
    config: Config,
    *,
    max_records: int | None = None,
    stats: Stats | None = None,
    policy: RetryPolicy | None = None,
    on_secret: Callable[[str], None] | None = None,
    fresh: bool = False,
    stop: Stop | None = None,
) -> Stats:
    """Harvest the whole dataset `config` describes; the stats say what happened.

    A checkpoint left beside the output by an unfinished run is resumed from, unless `fresh`.
    Raises HarvesterError (or a subclass) when the harvest cannot complete; Interrupted when
    `stop` was requested.
    """
    stats = stats if stats is not None else Stats()
    policy = policy or RetryPolicy(config.retry)
    stop = stop or Stop(grace=config.concurrency.stop_grace)
    for warning in config.warnings():  # every run, not once: an opt-out must stay visible
        log.warning(warning)
        stats.warn(warning)
    try:
        job = _Job(config, stats, max_records, stop)
        job.load_checkpoint(fresh=fresh)
        async with open_session(config) as session:
            job.fetcher = make_fetcher(config, session, policy, stats, on_secret=on_secret)
            try:
                async with stop.grace_period():
                    if job.chained:
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
        if max_records is None and stats.total_records not in (None, stats.records):
            stats.warn(
                f"the API advertised {stats.total_records} records and {stats.records} were "
                "written: the data changed during the harvest"
            )
    finally:
        stats.finished = time.monotonic()
    return stats


class _Job:
    """One harvest's shared parts: what each style's harvest function needs."""

    def __init__(self, config: Config, stats: Stats, max_records: int | None, stop: Stop) -> None:
        self.config = config
        self.stats = stats
        self.max_records = max_records
        self.stop = stop
        self.output = Path(config.output.path)
        self.checkpoints = CheckpointFile(self.output, secrets=config.secrets())
        self.fingerprint = dataset_fingerprint(config, max_records=max_records)
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
                        leftover.unlink()
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

    def check_stop(self, *, complete: bool) -> None:
        """Raise Interrupted if a stop was requested before the harvest was `complete`: an
        unfinished sink must not be finished."""
        if self.stop.requested and not complete:
            self.interrupted()

    def interrupted(self) -> NoReturn:
        reason = self.stop.reason or "a stop request"
        records = self.stats.records
        if not records and self.resume is None:
            message = f"stopped by {reason} before any record was written"
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

    def sink(self) -> OrderedSink:
        return OrderedSink(
            self.output,
            window=self.config.concurrency.max_buffered_pages,
            stats=self.stats,
            max_records=self.max_records,
            resume=self.resume.sink if self.resume else None,
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
            plan = _plan(planner, first, config, stats, job.url_of(planner)(0))
            await sink.put(first.page)
        if plan["page_size"] != planner.page_size:
            planner = planner.with_page_size(plan["page_size"])
        total, pages = plan["total"], plan["pages"]
        if job.max_records is not None:
            pages = min(pages, max(1, math.ceil(job.max_records / planner.page_size)))
        stats.total_records, stats.total_pages = total, pages
        checkpointer.plan = plan
        consistency = _Consistency(planner, total, job.url_of(planner), sink.part)
        start = sink.committed_pages
        await fetch_pages(
            fetcher,
            planner,
            sink,
            range(start, pages),
            workers=min(config.concurrency.workers, max(0, pages - start)),
            accept=consistency.check,
            stop=job.stop,
        )
        job.check_stop(complete=sink.full or sink.committed_pages >= pages)
        sink.finish()


def _plan(
    planner: IndexedPlanner, first: Fetched, config: Config, stats: Stats, first_url: str
) -> dict[str, Any]:
    """What the first page tells of the whole: total records, pages, the real page size."""
    total: int | None
    if first.complete:  # the first answer held everything (a Range server ignoring Range)
        total, pages = first.page.count, 1
    elif config.pagination.total_pages is not None:
        pages = _required(first.total_pages, config.pagination.total_pages, first_url)
        total = first.total
    else:
        total = _required(first.total, config.pagination.total, first_url)
        planner = _fit_page_size(planner, first, total, stats, first_url)
        pages = planner.page_count(total)
        total = max(0, total - planner.request(0).first)
    return {"total": total, "pages": max(1, pages), "page_size": planner.page_size}


async def _harvest_open_end(job: _Job) -> None:
    """No total: fetch ahead in parallel until a short or empty page marks the end."""
    planner = make_planner(job.config.pagination)
    plan = {"page_size": planner.page_size}
    async with job.sink() as sink, job.checkpointer(sink, plan):
        end = _OpenEnd(planner.page_size, job.url_of(planner), sink.stop_after)
        end.last = sink.known_end  # an earlier run may have seen the end already
        await fetch_pages(
            job.fetcher,
            planner,
            sink,
            end.claims(sink.committed_pages),
            workers=job.config.concurrency.workers,
            accept=end.check,
            stop=job.stop,
        )
        job.stats.discarded_pages = end.discarded
        seen_end = end.last is not None and sink.committed_pages > end.last
        job.check_stop(complete=sink.full or seen_end)
        sink.finish(last_page=end.last)


async def _harvest_chains(job: _Job) -> None:
    """Cursor and link styles: each partition window is one chain, the windows in parallel."""
    config, stats = job.config, job.stats
    planner = make_chain_planner(config.pagination, config.source)
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
        job.check_stop(complete=sink.complete)
        sink.finish()


def _start(planner: ChainPlanner, sink: ChainSink, chain: int) -> PageRequest | None:
    """Where `chain` starts: its first page, or where an earlier run left it (None: done)."""
    done, after = sink.carry_on(chain)
    if done:
        return None
    return planner.first(chain) if after is None else PageRequest(**after)


def _required(value: int | None, spec: str | None, url: str) -> int:
    if value is None:
        raise RecordsError(f"the first answer does not tell the total ({spec})", page=0, url=url)
    return value


def _fit_page_size(
    planner: IndexedPlanner, first: Fetched, total: int, stats: Stats, url: str
) -> IndexedPlanner:
    """A planner whose page size matches what the server really sends per page."""
    count = first.page.count
    first_offset = planner.request(0).first
    if first.complete or count >= planner.page_size or first_offset + count >= total:
        return planner
    if count == 0:
        raise RecordsError(f"the first page is empty, yet the total is {total}", page=0, url=url)
    stats.warn(
        f"the server sends at most {count} records per page: page_size lowered from "
        f"{planner.page_size} to {count}"
    )
    return planner.with_page_size(count)


class _OpenEnd:
    """Hands out page numbers while the end is unknown, and finds the end.

    The first page that is short, empty or past the end (404, 416) is the last. Pages fetched
    ahead beyond it are discarded; at most one per worker, since no page is handed out once the
    end is known.
    """

    def __init__(
        self, page_size: int, url_of: Callable[[int], str], on_end: Callable[[int], None]
    ) -> None:
        self._page_size = page_size
        self._url_of = url_of
        self._on_end = on_end
        self.last: int | None = None
        self._whole = False  # the last page held the whole dataset (Range ignored)
        self._last_filled = -1
        self.discarded = 0

    def claims(self, start: int = 0) -> Iterator[int]:
        index = start
        while self.last is None or index <= self.last:
            yield index
            index += 1

    def check(self, fetched: Fetched) -> bool:
        index, count = fetched.page.index, fetched.page.count
        ends_here = fetched.complete or count < self._page_size
        if ends_here and (self.last is None or index < self.last):
            self.last, self._whole = index, fetched.complete and count > 0
            self._on_end(index)
        if count and not (self.last is not None and self._whole and index > self.last):
            self._last_filled = max(self._last_filled, index)
        if self.last is not None and self._last_filled > self.last:
            raise RecordsError(
                f"page {self._last_filled} holds records although page {self.last} held fewer "
                f"than page_size ({self._page_size}) and looked like the last: the server may "
                "cap its page size (set pagination.page_size to what it sends), or the data "
                "changed during the run",
                page=self._last_filled,
                url=self._url_of(self._last_filled),
            )
        if self.last is not None and index > self.last:
            self.discarded += 1
            return False
        return True


class _Consistency:
    """Fails the run where a page contradicts the plan: the dataset changed while it was read,
    or the server sends fewer records per page than asked."""

    def __init__(
        self,
        planner: IndexedPlanner,
        total: int | None,
        url_of: Callable[[int], str],
        part: Path,
    ) -> None:
        self._planner = planner
        self._start = planner.request(0).first  # the offset the counts are relative to
        self._url_of = url_of
        self._total = total
        self._part = part

    def check(self, fetched: Fetched) -> bool:
        if self._total is None:
            return True
        start, index = self._start, fetched.page.index
        if fetched.total is not None and fetched.total - start != self._total:
            raise TotalChangedError(
                page=index,
                url=self._url_of(index),
                total_at_start=self._total + start,
                total_now=fetched.total,
                part=str(self._part),
            )
        request = self._planner.request(index)
        expected = max(0, min(request.size, self._total - (request.first - start)))
        if fetched.page.count < expected:
            # Nothing explains the gap but a server sending less than asked: the records in it
            # would never be fetched. Fail rather than write a file that looks complete.
            raise RecordsError(
                f"held {fetched.page.count} records where {expected} were planned, with the "
                f"total unchanged: {expected - fetched.page.count} records would be lost. The "
                "server sends fewer records per page than asked; set pagination.page_size to "
                f"at most {fetched.page.count}",
                page=index,
                url=self._url_of(index),
            )
        return True
