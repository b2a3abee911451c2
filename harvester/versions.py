"""Which of a run's records the folder does not hold yet, and the watermark after the run.

A record version is (primary key, cursor value): a record the lookback reads again unchanged is
the same version and is left out; one that changed has a new cursor value and is kept. Records
are checked as they are read: the cursor present (or included on purpose), of the units of
incremental.initial, not before the window's start (else the API ignores the filter).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from harvester.config import Config
from harvester.config.incremental import START
from harvester.errors import HarvesterError, OutputError
from harvester.read import NotJSON, decode_json
from harvester.state import WatermarkState, back, comparable, dotted, version_key


class IncrementalError(HarvesterError):
    """The records cannot be stored incrementally as configured (a cursor missing, an API
    that ignores the window): nothing is added to the folder, the state is left as it was."""


def select(
    staging: Path,
    state: WatermarkState,
    config: Config,
    start: str,
    warn: Callable[[str], None],
    out: BinaryIO,
) -> tuple[int, WatermarkState]:
    """Write the run's lines to keep to `out`, in the server's order; how many, and the state
    after the run.

    Kept: each record whose version (key, cursor value) the folder does not hold yet. The
    state after: the newest cursor value, and the versions at or after the next window's start.
    The run's versions are held in memory until then (some 100 bytes a record), to keep a
    version the server sends twice in one run once.
    """
    inc = config.incremental
    assert inc is not None
    # Any: numbers or times, one kind per config (initial_value and comparable see to it).
    low: Any = int(start) if isinstance(inc.initial, int) else comparable(start, inc)
    newest: Any = comparable(state.cursor, inc) if state.cursor is not None else None
    newest_raw = state.cursor
    kept = 0
    seen = set(state.seen)  # the folder's recent versions, then this run's too
    previous: Any = None
    disordered = False
    with staging.open("rb") as lines:
        for index, line in enumerate(lines):
            record = _decode(line, index, staging)
            found, raw = dotted(record, inc.field)
            if not found or raw is None:
                if inc.on_missing_cursor == "fail":
                    raise IncrementalError(_missing(config, index))
                out.write(line)  # include: written each time the API sends it
                kept += 1
                continue
            value: Any = comparable(raw, inc)
            if value is None:
                raise IncrementalError(
                    f"record {index} of the run (from 0, in the server's order) has "
                    f"{inc.field} = {raw!r}: not {_units(config)} like incremental.initial"
                )
            if low is not None and value < low:
                raise IncrementalError(
                    f"record {index} of the run has {inc.field} = {raw!r}, before the window's "
                    f"start {start}: the API does not filter by {_carrier(config)}; check the "
                    "parameter's name"
                )
            if previous is not None and value < previous and not disordered:
                disordered = True
                warn(_order_warning(config, index, raw))
            previous = value
            version = (version_key(record, line, inc.primary_key), orjson.dumps(raw).decode())
            if version not in seen:
                out.write(line)
                kept += 1
                seen.add(version)  # a second copy within the run is not kept either
            if newest is None or value > newest:
                newest, newest_raw = value, raw
    after = WatermarkState(cursor=newest_raw, last_run=state.last_run, runs=state.runs + 1)
    if newest is not None:
        boundary: Any = back(newest, inc.lookback)
        for key, cursor in seen:
            kept_value: Any = comparable(orjson.loads(cursor), inc)
            if kept_value is not None and kept_value >= boundary:
                after.seen.add((key, cursor))
    return kept, after


def _order_warning(config: Config, index: int, raw: Any) -> str:
    """Out of cursor order: the stored value stays safe (it is the newest of a complete window,
    not the last record's), but an API that does not sort by the cursor field may skip records
    changed during a run (they move to pages already read): a warning, once per run."""
    assert config.incremental is not None
    field = config.incremental.field
    return (
        f"records came back out of {field} order (record {index} of the run has {field} = "
        f"{raw!r}, before the record ahead of it): ask the API to sort by {field}, or records "
        "changed during a run may be missed"
    )


def _missing(config: Config, index: int) -> str:
    inc = config.incremental
    assert inc is not None
    size = config.pagination.page_size
    return (
        f"record {index} of the run (from 0, in the server's order: page {index // size} at "
        f"{size} a page, from {config.source.url}) has no {inc.field}: set "
        "incremental.on_missing_cursor: include to write such records (each run that reads "
        "them writes them again), or fix incremental.field"
    )


def _units(config: Config) -> str:
    assert config.incremental is not None
    return "a number" if isinstance(config.incremental.initial, int) else "an ISO 8601 time"


def _carrier(config: Config) -> str:
    assert config.incremental is not None
    return config.incremental.param or START


def _decode(line: bytes, index: int, staging: Path) -> Any:
    try:
        return decode_json(line)
    except NotJSON as exc:  # the runner wrote it: a bug or a damaged disk, never the API
        raise OutputError(f"line {index + 1} is not JSON ({exc})", path=str(staging)) from None
