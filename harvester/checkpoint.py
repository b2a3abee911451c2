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
import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import orjson

from harvester.config import Config
from harvester.errors import ResumeError, looks_secret
from harvester.stats import Stats

VERSION = 1


def checkpoint_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".checkpoint")


def dataset_fingerprint(config: Config) -> dict[str, Any]:
    """The config fields that decide which records land where, as dotted keys.

    Secret-looking parameters are kept as a digest: a changed API key is noticed, never stored.
    """
    source = config.source
    fields: dict[str, Any] = {"source.url": source.url, "source.records": source.records}
    fields.update({f"source.params.{k}": v for k, v in source.params.items()})
    _flatten("pagination", dataclasses.asdict(config.pagination), fields)
    return {k: digest(v) if looks_secret(k.rsplit(".", 1)[-1]) else v for k, v in fields.items()}


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, into)
    else:
        into[prefix] = list(value) if isinstance(value, tuple) else value


def digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()[:16]


def differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """One phrase per field that differs, secrets named but not shown."""
    found = []
    for key in sorted(saved.keys() | current.keys()):
        old, new = saved.get(key), current.get(key)
        if old == new:
            continue
        if any(isinstance(v, str) and v.startswith("sha256:") for v in (old, new)):
            found.append(f"{key} changed")
        else:
            found.append(f"{key} was {old!r}, is now {new!r}")
    return found


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

    def flush(self) -> tuple[dict[str, Any], list[int]]:
        """Flush buffers; the committed state, and duplicated descriptors to fsync and close."""
        ...


@dataclass
class CheckpointFile:
    """The checkpoint beside one output file."""

    output: Path
    path: Path = field(init=False)
    temporary: Path = field(init=False)  # where a save writes before its rename

    def __post_init__(self) -> None:
        self.path = checkpoint_path(self.output)
        self.temporary = self.path.with_name(self.path.name + ".tmp")

    def load(self, fingerprint: dict[str, Any]) -> Checkpoint | None:
        """The checkpoint to resume from; None if there is none. ResumeError if it is for
        another dataset or cannot be read."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ResumeError(f"cannot read: {exc.strerror}", path=str(self.path)) from None
        try:
            data = orjson.loads(raw)
            checkpoint = Checkpoint(**data)
        except (orjson.JSONDecodeError, TypeError):
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
        with open(self.temporary, "wb") as handle:
            handle.write(checkpoint.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(self.temporary, self.path)
        fsync_folder(self.path.parent)

    def remove(self) -> None:
        """Remove the checkpoint, and the temporary file of a save that a kill cut short."""
        for path in (self.path, self.temporary):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


class Checkpointer:
    """Writes the checkpoint every `every` seconds while the harvest runs, once more when it
    stops unfinished, and removes it when the harvest is complete.

    Nothing is written until `plan` is set: before that there is nothing a resume could use.
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
    ) -> None:
        self._file = file
        self._sink = sink
        self._fingerprint = fingerprint
        self._every = every
        self._stats = stats
        self.plan = plan
        self._last: dict[str, Any] | None = None  # the sink state last saved
        self._task: asyncio.Task[None] | None = None
        # A save runs in a thread that a cancelled task cannot stop: the final save, and the
        # removal, wait for it rather than race it for the same files.
        self._writing = threading.Lock()

    async def __aenter__(self) -> Checkpointer:
        self._task = asyncio.get_running_loop().create_task(self._every_few_seconds())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sink.finished:
            with self._writing:
                self._file.remove()
            return
        # Unfinished (failure, stop, cancellation): describe what is on disk now, so the next
        # run loses nothing. Synchronous on purpose: a second Ctrl-C must not cut it short.
        self._write(*self._snapshot())

    async def _every_few_seconds(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            if self._sink.finished:
                return
            await self.save()

    async def save(self) -> None:
        """Make the committed data durable, then describe it in the checkpoint."""
        state, descriptors = self._snapshot()
        if state is not None:
            await asyncio.to_thread(self._write, state, descriptors)

    def _write(self, state: dict[str, Any] | None, descriptors: list[int]) -> None:
        if state is None:
            return
        try:
            self._persist(state, descriptors)
        except OSError as error:  # e.g. the disk is full: the older checkpoint stays valid
            self._stats.warn(f"could not write the checkpoint {self._file.path}: {error.strerror}")
            return
        self._last = state
        self._stats.checkpoints += 1

    def _snapshot(self) -> tuple[dict[str, Any] | None, list[int]]:
        if self.plan is None:
            return None, []
        try:
            state, descriptors = self._sink.flush()
        except OSError:  # the write that failed says so itself; the last checkpoint holds
            return None, []
        if state == self._last:
            for fd in descriptors:
                os.close(fd)
            return None, []
        return state, descriptors

    def _persist(self, state: dict[str, Any], descriptors: list[int]) -> None:
        assert self.plan is not None
        checkpoint = Checkpoint(fingerprint=self._fingerprint, plan=self.plan, sink=state)
        with self._writing:
            try:
                for fd in descriptors:  # the data first: a checkpoint never runs ahead of it
                    os.fsync(fd)
            finally:
                for fd in descriptors:
                    os.close(fd)
            self._file.save(checkpoint)


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
