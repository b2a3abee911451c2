"""Parent -> child fan-out: one request chain per record of the parent resource.

A child starts once its parent resource is complete, and reads the parent's records lazily,
line by line, from the parent's finished JSON Lines output: parents are never all in memory,
and a child run alone (`--resource orders`) reads the output an earlier run left. Each record
binds the `{users.id}` placeholders of the child's URL, params and headers; the chains of up
to `2 x concurrency.workers` parents are fetched at once (the throttle bounds the requests in
flight), and their pages are written in parent order, then page order (fanout_sink.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from harvester.answer_paths import MissingPath, lookup
from harvester.child_chain import fetch_children
from harvester.config import Config
from harvester.config.resources import PLACEHOLDER
from harvester.errors import HarvesterError, OutputError, PageFetchError, RecordsError
from harvester.fanout_sink import FanoutSink
from harvester.page import Page
from harvester.read import ExactNumber, NotJSON, decode_json, encode_records
from harvester.retry import RetryPolicy
from harvester.sink import part_path
from harvester.workers import first_failure

if TYPE_CHECKING:
    from harvester.job import Job
    from harvester.shared import Shared


def parent_fingerprint(path: Path) -> str:
    """The parent's finished output, as a digest: a child resumes only over the same records.
    A missing output is one line saying to run the parent first."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except FileNotFoundError:
        raise OutputError(
            "not there, and a child reads its parent's records from it: run the parent "
            "resource first (or both together)",
            path=str(path),
        ) from None
    except OSError as exc:
        raise OutputError(
            f"cannot read the parent's output: {exc.strerror}", path=str(path)
        ) from None
    return digest.hexdigest()


def parent_records(path: Path, start: int) -> Generator[tuple[int, Any], None, None]:
    """(index, record) of each parent record from the `start`-th on, read as they are wanted."""
    with path.open("rb") as handle:
        for index, line in enumerate(handle):
            if index < start or not line.strip():
                continue
            try:
                record = decode_json(line)
            except NotJSON as exc:
                raise OutputError(f"record {index} is not JSON: {exc}", path=str(path)) from None
            yield index, record


class _Binding:
    """A child config bound to one parent record, and how messages name that parent."""

    def __init__(self, config: Config, record: Any, index: int, parents: Path) -> None:
        self.parent = str(config.parent)
        self._record, self._index, self._parents = record, index, parents
        self.used: dict[str, str] = {}
        source = config.source
        url = PLACEHOLDER.sub(lambda m: quote(self._text(m.group(2)), safe=""), source.url)
        params = {k: self._bind(v) for k, v in source.params.items()}
        headers = {k: self._bind(v) for k, v in source.headers.items()}
        self.config = dataclasses.replace(
            config, source=dataclasses.replace(source, url=url, params=params, headers=headers)
        )
        self.key = ", ".join(f"{self.parent}.{f}={v}" for f, v in self.used.items())
        self.fields = b"".join(
            b'"_%s_%s":%s,'
            % (self.parent.encode(), f.encode(), encode_records([self._value(f)])[:-1])
            for f in config.include_from_parent
        )

    def _bind(self, text: str) -> str:
        return PLACEHOLDER.sub(lambda m: self._text(m.group(2)), text)

    def _value(self, field: str) -> Any:
        try:
            return lookup(self._record, field)
        except MissingPath:
            raise HarvesterError(
                f"{self._parents}: parent record {self._index} of {self.parent} has no field "
                f"{field!r}, which the child's placeholders or include_from_parent name"
            ) from None

    def _text(self, field: str) -> str:
        value = self._value(field)
        if isinstance(value, ExactNumber):
            text = value.text
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            text = str(value)
        else:
            raise HarvesterError(
                f"{self._parents}: parent record {self._index} of {self.parent}: {field!r} is "
                f"{type(value).__name__}, not a text or a number to put in a request"
            )
        self.used[field] = text
        return text

    def with_fields(self, page: Page) -> Page:
        """`page` with the parent's include_from_parent fields first in each record."""
        if not self.fields:
            return page
        lines = []
        for line in page.data.splitlines():
            if not line.startswith(b"{") or b'"_%s_' % self.parent.encode() in line:
                raise RecordsError(
                    "include_from_parent needs child records that are JSON objects without "
                    f"_{self.parent}_ keys of their own",
                    page=page.index,
                    url=page.url,
                )
            rest = line[1:] if line == b"{}" else b"," + line[1:]
            lines.append(b"{" + self.fields[:-1] + rest + b"\n")
        return Page(page.index, b"".join(lines), page.count, url=page.url)


async def harvest_children(job: Job, parents: Path, shared: Shared, policy: RetryPolicy) -> None:
    """Fetch every parent's children into the job's output, in parent order."""
    config, stats, stop = job.config, job.stats, job.stop
    window = 2 * config.concurrency.workers
    sink = FanoutSink(
        job.make_writer(),
        output=job.output,
        window=max(window, config.concurrency.max_buffered_pages),
        stats=stats,
        max_records=job.max_records,
        resume=job.resume.sink if job.resume else None,
    )
    skipped = 0
    part = part_path(job.output)

    async def one(index: int, record: Any) -> None:
        nonlocal skipped
        binding = _Binding(config, record, index, parents)
        fetcher = shared.fetcher(binding.config, stats, policy)
        state = sink.resumed_state(index)

        async def put(page: Page, after: dict[str, Any]) -> bool:
            return await sink.put(index, binding.with_fields(page), after)

        try:
            ended = await fetch_children(
                fetcher, binding.config, stats, put, state=state, part=part, stop=stop
            )
        except PageFetchError as exc:
            if exc.status != 404 or exc.page != 0 or state is not None:
                raise
            if config.on_missing == "fail":
                raise _missing(exc, binding) from None
            skipped += 1
            ended = True
        if ended:
            await sink.done(index)
        else:  # stopped: the parents waiting for room to start need not wait any longer
            await sink.wake()

    async with sink, job.checkpointer(sink, {"parent": config.parent}):
        exhausted, count = False, sink.head
        try:
            records = contextlib.closing(parent_records(parents, sink.head))
            async with asyncio.TaskGroup() as group:
                with records as each:  # the parent's file closed however the loop ends
                    for index, record in each:
                        await sink.wait_for_room(index, lambda: stop.requested)
                        if stop.requested or sink.full:
                            break
                        group.create_task(one(index, record))
                        count = index + 1
                    else:
                        exhausted = True
        except BaseExceptionGroup as failures:
            raise first_failure(failures) from None
        if skipped:
            stats.warn(
                f"{skipped:,} {config.parent} records answered 404 and were skipped "
                "(on_missing: skip)"
            )
        job.require_complete(sink.full or (exhausted and sink.head >= count))
        await sink.finish()


def _missing(exc: PageFetchError, binding: _Binding) -> HarvesterError:
    return PageFetchError(
        f"not found for the parent {binding.key}; set on_missing: skip to skip parents the API "
        "does not know",
        page=0,
        url=exc.url,
        status=404,
    )
