"""--shard K/N: which slice of the dataset one shard harvests, where it writes it, and what
budget it gets.

A shard is one run of the same config over a contiguous slice: of the pages where the first
answer tells the total (offset, range, page styles), of the `pagination.partition` windows for
cursor and link styles. Shard K writes `<stem>.shard-KKKKK-of-NNNNN<ext>` beside the output, with
a checkpoint of its own, and once complete a manifest (harvester/manifest.py) that
`harvester merge` checks before it puts the shards together (harvester/merge.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harvester.config import INDEXED_STYLES, Config
from harvester.config.output import resolve_format
from harvester.errors import ConfigError
from harvester.stream import is_stream

__all__ = [
    "Shard",
    "Slice",
    "check_partition",
    "check_shardable",
    "parse_shard",
    "shard_config",
    "shard_path",
    "slice_of",
    "budget_share",
    "shard_warnings",
]

Unit = Literal["pages", "windows"]


@dataclass(frozen=True, kw_only=True)
class Shard:
    """Shard `index` (0-based) of `count`; `concurrent`: how many shards run at once, among
    which `concurrency.scope: run` divides rate_limit and workers."""

    index: int
    count: int
    concurrent: int = 1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError(f"a harvest has at least 1 shard, got {self.count}", key="--shard")
        if not 0 <= self.index < self.count:
            raise ConfigError(
                f"{self}: K counts from 0 (Kubernetes' JOB_COMPLETION_INDEX), so K must be 0 "
                f"to {self.count - 1}",
                key="--shard",
            )
        if not 1 <= self.concurrent <= self.count:
            raise ConfigError(
                f"must be 1 to {self.count} (the shards), got {self.concurrent}",
                key="--concurrent-shards",
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> tuple[int, int]:
    """(K, N) from `K/N`; ValueError saying the form otherwise."""
    k, slash, n = text.partition("/")
    if not slash or not k.strip().isdigit() or not n.strip().isdigit():
        raise ValueError(f"must be K/N (shard K of N, K from 0), got {text!r}")
    return int(k), int(n)


def shard_path(output: str | Path, index: int, count: int) -> Path:
    """`out/data.jsonl` -> `out/data.shard-00002-of-00006.jsonl` (the suffixes kept last)."""
    path = Path(output)
    name = path.name
    stem, dot, ext = name.partition(".")
    if not stem:  # `.hidden`: no stem before the first dot
        stem, dot, ext = name, "", ""
    return path.with_name(f"{stem}.shard-{index:05d}-of-{count:05d}{dot}{ext}")


def slice_of(shard: Shard, units: int) -> tuple[int, int]:
    """[start, end) of shard's contiguous slice of `units` pages or windows: the slices differ
    by at most one unit in size, and together cover every unit once, in order."""
    return shard.index * units // shard.count, (shard.index + 1) * units // shard.count


@dataclass(frozen=True, kw_only=True)
class Slice:
    """What a shard harvested: units [start, end) of `of` (pages of a known total, or partition
    windows), and the plan every shard agreed on; the one owner of its record range."""

    unit: Unit
    start: int
    end: int
    of: int
    page_size: int
    total: int | None = None  # records, where the API tells them (pages only)

    @property
    def records(self) -> tuple[int, int] | None:
        """[first, end) of the records the slice holds, counted from the dataset's first; None
        where no total says (windows, or a page count only)."""
        if self.unit != "pages" or self.total is None:
            return None
        if self.of == 1:  # one page: the whole dataset (a Range server sent it all at once)
            return (0, self.total) if self.end > self.start else (0, 0)
        first = min(self.start * self.page_size, self.total)
        return first, min(self.end * self.page_size, self.total)


def check_shardable(config: Config, *, max_records: int | None) -> None:
    """ConfigError naming why `config` cannot be split into shards, if it cannot."""
    pagination = config.pagination
    if max_records is not None:
        raise ConfigError(
            "cannot go with --shard: a sample is one run's first records; harvest it without "
            "--shard",
            key="--max-records",
        )
    if config.incremental is not None:
        raise ConfigError(
            "--shard splits one full harvest; an incremental run's window is not split",
            key="incremental",
        )
    if config.parent is not None:
        raise ConfigError("--shard splits a resource without a parent", key="parent")
    if pagination.style in INDEXED_STYLES and not pagination.total_known:
        raise ConfigError(
            "is unknown, and --shard needs the total to cut the pages into slices every shard "
            "agrees on: set pagination.total (or total_pages) to where the first answer tells it",
            key="pagination.total",
        )
    if pagination.style not in INDEXED_STYLES and pagination.partition is None:
        raise ConfigError(
            f"{pagination.style} pagination is one chain of pages, which --shard cannot cut: "
            "set pagination.partition, and each shard takes a contiguous slice of its windows",
            key="pagination.partition",
        )
    if is_stream(config.output.path):
        raise ConfigError(
            "is a stream; shards are files merged afterwards: give a file path",
            key="output.path",
        )
    name, compression = resolve_format(config.output)
    if name != "jsonl" or compression != "none" or config.output.max_records_per_file:
        raise ConfigError(
            "--shard writes uncompressed JSON Lines in one file per shard, which harvester "
            "merge puts together byte for byte; shard into a .jsonl output and convert the "
            "merged file",
            key="output.format",
        )


def check_partition(config: Config, shard: Shard) -> None:
    """ConfigError if there are fewer partition windows than shards."""
    partition = config.pagination.partition
    chained = config.pagination.style not in INDEXED_STYLES
    if partition is not None and chained and partition.parts < shard.count:
        raise ConfigError(
            f"is {partition.parts}, fewer windows than the {shard.count} shards: each shard "
            "takes whole windows, so set at least as many parts as shards",
            key="pagination.partition.parts",
        )


def budget_share(config: Config, shard: Shard | None) -> float:
    """The part of what the API states for the whole client (a rate, a limit on requests in
    flight) that one shard may use: 1/P under `concurrency.scope: run`, else all of it."""
    if shard is None or config.concurrency.scope != "run":
        return 1.0
    return 1.0 / shard.concurrent


def shard_warnings(config: Config, shard: Shard) -> list[str]:
    """What a shard's share of the run's budget cannot honour (each shard keeps at least one
    worker and a burst of one), said on every run."""
    concurrency, at_once = config.concurrency, shard.concurrent
    if concurrency.scope != "run" or at_once == 1:
        return []
    return [
        f"concurrency.{key} is {value}, below the {at_once} shards at once (--concurrent-shards)"
        f": each shard keeps 1, so up to {at_once} may go at once in all; run fewer shards at "
        "once to stay within it"
        for key, value in (("workers", concurrency.workers), ("burst", concurrency.burst))
        if 1 < value < at_once or (key == "workers" and value < at_once)
    ]


def shard_config(config: Config, shard: Shard) -> Config:
    """`config` as shard `shard` runs it: its own output file, and under `concurrency.scope:
    run` its share of rate_limit and workers (the API limits per client, so the shards running
    at once split the budget); under `shard`, the whole budget each."""
    concurrency = config.concurrency
    if concurrency.scope == "run" and shard.concurrent > 1:
        rate, share = concurrency.rate_limit, shard.concurrent
        concurrency = dataclasses.replace(
            concurrency,
            workers=max(1, concurrency.workers // share),
            rate_limit=None if rate is None else rate / share,
            burst=max(1, concurrency.burst // share),
        )
    output = dataclasses.replace(
        config.output, path=str(shard_path(config.output.path, shard.index, shard.count))
    )
    return dataclasses.replace(config, concurrency=concurrency, output=output)
