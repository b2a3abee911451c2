"""The harvest of each pagination family, on a Job (job.py): a known total (every page planned
from the first), an open end (fetched ahead until the end is proven), chains (cursor and link
windows side by side). Each owns its sink and checkpointer; the schedulers (schedule.py,
chains.py) decide what each page means."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from harvester.chain_sink import ChainSink
from harvester.chains import ChainPlanner, make_chain_planner
from harvester.fetch import Fetched
from harvester.job import Job
from harvester.pagination import IndexedPlanner, PageRequest, make_planner
from harvester.schedule import KnownTotal, OpenEnd, lowered_page_size, plan_known_total
from harvester.shard import Slice, slice_of
from harvester.workers import fetch_chains, fetch_pages


async def harvest_known_total(job: Job) -> None:
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
        total, pages = plan["total"], plan["pages"]
        low, end = plan.get("slice", (0, pages))
        schedule = KnownTotal(planner, plan, job.url_of(planner), sink.part)
        if job.resume is None:
            schedule.check(first)
            sink.start_at(low)
            if low == 0 < end:
                await sink.put(first.page)
        if job.max_records is not None:
            end = min(end, max(1, math.ceil(job.max_records / planner.page_size)))
        if job.shard is not None:
            job.slice = Slice(
                unit="pages", start=low, end=end, of=pages, page_size=plan["page_size"], total=total
            )
            records = job.slice.records  # what this shard's slice holds of the advertised total
            total = None if records is None else records[1] - records[0]
        stats.total_records, stats.total_pages = total, end - low
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


async def harvest_open_end(job: Job) -> None:
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
    job: Job, planner: IndexedPlanner, plan: dict[str, Any]
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


async def _prove_nothing_follows(job: Job, planner: IndexedPlanner, schedule: OpenEnd) -> None:
    """Where a short page ended the data, ask for the records right after its own: the next
    page on the grid starts page_size records after the short one's first, and a server that
    sent the short page short of its data would have the records in between lost."""
    short = schedule.short
    request = None if short is None else planner.follow_on(*short)
    if request is not None:
        schedule.check_follow_on(await job.fetcher.fetch(planner, request))


async def harvest_chains(job: Job) -> None:
    """Cursor and link styles: each partition window is one chain, the windows in parallel."""
    config, stats = job.config, job.stats
    planner = make_chain_planner(config.pagination, config.source)
    windows = planner.chains
    low, end = slice_of(job.shard, windows) if job.shard else (0, windows)
    planner = planner.only(low, end)
    if job.shard is not None:
        job.slice = Slice(
            unit="windows", start=low, end=end, of=windows, page_size=planner.page_size
        )
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
