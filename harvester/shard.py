"""--shard K/N: which slice of the dataset one shard harvests, and where it writes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scope = Literal["run", "shard"]


@dataclass(frozen=True, kw_only=True)
class Shard:
    """Shard `index` (0-based) of `count`; `concurrent`: how many shards run at once, among
    which `concurrency.scope: run` divides rate_limit and workers."""

    index: int
    count: int
    concurrent: int = 1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"a harvest has at least 1 shard, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"shard {self.index} of {self.count}: K counts from 0, so K must be below N"
            )
        if not 1 <= self.concurrent <= self.count:
            raise ValueError(f"--concurrent-shards must be 1 to {self.count}, got {self.concurrent}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
