"""What is committed, written atomically beside the output, and read back to resume.

The checkpoint `<output>.checkpoint` describes only data that was flushed and fsynced before it
was written: the sink's own state (pages, records, byte length of each file), the runner's plan
(total, page size) and a fingerprint of the config fields that define the dataset. A run killed
at any moment therefore resumes from a checkpoint that is at worst a few seconds old, truncating
whatever the files hold beyond it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import orjson

from harvester.config import Config
from harvester.errors import ResumeError, carries_secret, redact_url
from harvester.output import create_private, open_existing
from harvester.placeholders import UnknownPlaceholder, in_links
from harvester.secrets import Secrets
from harvester.stats import Stats

VERSION = 1


def checkpoint_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".checkpoint")


def dataset_fingerprint(config: Config, *, max_records: int | None = None) -> dict[str, Any]:
    """The settings that decide which records land where, as dotted keys (and --max-records,
    which decides where a sample ends).

    Secret values (an API key in a parameter, a header or the URL's query) are left out: the
    checkpoint is a plain file, and credentials may change between runs anyway.
    """
    source = config.source
    fields: dict[str, Any] = {
        "source.url": redact_url(source.url),
        "source.records": source.records,
        "--max-records": max_records,
    }
    for section, values in (("params", source.params), ("headers", source.headers)):
        for name, value in values.items():
            fields[f"source.{section}.{name}"] = "***" if carries_secret(name) else value
    _flatten("pagination", dataclasses.asdict(config.pagination), fields)
    return fields


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, into)
    else:
        into[prefix] = list(value) if isinstance(value, tuple) else value


def differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """One phrase per setting that differs."""
    return [
        f"{key} was {_shown(saved.get(key))}, is now {_shown(current.get(key))}"
        for key in sorted(saved.keys() | current.keys())
        if saved.get(key) != current.get(key)
    ]


def _shown(value: Any) -> str:
    return "not set" if value is None else repr(value)


@dataclass(kw_only=True)
class Checkpoint:
    fingerprint: dict[str, Any]
    plan: dict[str, Any]  # the runner's: what it learned before the first page was written
    sink: dict[str, Any]  # the sink's: what it has committed, file by file
    version: int = VERSION

    def to_json(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self), option=orjson.OPT_INDENT_2)


class Committing(Protocol):
    """A sink whose committed state can be made durable and described."""

    finished: bool

    @property
    def committed_records(self) -> int:
        """Records written in order with nothing missing before them, in every file."""
        ...

    def flush(self) -> tuple[dict[str, Any], list[int]]:
        """Flush buffers; the committed state, and duplicated descriptors to fsync and close."""
        ...


@dataclass
class CheckpointFile:
    """The checkpoint beside one output file."""

    output: Path
    # The run's secrets, which may turn up in a saved next link (an API key, an access token):
    # written as placeholders, put back on load, so no secret is ever stored.
    secrets: Secrets = field(default_factory=Secrets)
    path: Path = field(init=False)
    temporary: Path = field(init=False)  # where a save writes before its rename

    def __post_init__(self) -> None:
        self.path = checkpoint_path(self.output)
        self.temporary = self.path.with_name(self.path.name + ".tmp")

    def load(self, fingerprint: dict[str, Any]) -> Checkpoint | None:
        """The checkpoint to resume from; None if there is none. ResumeError if it is for
        another dataset or cannot be read."""
        try:
            with open_existing(self.path, "rb") as handle:  # never through a symbolic link
                raw = handle.read()
        except (FileNotFoundError, NotADirectoryError):  # the folder's trouble is the sink's
            return None
        except OSError as exc:
            raise ResumeError(f"cannot read: {exc.strerror}", path=str(self.path)) from None
        try:
            data = orjson.loads(raw)
            checkpoint = Checkpoint(**in_links(data, self._with_secrets))
        except (orjson.JSONDecodeError, TypeError, AttributeError):
            raise ResumeError("is not a harvester checkpoint", path=str(self.path)) from None
        if checkpoint.version != VERSION:
            raise ResumeError(
                f"was written by another version (format {checkpoint.version})",
                path=str(self.path),
            )
        changed = differences(checkpoint.fingerprint, fingerprint)
        if changed:
            raise ResumeError(
                "was made for another dataset: " + "; ".join(changed),
                path=str(self.path),
                differences=tuple(changed),
            )
        return checkpoint

    def save(self, checkpoint: Checkpoint) -> None:
        """Write atomically: a temporary file, fsync, rename, fsync of the folder."""
        # Owner-only, like any file that says where a private dataset's pages are; made anew,
        # never written through a symbolic link.
        with create_private(self.temporary) as handle:
            saved = dataclasses.replace(checkpoint, sink=in_links(checkpoint.sink, self._without))
            handle.write(saved.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(self.temporary, self.path)
        fsync_folder(self.path.parent)

    def remove(self) -> None:
        """Remove the checkpoint, and the temporary file of a save that a kill cut short."""
        for path in (self.path, self.temporary):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                path.unlink()

    def _without(self, text: str) -> str:
        return self.secrets.with_placeholders(text)

    def _with_secrets(self, text: str) -> str:
        try:
            return self.secrets.from_placeholders(text)
        except UnknownPlaceholder as exc:
            raise ResumeError(
                f"refers to a secret ({exc.name}, in a saved next link) the config no longer holds",
                path=str(self.path),
            ) from None


class NoCheckpointFile(CheckpointFile):
    """No checkpoint at all, for an output that cannot be resumed (a stream)."""

    def load(self, fingerprint: dict[str, Any]) -> Checkpoint | None:
        return None

    def save(self, checkpoint: Checkpoint) -> None:
        pass

    def remove(self) -> None:
        pass


@dataclass
class _Snapshot:
    """What the sink had committed at one moment, numbered in the order the moments came."""

    sequence: int
    checkpoint: Checkpoint
    descriptors: list[int]  # duplicated: to fsync, then close, whatever becomes of the save


class Checkpointer:
    """Writes the checkpoint every `every` seconds while the harvest runs, once more when it
    stops unfinished, and removes it when the harvest is complete.

    Nothing is written until `plan` is set and a record is committed: before that there is
    nothing a resume could use.
    """

    def __init__(
        self,
        file: CheckpointFile,
        sink: Committing,
        *,
        fingerprint: dict[str, Any],
        every: float,
        stats: Stats,
        plan: dict[str, Any] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._file = file
        self._sleep = sleep
        self._sink = sink
        self._fingerprint = fingerprint
        self._every = every
        self._stats = stats
        self.plan = plan
        self._task: asyncio.Task[None] | None = None
        self._taken = 0  # snapshots taken
        self._last: Checkpoint | None = None  # the last one taken, to skip unchanged ones
        # Periodic saves run in a thread that a cancelled task cannot stop. Under this lock a
        # save writes only if no later snapshot was written before it, and never after the
        # run has closed (the checkpoint removed, or the final one written).
        self._writing = threading.Lock()
        self._written = 0
        self._closed = False

    async def __aenter__(self) -> Checkpointer:
        self._task = asyncio.get_running_loop().create_task(self._every_few_seconds())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._task is not None:
                self._task.cancel()
                await asyncio.wait([self._task])  # not `await task`: its CancelledError isn't ours
        finally:  # even if this wait is cancelled (a second Ctrl-C): the files come first
            self._close()

    def _close(self) -> None:
        # A run that committed nothing has nothing to resume: no checkpoint, so that a corrected
        # config (a records path, a URL) is not refused as made for another dataset.
        if self._sink.finished or not self._sink.committed_records:
            with self._writing:
                self._closed = True
                self._file.remove()
            return
        # Unfinished (failure, stop, cancellation): describe what is on disk now, so the next
        # run loses nothing. Synchronous on purpose: a second Ctrl-C must not cut it short.
        # Even an unchanged state: the last snapshot may be a periodic save's whose thread has
        # not written it yet, and will not once the run has closed.
        snapshot = self._snapshot(again=self._written < self._taken)
        if snapshot is not None:
            self._write(snapshot)
        self._closed = True

    async def _every_few_seconds(self) -> None:
        while True:
            await self._sleep(self._every)
            if self._sink.finished:
                return
            await self.save()

    async def save(self) -> None:
        """Make the committed data durable, then describe it in the checkpoint."""
        snapshot = self._snapshot()
        if snapshot is not None:
            # Shielded: once taken, a snapshot's descriptors are closed by its save, even if
            # the task waiting for it is cancelled.
            await asyncio.shield(asyncio.to_thread(self._write, snapshot))

    def _snapshot(self, *, again: bool = False) -> _Snapshot | None:
        """What the sink has committed now; None if nothing, or (unless `again`) unchanged."""
        if self.plan is None or not self._sink.committed_records:
            return None
        try:
            state, descriptors = self._sink.flush()
        except (OSError, ValueError):  # a failed write, or a file closed by a failed finish:
            return None  # that failure speaks for itself, and the last checkpoint holds
        checkpoint = Checkpoint(fingerprint=self._fingerprint, plan=dict(self.plan), sink=state)
        if checkpoint == self._last and not again:
            for fd in descriptors:
                os.close(fd)
            return None
        self._taken += 1
        self._last = checkpoint
        return _Snapshot(self._taken, checkpoint, descriptors)

    def _write(self, snapshot: _Snapshot) -> None:
        with self._writing:
            try:
                try:
                    for fd in snapshot.descriptors:  # the data first: never a checkpoint ahead
                        os.fsync(fd)
                finally:
                    for fd in snapshot.descriptors:
                        os.close(fd)
                if self._closed or snapshot.sequence < self._written:
                    return
                self._file.save(snapshot.checkpoint)
            except OSError as error:  # e.g. the disk is full: the older checkpoint stays valid
                self._last = None  # so that the same state is tried again
                self._stats.warn(
                    f"could not write the checkpoint {self._file.path}: {error.strerror}"
                )
                return
            self._written = snapshot.sequence
            self._stats.checkpoints += 1


def fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable; quietly skipped where the platform does not allow it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
