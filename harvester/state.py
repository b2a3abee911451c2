"""The incremental watermark between runs: `<folder>/.harvester-state.json`.

What it holds stays small whatever the history: the newest cursor value seen, and the versions
(primary key, cursor value) of the records at or after the next window's start, the only ones
the next run can read again. Written atomically (a temporary file, fsync, rename).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from harvester.config import IncrementalConfig
from harvester.config.incremental import initial_value
from harvester.errors import OutputError

STATE_NAME = ".harvester-state.json"
VERSION = 1

Cursor = int | datetime.datetime


@dataclass
class WatermarkState:
    """The stored value, the versions the next window may re-read, and the last run's file."""

    cursor: Any = None  # the newest cursor value seen, as the server sent it; None: no run yet
    seen: set[tuple[str, str]] = field(default_factory=set)  # (key JSON, cursor JSON)
    last_run: str | None = None
    runs: int = 0

    def as_bytes(self) -> bytes:
        document = {
            "version": VERSION,
            "cursor": self.cursor,
            "seen": sorted(self.seen),
            "last_run": self.last_run,
            "runs": self.runs,
        }
        return orjson.dumps(document)


def load_state(folder: Path) -> WatermarkState | None:
    """The folder's state, or None before its first complete run."""
    path = folder / STATE_NAME
    try:
        document = orjson.loads(path.read_bytes())
        return WatermarkState(
            cursor=document["cursor"],
            seen={(k, c) for k, c in document["seen"]},
            last_run=document["last_run"],
            runs=int(document["runs"]),
        )
    except FileNotFoundError:
        return None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise OutputError(
            f"is not a harvester state file ({exc}): move it away and run with --full-refresh",
            path=str(path),
        ) from None


def save_state(folder: Path, state: WatermarkState) -> int:
    """Write the state atomically; returns its size in bytes."""
    data = state.as_bytes()
    write_atomically(folder / STATE_NAME, data)
    return len(data)


def write_atomically(path: Path, data: bytes) -> None:
    """`data` at `path`, all or nothing: written beside it, flushed to disk, renamed over it."""
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=".tmp-", delete=False) as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    try:
        os.replace(out.name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(out.name)
        raise
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk, where the system allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def comparable(value: Any, inc: IncrementalConfig) -> Cursor | None:
    """A cursor value as a number or an aware time, in the units of incremental.initial;
    None where it is neither."""
    if isinstance(initial_value(inc), int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return None
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def window_start(state: WatermarkState | None, inc: IncrementalConfig) -> Cursor:
    """Where the next run's window starts: the stored value less the lookback (inclusive)."""
    if state is None or state.cursor is None:
        return initial_value(inc)
    stored = comparable(state.cursor, inc)
    assert stored is not None  # only comparable values are stored
    return back(stored, inc.lookback)


def back(value: Cursor, lookback: float) -> Cursor:
    if isinstance(value, int):
        return value - int(lookback)
    return value - datetime.timedelta(seconds=lookback)


def as_param(value: Cursor) -> str:
    """A window start as the query parameter carries it (ISO 8601 in UTC with Z for a time)."""
    if isinstance(value, int):
        return str(value)
    return value.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def version_key(record: Any, raw_line: bytes, primary_key: str | None) -> str:
    """What identifies a record across runs: its primary key as JSON, or without one, a digest
    of the record as the server sent it (then only an identical record counts as the same)."""
    if primary_key is None:
        return "sha256:" + hashlib.sha256(raw_line).hexdigest()[:32]
    found, value = dotted(record, primary_key)
    return orjson.dumps(value, default=str).decode() if found else "null"


def dotted(record: Any, path: str) -> tuple[bool, Any]:
    """(found, value) of a dotted path in a record."""
    value = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value
