"""Incremental runs: each run asks for the records at or after the stored value (less the
lookback), and adds one file, named by its start time, to the output folder.

The folder (output.path):
    2026-12-01T01-02-03.456Z.jsonl   one per run that found something new, in name order
    .harvester-state.json            the watermark (harvester.state), advanced last
    .harvester/                      the run under way: run.json (its name and window), and
                                     run.jsonl with its .part and checkpoint (the usual runner)

A run goes: note the run (run.json), harvest the window into .harvester/run.jsonl (resumable
like any harvest), keep each record version not already in the folder, write the run's file
(a temporary file renamed into place), then the state, then clear .harvester/. A run killed
anywhere resumes or repeats its own window on the next start, with the same name, the same
window and the same state, so it writes the same file once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from harvester.config import Config
from harvester.config.incremental import START
from harvester.errors import OutputError
from harvester.output import OutputLock, create_private
from harvester.secrets import Secrets
from harvester.state import (
    STATE_NAME,
    WatermarkState,
    as_param,
    load_state,
    save_state,
    sync_folder,
    window_start,
    write_atomically,
)
from harvester.stats import Stats
from harvester.stop import Stop
from harvester.versions import select

log = logging.getLogger("harvester")

WORK = ".harvester"


Harvest = Callable[..., Any]


async def run_incremental(
    config: Config,
    harvest: Harvest,
    *,
    stats: Stats,
    fresh: bool = False,
    full_refresh: bool = False,
    stop: Stop | None = None,
    secrets: Secrets | None = None,
) -> Stats:
    """One incremental run into the folder `config.output.path` (see the module's docstring).

    `harvest` is harvester.runner.run, given the run's window as a plain config. With
    `full_refresh`, the run starts from incremental.initial in a new folder generation beside
    the folder, which replaces the folder once complete.
    """
    folder = Path(config.output.path)
    finish_refresh(folder, stats)
    work = refresh_folder(folder) if full_refresh else folder
    if not full_refresh and refresh_folder(folder).exists():
        _warn(
            stats,
            f"an unfinished --full-refresh is in {refresh_folder(folder)}: run with "
            "--full-refresh to finish it (the folder itself is used as it is)",
        )
    try:
        (work / WORK).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder: {exc.strerror}", path=str(work)) from None
    with OutputLock(work / STATE_NAME, warn=lambda message: _warn(stats, message)):
        await _run_once(config, work, harvest, stats, fresh, stop, secrets)
    if full_refresh:
        finish_refresh(folder, stats)
        if stats.incremental is not None:
            stats.incremental["folder"] = str(folder)
    return stats


async def _run_once(
    config: Config,
    work: Path,
    harvest: Harvest,
    stats: Stats,
    fresh: bool,
    stop: Stop | None,
    secrets: Secrets | None,
) -> None:
    inc = config.incremental
    assert inc is not None
    state = load_state(work)
    pending = _pending(work)
    if pending is not None and state is not None and state.last_run == pending["name"]:
        _clear_work(work)  # killed after the state was written: only the tidying was left
        pending = None
    if pending is None:
        pending = {"name": _run_name(work), "start": as_param(window_start(state, inc))}
        write_atomically(work / WORK / "run.json", orjson.dumps(pending))
    else:
        log.info("carrying on the run %s (window from %s)", pending["name"], pending["start"])
    name, start = pending["name"], pending["start"]
    staging = work / WORK / "run.jsonl"
    if not staging.exists():  # else complete: killed after the harvest, before the state
        window = _window_config(config, start, staging)
        await harvest(window, stats=stats, fresh=fresh, stop=stop, secrets=secrets)
    before = state or WatermarkState()
    selected, final = work / WORK / "kept.jsonl", work / name
    with create_private(selected) as out:  # owner-only, as every output file
        kept, after = select(staging, before, config, start, lambda m: _warn(stats, m), out)
        out.flush()
        os.fsync(out.fileno())
    if kept and not final.exists():  # else in place already: killed before the state
        os.replace(selected, final)
        sync_folder(work)
    after.last_run = name
    size = save_state(work, after)
    _clear_work(work)
    stats.incremental = {
        "folder": str(work),
        "file": name if kept else None,
        "new_records": kept,
        "window_start": start,
        "stored_value": after.cursor,
        "state_bytes": size,
        "state_versions": len(after.seen),
    }
    if not kept:
        log.info("nothing new since %s: no file added to %s", start, work)


def _window_config(config: Config, start: str, staging: Path) -> Config:
    """The plain harvest of one window: the start sent as incremental.param or in place of
    {incremental.start}, the output the staging file."""
    inc = config.incremental
    assert inc is not None
    source = config.source
    params = {k: v.replace(START, start) for k, v in source.params.items()}
    if inc.param is not None:
        params[inc.param] = start
    source = dataclasses.replace(
        source,
        url=source.url.replace(START, start),
        params=params,
        headers={k: v.replace(START, start) for k, v in source.headers.items()},
    )
    output = dataclasses.replace(config.output, path=str(staging))
    return dataclasses.replace(config, source=source, output=output, incremental=None)


def _pending(work: Path) -> dict[str, str] | None:
    with contextlib.suppress(FileNotFoundError):
        document: dict[str, str] = orjson.loads((work / WORK / "run.json").read_bytes())
        return document
    return None


def _run_name(work: Path) -> str:
    """Now in UTC to the millisecond, sortable, later than every run file in the folder."""
    now = datetime.datetime.now(datetime.UTC)
    latest = max((p.name for p in work.glob("*.jsonl")), default="")
    while (
        name := now.strftime("%Y-%m-%dT%H-%M-%S.") + f"{now.microsecond // 1000:03d}Z.jsonl"
    ) <= latest:
        now += datetime.timedelta(milliseconds=1)
    return name


def _clear_work(work: Path) -> None:
    """Remove the finished run's working files (its marker last: a kill midway leaves a
    marker the state already names, which the next run only tidies)."""
    for path in sorted((work / WORK).glob("*"), key=lambda p: p.name == "run.json"):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (work / WORK).rmdir()


def refresh_folder(folder: Path) -> Path:
    """Where --full-refresh builds the folder's next generation."""
    return folder.with_name(f".{folder.name}.refresh")


def finish_refresh(folder: Path, stats: Stats) -> None:
    """Put a complete new generation in the folder's place, and drop the old one.

    Two renames (folder -> .NAME.replaced, .NAME.refresh -> folder), then the old one removed:
    POSIX has no atomic exchange of two folders (Linux's renameat2 RENAME_EXCHANGE is not
    portable), so a kill between the renames leaves the folder absent for a moment; the next
    run finishes the swap from here, which is the first thing it does.
    """
    new, old = refresh_folder(folder), folder.with_name(f".{folder.name}.replaced")
    complete = (new / STATE_NAME).exists() and not (new / WORK / "run.json").exists()
    try:
        if complete:
            if folder.exists():
                if old.exists():
                    shutil.rmtree(old)
                os.rename(folder, old)
            os.rename(new, folder)
            sync_folder(folder.parent)
            log.info("the full refresh is in place in %s", folder)
        if old.exists() and folder.exists():
            shutil.rmtree(old)
    except OSError as exc:
        raise OutputError(
            f"cannot swap in the full refresh: {exc.strerror}", path=str(folder)
        ) from None


def _warn(stats: Stats, message: str) -> None:
    log.warning(message)
    stats.warn(message)
