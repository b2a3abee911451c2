"""Counters every stage bumps, and the final summary built from them."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    """What happened during one harvest. Holds counts only: never a token, secret or record."""

    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    records: int = 0
    pages: int = 0
    bytes: int = 0
    requests: int = 0
    token_requests: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    # While a long quota holds every worker: when (time.time()) the API said it resets.
    quota_reset_at: float | None = None
    statuses: Counter[int] = field(default_factory=Counter)
    # What the API advertised, once known; None while unknown.
    total_records: int | None = None
    total_pages: int | None = None
    # The throttle's state: the concurrency limit now, the rate (set or learned), the cool-downs.
    concurrency_limit: int | None = None
    rate_limit: float | None = None
    cool_downs: int = 0
    cool_down_seconds: float = 0.0
    # Pages fetched ahead past the end of a dataset of unknown size, and thrown away.
    discarded_pages: int = 0
    # Records an earlier, unfinished run had written (resumed from its checkpoint), and the
    # checkpoints this run wrote.
    resumed_records: int = 0
    checkpoints: int = 0
    warnings: list[str] = field(default_factory=list)
    # An incremental run's outcome (harvester.incremental): its file, new records, the state.
    incremental: dict[str, Any] | None = None
    # A shard's run (--shard K/N): which, its file, and whether it had finished already.
    shard: dict[str, Any] | None = None

    def count_retry(self, cause: str) -> None:
        self.retries[cause] += 1

    def warn(self, message: str) -> None:
        """Note something the user should know; each distinct warning is kept once."""
        if message not in self.warnings:
            self.warnings.append(message)

    @property
    def elapsed(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.started

    @property
    def records_per_second(self) -> float:
        if self.shard is not None and self.shard["finished_before"]:
            return 0.0  # nothing was harvested: the records are an earlier run's
        elapsed = self.elapsed
        return (self.records - self.resumed_records) / elapsed if elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "pages": self.pages,
            "bytes": self.bytes,
            "elapsed_seconds": round(self.elapsed, 3),
            "records_per_second": round(self.records_per_second, 1),
            "requests": self.requests,
            "token_requests": self.token_requests,
            "retries": dict(sorted(self.retries.items())),
            "retries_total": sum(self.retries.values()),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "total_records": self.total_records,
            "total_pages": self.total_pages,
            "discarded_pages": self.discarded_pages,
            "resumed_records": self.resumed_records,
            "checkpoints": self.checkpoints,
            "concurrency_limit": self.concurrency_limit,
            "rate_limit": self.rate_limit,
            "cool_downs": self.cool_downs,
            "cool_down_seconds": round(self.cool_down_seconds, 3),
            "warnings": list(self.warnings),
            "incremental": self.incremental,
            "shard": self.shard,
        }

    def summary(self) -> str:
        """The human summary printed at the end of a run."""
        retries = ", ".join(f"{cause} {n}" for cause, n in sorted(self.retries.items())) or "none"
        lines = [
            f"records      {self.records:,}",
            f"pages        {self.pages:,}",
            f"bytes        {self.bytes:,} ({self.bytes / 1e6:.1f} MB)",
            f"elapsed      {self.elapsed:.2f} s",
            f"records/s    {self.records_per_second:,.0f}",
            f"requests     {self.requests:,}",
            f"retries      {sum(self.retries.values()):,} ({retries})",
            f"token reqs   {self.token_requests:,}",
        ]
        if self.cool_downs:
            lines.append(
                f"cool-downs   {self.cool_downs} ({self.cool_down_seconds:.1f} s paused); "
                f"rate {self.rate_limit or 'unlimited'}/s, concurrency {self.concurrency_limit}"
            )
        done_before = self.shard is not None and self.shard["finished_before"]
        if self.resumed_records and not done_before:
            lines.append(f"resumed      at {self.resumed_records:,} records, from a checkpoint")
        if self.discarded_pages:
            lines.append(f"past the end {self.discarded_pages:,} pages fetched ahead, discarded")
        if self.incremental is not None:
            lines.extend(_incremental_lines(self.incremental))
        if self.shard is not None:
            how = "finished before: nothing harvested" if done_before else "finished"
            lines.append(f"shard        {self.shard['shard']}: {self.shard['file']} ({how})")
        lines.extend(f"warning      {w}" for w in self.warnings)
        return "\n".join(lines)


def _incremental_lines(outcome: dict[str, Any]) -> list[str]:
    """An incremental run's lines: the file it added (or none) and the state's size."""
    if outcome["file"] is None:
        added = f"nothing new since {outcome['window_start']}: no file added"
    else:
        count = outcome["new_records"]
        things = "record or version" if count == 1 else "records or versions"
        added = f"{outcome['file']} ({count:,} new {things})"
    return [
        f"run file     {added}",
        f"state        {outcome['state_bytes']:,} bytes ({outcome['state_versions']:,} versions "
        f"kept for the lookback; stored value {outcome['stored_value']})",
    ]
