"""Several resources in one run: one session, token manager, throttle and worker budget.

Every resource runs through runner.run as a single-endpoint harvest does (its own output,
checkpoint, resume and Stats), on the parts harvester.shared makes once. Independent resources
run at once; a child waits for its parent to be complete, then fans out over its records.
The first resource to fail stops the others gracefully (their checkpoints saved, so that the
same command resumes every one) and is the error reported, named.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harvester.checkpoint import checkpoint_path
from harvester.config import Config
from harvester.errors import ConfigError, HarvesterError, Interrupted
from harvester.runner import run
from harvester.secrets import Secrets
from harvester.shared import open_shared
from harvester.stats import Stats
from harvester.stop import Stop

__all__ = ["Totals", "check_resource_args", "run_resources", "select"]

log = logging.getLogger("harvester")


def select(configs: Sequence[Config], names: Sequence[str]) -> list[Config]:
    """The resources `names` picks (all if none), in the document's order; ConfigError (exit 2)
    naming the known ones for an unknown name."""
    known = [str(config.name) for config in configs]
    for name in names:
        if name not in known:
            raise ConfigError(
                f"no resource {name!r}; the config names {', '.join(known)}", key="--resource"
            )
    return [config for config in configs if not names or config.name in names]


class Totals(Stats):
    """The run's stats: each resource's, and their sum (token requests and the throttle's
    state, shared, are counted here)."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        self.parts = {name: Stats() for name in names}
        self._shared = Stats()

    @property
    def shared(self) -> Stats:
        return self._shared

    def gather(self) -> None:
        """Sum the resources' counts into this object (progress reads it as it goes)."""
        parts = list(self.parts.values())
        for name in (
            "records",
            "pages",
            "bytes",
            "requests",
            "discarded_pages",
            "resumed_records",
            "checkpoints",
        ):
            setattr(self, name, sum(getattr(part, name) for part in parts))
        self.token_requests = self._shared.token_requests
        self.retries = sum((part.retries for part in parts), Counter())
        self.statuses = sum((part.statuses for part in parts), Counter())
        for name in (
            "concurrency_limit",
            "rate_limit",
            "cool_downs",
            "cool_down_seconds",
            "quota_reset_at",
        ):
            setattr(self, name, getattr(self._shared, name))
        self.warnings[:] = [
            f"{resource}: {warning}"
            for resource, part in self.parts.items()
            for warning in part.warnings
        ] + self._shared.warnings

    def as_dict(self) -> dict[str, Any]:
        self.gather()
        return {**super().as_dict(), "resources": {n: p.as_dict() for n, p in self.parts.items()}}

    def summary(self) -> str:
        self.gather()
        blocks = []
        for name, part in self.parts.items():
            lines = Stats.summary(dataclasses.replace(part, warnings=[])).splitlines()
            blocks.append(f"resource {name}\n" + "\n".join("  " + line for line in lines[:6]))
        return "\n".join([*blocks, "total", super().summary()])


async def run_resources(
    configs: Sequence[Config],
    totals: Totals,
    *,
    names: Sequence[str] = (),
    secrets: Secrets,
    stop: Stop,
    fresh: bool = False,
    max_records: int | None = None,
) -> None:
    """Harvest the resources of `configs` that `names` picks (all if none), children after
    their parents, on shared parts; `totals` has a part for each one picked."""
    session, shared = open_shared(configs, totals.shared, secrets)
    configs = select(configs, names)
    running = {str(config.name) for config in configs}
    tasks: dict[str, asyncio.Task[Stats]] = {}

    async def one(config: Config) -> Stats:
        if not fresh and _kept(config, configs):
            log.info(
                "%s: kept as the earlier run completed it, for its resuming children", config.name
            )
            return totals.parts[str(config.name)]
        if config.parent in running:
            await asyncio.wait([tasks[str(config.parent)]])
            if tasks[str(config.parent)].exception() is not None:
                raise _NotStarted(str(config.name))
        return await run(
            config,
            max_records=max_records,
            stats=totals.parts[str(config.name)],
            fresh=fresh,
            stop=stop,
            secrets=secrets,
            shared=shared,
        )

    async with session:
        for config in configs:
            tasks[str(config.name)] = asyncio.create_task(one(config))
        gathering = asyncio.create_task(_gathering(totals))
        try:
            await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_EXCEPTION)
            failed = _failed(tasks)
            if failed is not None:
                stop.request(f"the failure of resource {failed}")
            await asyncio.wait(tasks.values())
        finally:
            gathering.cancel()
            for task in tasks.values():
                task.cancel()  # only where this wait itself was cancelled
            await asyncio.wait([gathering, *tasks.values()])
            totals.finished = max((p.finished or 0.0) for p in totals.parts.values()) or None
            totals.gather()
    _raise_first(tasks)


def _kept(config: Config, configs: Sequence[Config]) -> bool:
    """Whether `config` is a parent an earlier run completed while a child of it was cut short:
    the child resumes over the very records it began with, so the parent is not harvested
    again (--fresh starts every resource over)."""
    output = Path(config.output.path)
    if not output.exists() or checkpoint_path(output).exists():
        return False
    return any(
        child.parent == config.name and checkpoint_path(Path(child.output.path)).exists()
        for child in configs
    )


class _NotStarted(Exception):
    """A child whose parent did not complete: it never started."""


def _failed(tasks: dict[str, asyncio.Task[Stats]]) -> str | None:
    for name, task in tasks.items():
        if task.done() and not task.cancelled():
            exc = task.exception()
            if exc is not None and not isinstance(exc, (Interrupted, _NotStarted)):
                return name
    return None


def _raise_first(tasks: dict[str, asyncio.Task[Stats]]) -> None:
    """The failure that stopped the run, named; else the resources a stop cut short."""
    failed = _failed(tasks)
    if failed is not None:
        exc = tasks[failed].exception()
        assert exc is not None
        if isinstance(exc, HarvesterError):
            exc.message = f"resource {failed}: {exc.message}"
        raise exc
    stopped = {n: t.exception() for n, t in tasks.items() if isinstance(t.exception(), Interrupted)}
    if stopped:
        reason = next(iter(stopped.values()))
        assert isinstance(reason, Interrupted)
        message = "; ".join(f"resource {name}: {exc}" for name, exc in stopped.items())
        raise Interrupted(message, signal=reason.signal)


async def _gathering(totals: Totals) -> None:
    """Keep the totals current for the progress display."""
    while True:
        totals.gather()
        await asyncio.sleep(0.5)


def check_resource_args(
    configs: Sequence[Config], names: Sequence[str], *, output: str | None
) -> list[Config]:
    """The command line's resources: `--resource NAME`s picked; --output refused (each
    resource has an output of its own) unless the document has one resource and no parent."""
    if configs[0].name is None:
        raise ConfigError(
            "the config has no resources: (it is a single endpoint)", key="--resource"
        )
    if output is not None and len(configs) > 1:
        raise ConfigError(
            "each resource writes its own output: set output.path in the config instead",
            key="--output",
        )
    return select(configs, names)
