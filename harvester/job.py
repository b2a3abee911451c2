"""One harvest's shared parts, as each pagination family's harvest (harvests.py) needs them:
the config, the stats, the stop, where the output goes, its checkpoint, writer and sink, and a
shard's slice and manifest."""

from __future__ import annotations

import contextlib
import glob
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from harvester.checkpoint import (
    Checkpoint,
    Checkpointer,
    CheckpointFile,
    Committing,
    NoCheckpointFile,
    dataset_fingerprint,
)
from harvester.config import INDEXED_STYLES, Config
from harvester.errors import Interrupted, OutputError
from harvester.fetch import Fetcher
from harvester.manifest import (
    Manifest,
    file_digest,
    manifest_path,
    plain,
    write_manifest,
)
from harvester.output import remove_tree
from harvester.pagination import IndexedPlanner
from harvester.secrets import Secrets
from harvester.shard import Shard, Slice
from harvester.sink import OrderedSink, part_path, records_in
from harvester.stats import Stats
from harvester.stop import Stop
from harvester.stream import Stream
from harvester.writers import Format, Target, Writer, format_of, make_writer
from harvester.writers.tee import TeeWriter, needs_copy

log = logging.getLogger("harvester")

WriterFactory = Callable[[Target, Format], Writer]


class Job:
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
        self.slice: Slice | None = None
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
        shard, part = self.shard, self.slice
        assert shard is not None and part is not None
        size, sha256 = file_digest(self.output)
        manifest = Manifest(
            dataset=plain(self.dataset),
            shard=shard.index,
            shards=shard.count,
            unit=part.unit,
            slice=(part.start, part.end),
            of=part.of,
            total=part.total,
            page_size=part.page_size,
            records=part.records,
            count=self.stats.records,
            bytes=size,
            sha256=sha256,
            harvested_at=datetime.now(UTC).isoformat(timespec="seconds"),
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
