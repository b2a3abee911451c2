"""What the demo API has done: DemoStats."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# "429_storm" counts the 429s of a storm, apart from the limiter's and the random ones ("429");
# the limiter's refusals count under "429" whatever rate_limit_status they are answered with.
FAULT_KINDS = ("5xx", "drop", "truncate", "429", "401", "slow", "cut", "429_storm")


@dataclass
class DemoStats:
    """Counters of what the server was asked and what it answered.

    `statuses` counts every status the data endpoints sent; a dropped connection sends none,
    so it shows only in `faults["drop"]`. A slow answer counts when it goes out, whether or not
    its client still waits for it. `endpoints` counts data requests by path; `served`, the
    pages answered 200 without a fault, by path and query; `clients`, data requests by the
    client's source address.
    """

    token_requests: int = 0
    tokens_issued: int = 0
    data_requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    endpoints: Counter[str] = field(default_factory=Counter)
    # The pages answered in full (200, no fault), by path and query: what a client was given
    # more than once, it asked for again.
    served: Counter[str] = field(default_factory=Counter)
    # Data requests by the client's source address: which shard asked how much.
    clients: Counter[str] = field(default_factory=Counter)
    # With rate_limit_queue: the data requests that waited their turn, and those whose client
    # hung up while they waited (they freed their place and were answered nothing).
    queued: int = 0
    left_queue: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "token_requests": self.token_requests,
            "tokens_issued": self.tokens_issued,
            "data_requests": self.data_requests,
            "statuses": dict(self.statuses),
            # Every kind present, so a caller can index a fault that never happened.
            "faults": {kind: self.faults[kind] for kind in FAULT_KINDS} | dict(self.faults),
            "endpoints": dict(self.endpoints),
            "clients": dict(self.clients),
            "queued": self.queued,
            "left_queue": self.left_queue,
        }
