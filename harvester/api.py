"""The Python API: harvest() and harvest_async(), for scripts and notebooks.

    stats = harvester.harvest("config.yaml", workers=8)        # a script, or a notebook cell
    stats = await harvester.harvest_async(config)              # inside a coroutine

The config is a path to a YAML file, a mapping shaped as the YAML document, or a Config; each is
validated exactly as the command line validates its file. The keywords are the command line's
options. harvest() works in a plain script and inside a running event loop (Jupyter): see
harvester.blocking for how.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeAlias

from harvester.blocking import run_blocking
from harvester.config import Config, load_config, parse_config
from harvester.config.plain import validated
from harvester.errors import ConfigError, Interrupted
from harvester.interrupts import in_notebook, nothing_kept, resumable, stopping_on_interrupt
from harvester.progress import watch
from harvester.runner import run
from harvester.stats import Stats
from harvester.stop import Stop

__all__ = [
    "ConfigSource",
    "Progress",
    "harvest",
    "harvest_async",
    "resolve_config",
    "table_harvest",
]

ConfigSource: TypeAlias = str | os.PathLike[str] | Mapping[str, Any] | Config
"""What the API takes as a config: a YAML file's path, the YAML document as a mapping, a Config."""

Progress: TypeAlias = bool | Literal["auto"]
"""Whether to show progress: True, False, or "auto" (a widget in a notebook, a bar on a
terminal, nothing otherwise)."""


def harvest(
    config: ConfigSource,
    *,
    output: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    max_records: int | None = None,
    fresh: bool = False,
    progress: Progress = "auto",
    overrides: Mapping[str, Any] | None = None,
    stop: Stop | None = None,
) -> Stats:
    """Harvest the whole dataset `config` describes into its output file; return the stats.

    Synchronous: in a plain script, and inside a running event loop (a notebook cell), where the
    harvest runs on a loop of its own in a worker thread while this call waits for it.

    - `output`: the output path (`--output`), relative to the current folder;
    - `workers`: concurrency.workers (`--workers`);
    - `max_records`: stop after this many records: a sample, written like a full harvest;
    - `fresh`: start over, removing the checkpoint and partial data of an unfinished run;
    - `progress`: True, False or "auto" (a widget in a notebook, a bar on a terminal);
    - `overrides`: more config keys, dotted: `{"concurrency.rate_limit": 5}`;
    - `stop`: stop the harvest from elsewhere with `stop.request("why")`.

    A checkpoint left by an unfinished run on the same output is resumed from. Ctrl-C (or the
    notebook's interrupt) stops gracefully: pages in flight finish, a checkpoint is written,
    and Interrupted says how to resume (call harvest() again with the same config). Raises
    ConfigError for a bad config, another HarvesterError when the harvest fails.
    """
    resolved = resolve_config(config, output=output, workers=workers, overrides=overrides)
    stop = stop if stop is not None else Stop(grace=resolved.concurrency.stop_grace)
    return run_blocking(lambda: _harvest(resolved, max_records, fresh, progress, stop), stop)


async def harvest_async(
    config: ConfigSource,
    *,
    output: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    max_records: int | None = None,
    fresh: bool = False,
    progress: Progress = "auto",
    overrides: Mapping[str, Any] | None = None,
    stop: Stop | None = None,
) -> Stats:
    """harvest(), as a coroutine: `stats = await harvester.harvest_async("config.yaml")`.

    The same keywords and behaviour. Ctrl-C becomes a graceful stop only where this loop runs
    on the main thread and nobody else handles SIGINT (asyncio.run's own handler is replaced for
    the harvest's duration); otherwise use `stop` to stop it.
    """
    resolved = resolve_config(config, output=output, workers=workers, overrides=overrides)
    stop = stop if stop is not None else Stop(grace=resolved.concurrency.stop_grace)
    return await _harvest(resolved, max_records, fresh, progress, stop)


def table_harvest(
    config: ConfigSource,
    *,
    output: Path,
    workers: int | None,
    max_records: int | None,
    progress: Progress,
    overrides: Mapping[str, Any] | None,
) -> Stats:
    """harvest() into a temporary `output` that nothing will resume (to_arrow's): always
    fresh, and Ctrl-C stops it at once, saying that nothing is kept."""
    resolved = resolve_config(config, output=output, workers=workers, overrides=overrides)
    stop = Stop(grace=0.0)  # the pages in flight would be thrown away with the file
    return run_blocking(
        lambda: _harvest(resolved, max_records, True, progress, stop, kept=False), stop
    )


async def _harvest(
    config: Config,
    max_records: int | None,
    fresh: bool,
    progress: Progress,
    stop: Stop,
    *,
    kept: bool = True,
) -> Stats:
    _check_max_records(max_records)
    stats = Stats()
    with (
        stopping_on_interrupt(stop),
        progress_display(stats, progress, max_records=max_records),
    ):
        try:
            return await run(config, max_records=max_records, stats=stats, fresh=fresh, stop=stop)
        except Interrupted as exc:
            if kept:
                raise resumable(exc, fresh=fresh) from None
            raise nothing_kept(exc.signal) from None


def resolve_config(
    config: ConfigSource,
    *,
    output: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """`config` as a validated Config, with the keyword overrides applied.

    A path is loaded as the command line loads it (relative paths in the file are taken from
    its folder); a mapping is validated as that YAML document would be; a Config is validated
    through the same checks (a Config built by hand may hold anything). ConfigError names the
    key that is wrong; TypeError for anything else.
    """
    dotted = dict(overrides or {})
    if workers is not None:
        dotted["concurrency.workers"] = workers
    if output is not None:
        dotted["output.path"] = os.fspath(output)
    if isinstance(config, Config):
        return validated(config, dotted)
    if isinstance(config, Mapping):
        return parse_config(config, overrides=dotted)
    if isinstance(config, str | os.PathLike):
        return load_config(Path(config), overrides=dotted)
    raise TypeError(
        "config must be a path to a YAML file, a mapping shaped as that file, or a "
        f"harvester.Config; got {type(config).__name__}"
    )


def _check_max_records(max_records: int | None) -> None:
    if max_records is None:
        return
    if isinstance(max_records, bool) or not isinstance(max_records, int):
        raise ConfigError(f"must be a whole number, got {max_records!r}", key="max_records")
    if max_records < 1:
        raise ConfigError(f"must be >= 1, got {max_records}", key="max_records")


# --- Progress: what the API's `progress` argument means for harvester.progress.watch ---------

ProgressMode = Literal["notebook", "bar", "log", "none"]


def progress_mode(progress: Progress) -> ProgressMode:
    """What `progress` means here: a widget in a notebook, a bar on a terminal; with True and
    neither, a line every 10 s on stderr; with "auto" and neither (a script under cron),
    nothing."""
    if progress is False:
        return "none"
    if progress not in (True, "auto"):
        raise ValueError(f'progress must be True, False or "auto", got {progress!r}')
    if in_notebook():
        return "notebook"
    if sys.stderr is not None and sys.stderr.isatty():
        return "bar"
    return "log" if progress is True else "none"


@contextlib.contextmanager
def progress_display(
    stats: Stats, progress: Progress, *, max_records: int | None = None
) -> Iterator[None]:
    """Show the harvest's progress from `stats` while the body runs, as `progress` says.

    Entered inside the harvest's own event loop (a worker thread's, under a notebook); the
    display runs on a thread of its own (harvester.progress.watch), so either is fine.
    """
    with watch(stats, mode=progress_mode(progress), max_records=max_records):
        yield
